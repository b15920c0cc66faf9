package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/chatterly/chatterly/adapters/postgres"
)

// fixture is a user and a conversation to hang messages on.
type fixture struct {
	userID, conversationID int64
}

func newFixture(t *testing.T, db *postgres.DB) fixture {
	t.Helper()
	ctx := context.Background()
	pool := postgres.Primary(db)
	var f fixture
	name := fmt.Sprintf("fx%d", time.Now().UnixNano())
	require.NoError(t, pool.QueryRow(ctx,
		`INSERT INTO users (email, username, created_at, updated_at) VALUES ($1 || '@example.com', $1, now(), now()) RETURNING id`,
		name).Scan(&f.userID))
	require.NoError(t, pool.QueryRow(ctx,
		`INSERT INTO conversations (name, conversation_type, created_by_id, created_at, updated_at) VALUES ('Team', 1, $1, now(), now()) RETURNING id`,
		f.userID).Scan(&f.conversationID))
	return f
}

// sqlState returns the SQLSTATE of a server error, or "" for success or
// another kind of error.
func sqlState(err error) string {
	if pgErr, ok := errors.AsType[*pgconn.PgError](err); ok {
		return pgErr.Code
	}
	return ""
}

package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/chatterly/chatterly/adapters/postgres"
	"github.com/chatterly/chatterly/adapters/postgres/pgtest"
	"github.com/chatterly/chatterly/core"
)

func TestTranslate(t *testing.T) {
	already := core.E(core.Forbidden, "Not authorized")
	tests := []struct {
		name string
		err  error
		want core.Kind
	}{
		{"no rows", pgx.ErrNoRows, core.NotFound},
		{"wrapped no rows", fmt.Errorf("get: %w", pgx.ErrNoRows), core.NotFound},
		{"unique violation", &pgconn.PgError{Code: "23505"}, core.Conflict},
		{"check violation", &pgconn.PgError{Code: "23514"}, core.Internal},
		{"syntax error", &pgconn.PgError{Code: "42601"}, core.Internal},
		{"connection failure", &pgconn.PgError{Code: "08006"}, core.Unavailable},
		{"admin shutdown", &pgconn.PgError{Code: "57P01"}, core.Unavailable},
		{"crash shutdown", &pgconn.PgError{Code: "57P02"}, core.Unavailable},
		{"cannot connect now", &pgconn.PgError{Code: "57P03"}, core.Unavailable},
		{"query canceled", &pgconn.PgError{Code: "57014"}, core.Internal},
		{"deadlock lost", &pgconn.PgError{Code: "40P01"}, core.Unavailable},
		{"serialization failure", &pgconn.PgError{Code: "40001"}, core.Unavailable},
		{"deadline", fmt.Errorf("acquire: %w", context.DeadlineExceeded), core.Unavailable},
		{"network", &net.OpError{Op: "dial", Err: errors.New("connection refused")}, core.Unavailable},
		{"broken connection", fmt.Errorf("receive: %w", io.ErrUnexpectedEOF), core.Unavailable},
		{"anything else", errors.New("boom"), core.Internal},
		{"already classified", already, core.Forbidden},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := postgres.Translate(tc.err)

			assert.Equal(t, tc.want, core.KindOf(got))
			assert.ErrorIs(t, got, tc.err, "the cause is kept for logs")
		})
	}
	assert.NoError(t, postgres.Translate(nil))
}

func TestPingUnreachable(t *testing.T) {
	// Nothing listens on port 1.
	db, err := postgres.Open(context.Background(), "postgres://postgres@127.0.0.1:1/none?connect_timeout=2", "")
	require.NoError(t, err, "Open does not connect")
	defer db.Close()

	err = db.Ping(context.Background())

	assert.True(t, core.Is(err, core.Unavailable), "got %v", err)
}

func TestPingUnreachableReplica(t *testing.T) {
	db, err := postgres.Open(context.Background(), pgtest.URL(t), "postgres://postgres@127.0.0.1:1/none?connect_timeout=2")
	require.NoError(t, err)
	defer db.Close()

	err = db.Ping(context.Background())

	assert.True(t, core.Is(err, core.Unavailable), "got %v", err)
}

func TestOpenMalformedURL(t *testing.T) {
	_, err := postgres.Open(context.Background(), "postgres://user:s3cret@host:notaport/db", "")

	require.Error(t, err)
	assert.NotContains(t, err.Error(), "s3cret")
}

func TestTerminatedConnectionIsUnavailable(t *testing.T) {
	db := pgtest.New(t)
	ctx := context.Background()

	_, err := postgres.Primary(db).Exec(ctx, "SELECT pg_terminate_backend(pg_backend_pid())")

	require.Error(t, err)
	assert.True(t, core.Is(postgres.Translate(err), core.Unavailable), "got %v", err)
	require.Eventually(t, func() bool { return db.Ping(ctx) == nil }, 5*time.Second, 10*time.Millisecond,
		"the pool replaces the dead connection")
}

package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chatterly/chatterly/adapters/postgres"
	"github.com/chatterly/chatterly/adapters/postgres/pgtest"
	"github.com/chatterly/chatterly/core/users"
	"github.com/chatterly/chatterly/core/users/userstest"
)

func TestUserStore(t *testing.T) {
	// The replica is the same database through its own pool, so searches
	// take the replica path.
	url := pgtest.URL(t)
	db, err := postgres.Open(context.Background(), url, url)
	require.NoError(t, err)
	t.Cleanup(db.Close)
	store := postgres.NewUserStore(db)

	userstest.RunStore(t, func(*testing.T) users.Store { return store })
	t.Run("cached", func(t *testing.T) {
		cached := users.NewCache(store, time.Hour, nil)
		userstest.RunStore(t, func(*testing.T) users.Store { return cached })
	})
}

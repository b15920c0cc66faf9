package pgtest_test

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/chatterly/chatterly/adapters/postgres"
	"github.com/chatterly/chatterly/adapters/postgres/pgtest"
)

func databaseExists(t *testing.T, name string) bool {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), os.Getenv(pgtest.EnvDatabaseURL))
	require.NoError(t, err)
	defer conn.Close(context.Background())
	var exists bool
	require.NoError(t, conn.QueryRow(context.Background(),
		`SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)`, name).Scan(&exists))
	return exists
}

func databaseName(t *testing.T, raw string) string {
	t.Helper()
	u, err := url.Parse(raw)
	require.NoError(t, err)
	return strings.TrimPrefix(u.Path, "/")
}

func TestNewIsMigrated(t *testing.T) {
	db := pgtest.New(t)

	ok, err := db.MigrationsApplied(context.Background())

	require.NoError(t, err)
	assert.True(t, ok)
}

func TestURLIsMigrated(t *testing.T) {
	db, err := postgres.Open(context.Background(), pgtest.URL(t), "")
	require.NoError(t, err)
	defer db.Close()

	ok, err := db.MigrationsApplied(context.Background())

	require.NoError(t, err)
	assert.True(t, ok)
}

func TestNewURLIsEmpty(t *testing.T) {
	db, err := postgres.Open(context.Background(), pgtest.NewURL(t), "")
	require.NoError(t, err)
	defer db.Close()

	ok, err := db.MigrationsApplied(context.Background())

	require.NoError(t, err)
	assert.False(t, ok)
	require.NoError(t, db.Migrate(context.Background()), "the caller migrates it")
}

func TestDatabasesAreSeparateAndDropped(t *testing.T) {
	// The subtests would skip, leaving nothing to check.
	pgtest.NewURL(t)
	var names []string
	var mu sync.Mutex
	t.Run("group", func(t *testing.T) {
		for i := range 4 {
			t.Run(fmt.Sprint(i), func(t *testing.T) {
				t.Parallel()
				u := pgtest.URL(t)
				mu.Lock()
				names = append(names, databaseName(t, u))
				mu.Unlock()
			})
		}
	})

	require.Len(t, names, 4)
	assert.Len(t, map[string]bool{names[0]: true, names[1]: true, names[2]: true, names[3]: true}, 4, "each test gets its own database")
	for _, name := range names {
		assert.False(t, databaseExists(t, name), "%s outlived its test", name)
	}
}

func TestWithoutServer(t *testing.T) {
	tests := []struct {
		name      string
		require   string
		wantSkip  bool
		wantFatal bool
	}{
		{"skips by default", "", true, false},
		{"fails when services are required", "1", false, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(pgtest.EnvDatabaseURL, "")
			t.Setenv(pgtest.EnvRequireServices, tc.require)
			rec := &recorder{TB: t}

			rec.run(func() { pgtest.New(rec) })

			assert.Equal(t, tc.wantSkip, rec.skipped, "skipped")
			assert.Equal(t, tc.wantFatal, rec.fatal, "failed")
		})
	}
}

// recorder notes a Skip or a Fatal instead of acting on the real test.
type recorder struct {
	testing.TB
	skipped, fatal bool
}

func (r *recorder) Helper() {}

func (r *recorder) Skipf(string, ...any) { r.skipped = true; runtime.Goexit() }

func (r *recorder) Fatalf(string, ...any) { r.fatal = true; runtime.Goexit() }

// run calls fn on a goroutine of its own, which Skipf and Fatalf end.
func (r *recorder) run(fn func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn()
	}()
	<-done
}

func TestPooledURL(t *testing.T) {
	const direct = "postgres://postgres@127.0.0.1:5432/chatterly_t_0123?sslmode=disable"
	tests := []struct {
		name      string
		bouncer   string
		want      string
		wantFatal bool
	}{
		{name: "no PgBouncer", bouncer: "", want: ""},
		{name: "the database through PgBouncer, in a mode it allows",
			bouncer: "postgres://postgres@127.0.0.1:6432/test?sslmode=disable",
			want:    "postgres://postgres@127.0.0.1:6432/chatterly_t_0123?default_query_exec_mode=cache_describe&sslmode=disable"},
		{name: "a mode in the variable is kept",
			bouncer: "postgres://postgres@127.0.0.1:6432/test?default_query_exec_mode=exec",
			want:    "postgres://postgres@127.0.0.1:6432/chatterly_t_0123?default_query_exec_mode=exec"},
		{name: "not a postgres URL", bouncer: "127.0.0.1:6432", wantFatal: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(pgtest.EnvPgBouncerURL, tc.bouncer)
			rec := &recorder{TB: t}
			var got string

			rec.run(func() { got = pgtest.PooledURL(rec, direct) })

			assert.Equal(t, tc.wantFatal, rec.fatal, "failed")
			assert.Equal(t, tc.want, got)
		})
	}
}

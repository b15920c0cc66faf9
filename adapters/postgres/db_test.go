package postgres_test

import (
	"cmp"
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/chatterly/chatterly/adapters/postgres"
	"github.com/chatterly/chatterly/adapters/postgres/pgtest"
)

// Open connects lazily, so these cases need no server.
func TestOpenQueryMode(t *testing.T) {
	const (
		pooled = "postgres://postgres@pooler:6432/chat"
		direct = "postgres://postgres@db:5432/chat"
	)
	cases := []struct {
		name                  string
		url, replica          string
		opts                  []postgres.Option
		primaryMode, replMode pgx.QueryExecMode
		separateDirect        bool
	}{
		{name: "a direct connection keeps pgx's default", url: direct,
			primaryMode: pgx.QueryExecModeCacheStatement, replMode: pgx.QueryExecModeCacheStatement},
		{name: "a direct URL marks the others pooled", url: pooled, replica: pooled + "_replica",
			opts:        []postgres.Option{postgres.WithDirectURL(direct)},
			primaryMode: pgx.QueryExecModeCacheDescribe, replMode: pgx.QueryExecModeCacheDescribe, separateDirect: true},
		{name: "a URL's own mode wins over that default", url: pooled + "?default_query_exec_mode=exec", replica: pooled,
			opts:        []postgres.Option{postgres.WithDirectURL(direct)},
			primaryMode: pgx.QueryExecModeExec, replMode: pgx.QueryExecModeCacheDescribe, separateDirect: true},
		{name: "a URL's own mode without a direct URL", url: pooled + "?default_query_exec_mode=simple_protocol",
			primaryMode: pgx.QueryExecModeSimpleProtocol, replMode: pgx.QueryExecModeSimpleProtocol},
		{name: "an explicit mode wins over the URLs'", url: pooled + "?default_query_exec_mode=exec", replica: pooled,
			opts:        []postgres.Option{postgres.WithQueryMode("simple_protocol")},
			primaryMode: pgx.QueryExecModeSimpleProtocol, replMode: pgx.QueryExecModeSimpleProtocol},
		{name: "an explicit mode with a direct URL", url: pooled,
			opts:        []postgres.Option{postgres.WithQueryMode("exec"), postgres.WithDirectURL(direct)},
			primaryMode: pgx.QueryExecModeExec, replMode: pgx.QueryExecModeExec, separateDirect: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			db, err := postgres.Open(context.Background(), tc.url, tc.replica, tc.opts...)
			require.NoError(t, err)
			defer db.Close()

			primary, replica, dir := postgres.Pools(db)
			assert.Equal(t, tc.primaryMode, postgres.QueryMode(primary))
			assert.Equal(t, tc.replMode, postgres.QueryMode(replica))
			if !tc.separateDirect {
				assert.Same(t, primary, dir, "migrations use the primary")
				return
			}
			assert.NotSame(t, primary, dir)
			assert.Equal(t, pgx.QueryExecModeCacheStatement, postgres.QueryMode(dir), "the direct pool is a plain connection")
			assert.Equal(t, "db", dir.Config().ConnConfig.Host)
		})
	}
}

func TestOpenRejects(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts []postgres.Option
		want string
	}{
		{"unknown query mode", []postgres.Option{postgres.WithQueryMode("prepared")}, `unknown query mode "prepared"`},
		{"malformed direct URL", []postgres.Option{postgres.WithDirectURL("postgres://u:s3cret@db:port/x")}, "direct: malformed database URL"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := postgres.Open(context.Background(), "postgres://postgres@db/chat", "", tc.opts...)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
			assert.NotContains(t, err.Error(), "s3cret")
		})
	}
}

func TestCollector(t *testing.T) {
	db, err := postgres.Open(context.Background(), "postgres://postgres@pooler/chat", "postgres://postgres@replica/chat",
		postgres.WithDirectURL("postgres://postgres@db/chat"))
	require.NoError(t, err)
	defer db.Close()
	reg := prometheus.NewPedanticRegistry()
	require.NoError(t, reg.Register(db.Collector()))

	families, err := reg.Gather()
	require.NoError(t, err)

	got := map[string][]string{}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			got[f.GetName()] = append(got[f.GetName()], m.GetLabel()[0].GetValue())
		}
	}
	for _, name := range []string{
		"chatterly_db_pool_acquired_connections", "chatterly_db_pool_idle_connections",
		"chatterly_db_pool_connections", "chatterly_db_pool_max_connections",
		"chatterly_db_pool_acquires_total", "chatterly_db_pool_empty_acquires_total",
		"chatterly_db_pool_empty_acquire_wait_seconds_total", "chatterly_db_pool_canceled_acquires_total",
		"chatterly_db_pool_new_connections_total",
	} {
		assert.ElementsMatch(t, []string{"primary", "replica", "direct"}, got[name], name)
	}
}

// Behind PgBouncer in transaction mode, instances that start together
// migrate once (the lock is held on the direct URL), then work under
// concurrency through the pooler.
func TestMigrateThroughPooler(t *testing.T) {
	direct := pgtest.NewURL(t)
	pooled := pgtest.PooledURL(t, direct)
	if pooled == "" {
		t.Skipf("%s is not set", pgtest.EnvPgBouncerURL)
	}
	ctx := context.Background()
	instances := make([]*postgres.DB, 3)
	for i := range instances {
		db, err := postgres.Open(ctx, pooled, "", postgres.WithDirectURL(direct))
		require.NoError(t, err)
		t.Cleanup(db.Close)
		instances[i] = db
	}

	errs := make([]error, len(instances))
	var wg sync.WaitGroup
	for i, db := range instances {
		wg.Go(func() { errs[i] = db.Migrate(ctx) })
	}
	wg.Wait()
	for i, err := range errs {
		require.NoError(t, err, "instance %d", i)
	}

	// Each of 20 goroutines per instance asks 20 times: pgx's default
	// mode would fail here with "prepared statement ... already exists".
	var (
		mu    sync.Mutex
		first error
	)
	for _, db := range instances {
		for range 20 {
			wg.Go(func() {
				for range 20 {
					ok, err := db.MigrationsApplied(ctx)
					if err != nil || !ok {
						mu.Lock()
						first = cmp.Or(first, fmt.Errorf("applied %v: %w", ok, err))
						mu.Unlock()
					}
				}
			})
		}
	}
	wg.Wait()
	require.NoError(t, first)
	var applied int
	require.NoError(t, postgres.Primary(instances[0]).QueryRow(ctx,
		`SELECT count(*) FROM goose_db_version WHERE version_id = 1`).Scan(&applied))
	assert.Equal(t, 1, applied, "the migration ran once")
}

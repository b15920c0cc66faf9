package main_test

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/chatterly/chatterly/adapters/postgres"
)

// The pools' statistics are at /metrics in the durable mode, one series
// per pool: requests waiting for a connection show there before they show
// as latency.
func TestDBPoolMetrics(t *testing.T) {
	names := []string{
		"chatterly_db_pool_acquired_connections", "chatterly_db_pool_idle_connections",
		"chatterly_db_pool_connections", "chatterly_db_pool_max_connections",
		"chatterly_db_pool_acquires_total", "chatterly_db_pool_empty_acquires_total",
		"chatterly_db_pool_empty_acquire_wait_seconds_total", "chatterly_db_pool_canceled_acquires_total",
		"chatterly_db_pool_new_connections_total",
	}
	eachMode(t, func(t *testing.T, m mode) {
		cfg := m.config(t)
		if cfg.Durable() && cfg.DatabaseDirectURL == "" {
			// Without PgBouncer, the direct URL may name the same server:
			// migrations get a pool of their own all the same.
			cfg.DatabaseDirectURL = cfg.DatabaseURL
		}
		s := start(t, cfg)
		s.register("alice")

		r := s.do("GET", "/metrics", "", nil)
		require.Equal(t, http.StatusOK, r.status)
		if !cfg.Durable() {
			assert.NotContains(t, string(r.raw), "chatterly_db_pool_", "no database, no pool")
			return
		}
		for _, name := range names {
			for _, pool := range []string{"primary", "direct"} {
				assert.Contains(t, string(r.raw), "\n"+name+`{pool="`+pool+`"} `)
			}
		}
		assert.NotContains(t, string(r.raw), `pool="replica"`, "the replica is the primary here")
		assert.Positive(t, s.metric(t, `chatterly_db_pool_acquires_total{pool="primary"}`), "the registration used the primary")
		assert.Positive(t, s.metric(t, `chatterly_db_pool_acquires_total{pool="direct"}`), "the migrations used the direct pool")
		assert.Equal(t, float64(postgres.DefaultMaxConns), s.metric(t, `chatterly_db_pool_max_connections{pool="primary"}`))
	})
}

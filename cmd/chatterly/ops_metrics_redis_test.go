package main_test

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The durable graph counts failed Redis commands at /metrics, every
// operation from the start; the in-memory one has no Redis to count.
func TestMetricsRedisErrors(t *testing.T) {
	eachMode(t, func(t *testing.T, m mode) {
		s := start(t, m.config(t))
		r := s.do("GET", "/metrics", "", nil)
		require.Equal(t, http.StatusOK, r.status)
		if !s.cfg.Durable() {
			assert.NotContains(t, string(r.raw), "chatterly_redis_errors_total")
			return
		}
		for _, op := range []string{"ping", "publish", "subscribe", "denylist", "presence", "ratelimit"} {
			assert.Contains(t, string(r.raw), `chatterly_redis_errors_total{op="`+op+`"} 0`)
		}
	})
}

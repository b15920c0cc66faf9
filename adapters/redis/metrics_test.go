package redis_test

import (
	"context"
	"crypto/rand"
	"net/url"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/chatterly/chatterly/adapters/redis"
	"github.com/chatterly/chatterly/adapters/redis/redistest"
	"github.com/chatterly/chatterly/core/chat"
	"github.com/chatterly/chatterly/core/ratelimit"
)

// failures reads chatterly_redis_errors_total{op} of c.
func failures(t *testing.T, c *redis.Client, op string) float64 {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	require.NoError(t, reg.Register(c.Metrics()))
	families, err := reg.Gather()
	require.NoError(t, err)
	for _, f := range families {
		if f.GetName() != "chatterly_redis_errors_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "op" && l.GetValue() == op {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	require.Failf(t, "no series", "chatterly_redis_errors_total{op=%q}", op)
	return 0
}

// Every failed command counts once under its operation.
func TestErrorsCounted(t *testing.T) {
	c, err := redis.Open(t.Context(), redistest.URL(t), "chatterlytest:"+rand.Text()+":")
	require.NoError(t, err)
	// Closed before the Broker, so that its connection is lost too; its
	// reconnection attempts count under subscribe, which no case checks.
	b, err := redis.NewBroker(c, func(string, []byte, chat.Eviction, chat.Position) {})
	require.NoError(t, err)
	t.Cleanup(b.Close)
	c.Close()

	ctx := t.Context()
	tests := []struct {
		op   string
		call func() error
	}{
		{"ping", func() error { return c.Ping(ctx) }},
		{"denylist", func() error { _, err := redis.NewDenylist(c).Revoked(ctx, "jti"); return err }},
		{"presence", func() error { _, err := redis.NewPresence(c).Online(ctx, []int64{1}); return err }},
		{"ratelimit", func() error {
			_, _, err := redis.NewRateLimiter(c).Take(ctx, "k", ratelimit.Rule{Limit: 1, Window: time.Second})
			return err
		}},
		{"publish", func() error { return b.Publish(ctx, "s", []byte("x")) }},
	}
	for _, tt := range tests {
		t.Run(tt.op, func(t *testing.T) {
			before := failures(t, c, tt.op)
			require.Error(t, tt.call())
			assert.Equal(t, before+1, failures(t, c, tt.op))
		})
	}
}

// What says nothing of Redis is not counted: success, and a caller that
// gave up. A Redis too slow for the Client's own timeout is.
func TestErrorsNotCounted(t *testing.T) {
	target, err := url.Parse(redistest.URL(t))
	require.NoError(t, err)
	proxy := startProxy(t, target.Host)
	proxied := *target
	proxied.Host = proxy.addr()
	c, err := redis.Open(t.Context(), proxied.String(), "chatterlytest:"+rand.Text()+":")
	require.NoError(t, err)
	t.Cleanup(c.Close)

	require.NoError(t, c.Ping(t.Context()))
	canceled, cancel := context.WithCancel(t.Context())
	cancel()
	require.Error(t, c.Ping(canceled))
	assert.Zero(t, failures(t, c, "ping"), "success and a canceled caller")

	proxy.freeze()
	short, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	require.Error(t, c.Ping(short))
	assert.Zero(t, failures(t, c, "ping"), "the caller's deadline passed first")

	require.Error(t, c.Ping(context.Background()))
	assert.Equal(t, 1.0, failures(t, c, "ping"), "the Client's timeout is Redis failing")
}

package redis_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/chatterly/chatterly/adapters/redis"
	"github.com/chatterly/chatterly/adapters/redis/redistest"
	"github.com/chatterly/chatterly/core"
	"github.com/chatterly/chatterly/core/ratelimit"
	"github.com/chatterly/chatterly/core/ratelimit/ratelimittest"
)

func TestRateLimiter(t *testing.T) {
	ratelimittest.Run(t, func(t *testing.T) ratelimit.Limiter {
		return redis.NewRateLimiter(redistest.New(t))
	})
}

// Two instances on one Redis share every count.
func TestRateLimiterSharedByInstances(t *testing.T) {
	c := redistest.New(t)
	a, b := redis.NewRateLimiter(c), redis.NewRateLimiter(c)
	rule := ratelimit.Rule{Limit: 3, Window: time.Minute}
	for i, l := range []*redis.RateLimiter{a, b, a} {
		ok, _, err := l.Take(t.Context(), "k", rule)
		require.NoError(t, err)
		require.True(t, ok, "take %d", i+1)
	}
	ok, retry, err := b.Take(t.Context(), "k", rule)
	require.NoError(t, err)
	assert.False(t, ok, "the fourth take, on the other instance, is over the shared limit")
	assert.Greater(t, retry, time.Duration(0))
}

func TestRateLimiterUnavailableAfterClose(t *testing.T) {
	c := redistest.New(t)
	l := redis.NewRateLimiter(c)
	c.Close()
	_, _, err := l.Take(t.Context(), "k", ratelimit.Rule{Limit: 1, Window: time.Minute})
	assert.Equal(t, core.Unavailable, core.KindOf(err), "%v", err)
}

package memory_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/chatterly/chatterly/adapters/memory"
	"github.com/chatterly/chatterly/core"
	"github.com/chatterly/chatterly/core/ratelimit"
	"github.com/chatterly/chatterly/core/ratelimit/ratelimittest"
)

func TestRateLimiter(t *testing.T) {
	ratelimittest.Run(t, func(*testing.T) ratelimit.Limiter { return memory.NewRateLimiter() })
}

func TestRateLimiterInjectedClock(t *testing.T) {
	now := time.Date(2026, 3, 7, 18, 0, 0, 0, time.UTC)
	l := memory.NewRateLimiter()
	l.Now = func() time.Time { return now }
	rule := ratelimit.Rule{Limit: 2, Window: 10 * time.Second}
	take := func() (bool, time.Duration) {
		t.Helper()
		ok, retry, err := l.Take(t.Context(), "k", rule)
		require.NoError(t, err)
		return ok, retry
	}

	steps := []struct {
		name      string
		advance   time.Duration
		wantOK    bool
		wantRetry time.Duration
	}{
		{"first take starts the window", 0, true, 0},
		{"second take", 3 * time.Second, true, 0},
		{"third take is denied until the window ends", 2 * time.Second, false, 5 * time.Second},
		{"still denied just before the end", 5*time.Second - time.Millisecond, false, time.Millisecond},
		{"a new window at the end", time.Millisecond, true, 0},
		{"second take of the new window", 0, true, 0},
		{"third take of the new window is denied", time.Second, false, 9 * time.Second},
	}
	for _, st := range steps {
		now = now.Add(st.advance)
		ok, retry := take()
		assert.Equal(t, st.wantOK, ok, st.name)
		assert.Equal(t, st.wantRetry, retry, st.name)
	}
}

func TestRateLimiterUnavailable(t *testing.T) {
	l := memory.NewRateLimiter()
	rule := ratelimit.Rule{Limit: 1, Window: time.Minute}
	ok, _, err := l.Take(t.Context(), "k", rule)
	require.NoError(t, err)
	require.True(t, ok)

	l.SetUnavailable(true)
	_, _, err = l.Take(t.Context(), "k", rule)
	assert.Equal(t, core.Unavailable, core.KindOf(err), "%v", err)

	l.SetUnavailable(false)
	ok, _, err = l.Take(t.Context(), "k", rule)
	require.NoError(t, err)
	assert.False(t, ok, "the count survives an outage")
}

func TestRateLimiterRejectsUnlimitedRule(t *testing.T) {
	_, _, err := memory.NewRateLimiter().Take(t.Context(), "k", ratelimit.Rule{})
	assert.Equal(t, core.Internal, core.KindOf(err))
}

// Package ratelimittest holds the contract suite of ratelimit.Limiter, run
// by every implementation so that they all count alike.
package ratelimittest

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/chatterly/chatterly/core/ratelimit"
)

// Run checks a ratelimit.Limiter. newLimiter is called once per subtest,
// from parallel subtests, and must return a Limiter with no counts that
// uses the wall clock: the reset case waits in real time.
func Run(t *testing.T, newLimiter func(t *testing.T) ratelimit.Limiter) {
	t.Helper()

	take := func(t *testing.T, l ratelimit.Limiter, key string, rule ratelimit.Rule) (bool, time.Duration) {
		t.Helper()
		ok, retry, err := l.Take(t.Context(), key, rule)
		require.NoError(t, err)
		return ok, retry
	}

	t.Run("exactly Limit takes are allowed, then denied until the window ends", func(t *testing.T) {
		t.Parallel()
		l := newLimiter(t)
		key := uuid.NewString()
		rule := ratelimit.Rule{Limit: 5, Window: 10 * time.Second}
		for i := range rule.Limit {
			ok, retry := take(t, l, key, rule)
			require.True(t, ok, "take %d of %d", i+1, rule.Limit)
			assert.Zero(t, retry, "an allowed take has no retry-after")
		}
		for i := range 3 {
			ok, retry := take(t, l, key, rule)
			require.False(t, ok, "take %d over the limit", i+1)
			assert.Greater(t, retry, time.Duration(0))
			assert.LessOrEqual(t, retry, rule.Window)
			assert.Greater(t, retry, rule.Window-5*time.Second, "the window started moments ago")
		}
	})

	t.Run("a limit of one", func(t *testing.T) {
		t.Parallel()
		l := newLimiter(t)
		key := uuid.NewString()
		rule := ratelimit.Rule{Limit: 1, Window: time.Hour}
		ok, _ := take(t, l, key, rule)
		require.True(t, ok)
		ok, retry := take(t, l, key, rule)
		require.False(t, ok)
		assert.Greater(t, retry, 59*time.Minute)
		assert.LessOrEqual(t, retry, time.Hour)
	})

	t.Run("keys are independent", func(t *testing.T) {
		t.Parallel()
		l := newLimiter(t)
		a, b := uuid.NewString(), uuid.NewString()
		rule := ratelimit.Rule{Limit: 2, Window: time.Minute}
		for range rule.Limit {
			ok, _ := take(t, l, a, rule)
			require.True(t, ok)
		}
		ok, _ := take(t, l, a, rule)
		require.False(t, ok, "a is over its limit")
		for i := range rule.Limit {
			ok, _ := take(t, l, b, rule)
			assert.True(t, ok, "b's take %d is unaffected by a", i+1)
		}
		ok, _ = take(t, l, b, rule)
		assert.False(t, ok, "b has its own limit")
	})

	t.Run("denied takes do not extend the window, which resets", func(t *testing.T) {
		t.Parallel()
		l := newLimiter(t)
		key := uuid.NewString()
		rule := ratelimit.Rule{Limit: 2, Window: 400 * time.Millisecond}
		start := time.Now()
		for range rule.Limit {
			ok, _ := take(t, l, key, rule)
			require.True(t, ok)
		}
		var retry time.Duration
		for time.Since(start) < 200*time.Millisecond {
			var ok bool
			ok, retry = take(t, l, key, rule)
			require.False(t, ok, "still in the first window")
			time.Sleep(20 * time.Millisecond)
		}
		assert.Less(t, retry, rule.Window-100*time.Millisecond, "the retry-after counts down despite denied takes")

		time.Sleep(retry + 50*time.Millisecond)
		for i := range rule.Limit {
			ok, _ := take(t, l, key, rule)
			assert.True(t, ok, "take %d in the new window", i+1)
		}
		ok, _ := take(t, l, key, rule)
		assert.False(t, ok, "the new window has the same limit")
	})

	t.Run("concurrent takes: exactly Limit are allowed", func(t *testing.T) {
		t.Parallel()
		l := newLimiter(t)
		key := uuid.NewString()
		rule := ratelimit.Rule{Limit: 20, Window: time.Minute}
		var allowed, denied atomic.Int32
		var wg sync.WaitGroup
		errs := make(chan error, 50)
		for range 50 {
			wg.Go(func() {
				ok, _, err := l.Take(t.Context(), key, rule)
				if err != nil {
					errs <- err
					return
				}
				if ok {
					allowed.Add(1)
				} else {
					denied.Add(1)
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			require.NoError(t, err)
		}
		assert.Equal(t, int32(20), allowed.Load())
		assert.Equal(t, int32(30), denied.Load())
	})

	t.Run("a refund gives one take back, even after denied takes", func(t *testing.T) {
		t.Parallel()
		l := newLimiter(t)
		key := uuid.NewString()
		rule := ratelimit.Rule{Limit: 2, Window: time.Minute}
		for range rule.Limit {
			ok, _ := take(t, l, key, rule)
			require.True(t, ok)
		}
		for range 3 {
			ok, _ := take(t, l, key, rule)
			require.False(t, ok)
		}
		require.NoError(t, l.Refund(t.Context(), key, rule))
		ok, _ := take(t, l, key, rule)
		assert.True(t, ok, "the refunded take")
		ok, _ = take(t, l, key, rule)
		assert.False(t, ok, "one take only")
	})

	t.Run("a refund never raises the limit", func(t *testing.T) {
		t.Parallel()
		l := newLimiter(t)
		key := uuid.NewString()
		rule := ratelimit.Rule{Limit: 2, Window: time.Minute}
		require.NoError(t, l.Refund(t.Context(), key, rule), "nothing taken yet")
		ok, _ := take(t, l, key, rule)
		require.True(t, ok)
		require.NoError(t, l.Refund(t.Context(), key, rule))
		require.NoError(t, l.Refund(t.Context(), key, rule), "more refunds than takes")
		for i := range rule.Limit {
			ok, _ := take(t, l, key, rule)
			assert.True(t, ok, "take %d", i+1)
		}
		ok, _ = take(t, l, key, rule)
		assert.False(t, ok, "still Limit takes per window")
	})

	t.Run("a refund leaves the window's end alone", func(t *testing.T) {
		t.Parallel()
		l := newLimiter(t)
		key := uuid.NewString()
		rule := ratelimit.Rule{Limit: 1, Window: time.Hour}
		ok, _ := take(t, l, key, rule)
		require.True(t, ok)
		require.NoError(t, l.Refund(t.Context(), key, rule))
		ok, _ = take(t, l, key, rule)
		require.True(t, ok)
		ok, retry := take(t, l, key, rule)
		require.False(t, ok)
		assert.Greater(t, retry, 59*time.Minute, "the window still ends an hour after its first take")
	})
}

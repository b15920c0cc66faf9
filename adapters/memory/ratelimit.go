package memory

import (
	"context"
	"sync"
	"time"

	"github.com/chatterly/chatterly/core"
	"github.com/chatterly/chatterly/core/ratelimit"
)

var _ ratelimit.Limiter = (*RateLimiter)(nil)

// RateLimiter counts fixed windows per key in a map. It passes
// ratelimittest.Run, as redis.RateLimiter does, but counts for this process
// only.
type RateLimiter struct {
	// Now is the clock; time.Now when nil. It is read under the lock, but
	// set it before the value is shared between goroutines all the same.
	Now func() time.Time

	mu          sync.Mutex
	windows     map[string]rateWindow
	sweepAt     int // len(windows) at which Take next drops ended windows
	unavailable bool
}

type rateWindow struct {
	count int
	end   time.Time
}

// NewRateLimiter returns a RateLimiter with no counts, on the wall clock.
func NewRateLimiter() *RateLimiter { return &RateLimiter{} }

// SetUnavailable makes Take fail with Unavailable while down is true, as
// redis.RateLimiter does while Redis is down, so that tests can check how
// callers react.
func (l *RateLimiter) SetUnavailable(down bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.unavailable = down
}

// Take implements ratelimit.Limiter. Unavailable only while
// SetUnavailable(true) holds; Internal for an unlimited rule.
func (l *RateLimiter) Take(_ context.Context, key string, rule ratelimit.Rule) (bool, time.Duration, error) {
	if rule.Unlimited() {
		return false, 0, core.E(core.Internal, "rate limiter: Take with an unlimited rule")
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.unavailable {
		return false, 0, errRateLimiterDown
	}
	now := time.Now()
	if l.Now != nil {
		now = l.Now()
	}
	if l.windows == nil {
		l.windows = make(map[string]rateWindow)
	}
	// Dropping ended windows whenever the map has doubled keeps memory
	// bounded by the keys active in one window, at constant amortized cost.
	if len(l.windows) >= l.sweepAt {
		for k, w := range l.windows {
			if !now.Before(w.end) {
				delete(l.windows, k)
			}
		}
		l.sweepAt = max(64, 2*len(l.windows))
	}
	w, ok := l.windows[key]
	if !ok || !now.Before(w.end) {
		w = rateWindow{end: now.Add(rule.Window)}
	}
	if w.count >= rule.Limit {
		return false, w.end.Sub(now), nil
	}
	w.count++
	l.windows[key] = w
	return true, 0, nil
}

var errRateLimiterDown = core.E(core.Unavailable, "rate limiter unavailable")

// Refund implements ratelimit.Limiter. Unavailable only while
// SetUnavailable(true) holds; Internal for an unlimited rule.
func (l *RateLimiter) Refund(_ context.Context, key string, rule ratelimit.Rule) error {
	if rule.Unlimited() {
		return core.E(core.Internal, "rate limiter: Refund with an unlimited rule")
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.unavailable {
		return errRateLimiterDown
	}
	now := time.Now()
	if l.Now != nil {
		now = l.Now()
	}
	if w, ok := l.windows[key]; ok && now.Before(w.end) && w.count > 0 {
		w.count--
		l.windows[key] = w
	}
	return nil
}

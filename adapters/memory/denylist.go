package memory

import (
	"context"
	"sync"
	"time"

	"github.com/chatterly/chatterly/core"
	"github.com/chatterly/chatterly/core/auth"
)

var _ auth.Denylist = (*Denylist)(nil)

// Denylist keeps revoked token ids in a map until their tokens expire. It
// passes authtest.RunDenylist, as redis.Denylist does.
type Denylist struct {
	// Now is the clock; time.Now when nil. It is read without the lock, so
	// set it before the value is shared between goroutines.
	Now func() time.Time

	mu          sync.Mutex
	until       map[string]time.Time
	sweepAt     int // len(until) at which Revoke next drops expired entries
	unavailable bool
}

// NewDenylist returns an empty Denylist on the wall clock.
func NewDenylist() *Denylist { return &Denylist{} }

// SetUnavailable makes every call fail with Unavailable while down is true,
// as redis.Denylist does while Redis is down, so that tests can check how
// callers react.
func (d *Denylist) SetUnavailable(down bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.unavailable = down
}

// Revoke denies jti until until; a past until stores nothing.
// Unavailable only while SetUnavailable(true) holds.
func (d *Denylist) Revoke(_ context.Context, jti string, until time.Time) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.unavailable {
		return errDenylistDown
	}
	now := d.now()
	if !until.After(now) {
		return nil
	}
	if d.until == nil {
		d.until = make(map[string]time.Time)
	}
	// Dropping expired entries whenever the map has doubled keeps a
	// long-running dev server's memory bounded at constant amortized cost.
	if len(d.until) >= d.sweepAt {
		for k, u := range d.until {
			if !u.After(now) {
				delete(d.until, k)
			}
		}
		d.sweepAt = max(64, 2*len(d.until))
	}
	d.until[jti] = until
	return nil
}

// Revoked reports whether jti is denied. Unavailable only while
// SetUnavailable(true) holds.
func (d *Denylist) Revoked(_ context.Context, jti string) (bool, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.unavailable {
		return false, errDenylistDown
	}
	until, ok := d.until[jti]
	return ok && until.After(d.now()), nil
}

func (d *Denylist) now() time.Time {
	if d.Now == nil {
		return time.Now()
	}
	return d.Now()
}

var errDenylistDown = core.E(core.Unavailable, "denylist unavailable")

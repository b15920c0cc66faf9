package memory

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/chatterly/chatterly/core"
	"github.com/chatterly/chatterly/core/presence"
)

var _ presence.Tracker = (*Presence)(nil)

// Presence keeps, per user, the expiry of each connection's entry, and the
// latest expiry of each user not yet known to be offline, for Lapsed. It
// passes presencetest.RunTracker, as redis.Presence does; instances that
// share presence share one Presence.
type Presence struct {
	// Now is the clock; time.Now when nil. It is read without the lock, so
	// set it before the value is shared between goroutines.
	Now func() time.Time

	mu    sync.Mutex
	users map[int64]map[string]time.Time // user -> connection -> expiry
	// lapse holds, for each user who touched and neither left nor was
	// reported by Lapsed, the expiry of their latest entry.
	lapse map[int64]time.Time
}

// NewPresence returns an empty Presence on the wall clock.
func NewPresence() *Presence { return &Presence{} }

// Touch creates or renews the entry of connID for userID until now+ttl and
// reports whether the user had no live entry before. It never fails but on
// a non-positive ttl, which is a bug of the caller (Internal).
func (p *Presence) Touch(_ context.Context, userID int64, connID string, ttl time.Duration) (bool, error) {
	if ttl <= 0 {
		return false, core.E(core.Internal, "presence: ttl must be positive")
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.now()
	conns := p.live(userID, now)
	cameOnline := len(conns) == 0
	if conns == nil {
		if p.users == nil {
			p.users = make(map[int64]map[string]time.Time)
		}
		conns = make(map[string]time.Time)
		p.users[userID] = conns
	}
	conns[connID] = now.Add(ttl)
	if p.lapse == nil {
		p.lapse = make(map[int64]time.Time)
	}
	p.lapse[userID] = latest(conns)
	return cameOnline, nil
}

// Leave removes the entry of connID and reports whether the user has no
// live entry left. It never fails.
func (p *Presence) Leave(_ context.Context, userID int64, connID string) (bool, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	conns := p.live(userID, p.now())
	delete(conns, connID)
	if len(conns) == 0 {
		delete(p.users, userID)
		delete(p.lapse, userID)
		return true, nil
	}
	p.lapse[userID] = latest(conns)
	return false, nil
}

// Lapsed returns, in ascending order, the users whose last entry expired
// without their leaving, each once. It never fails.
func (p *Presence) Lapsed(context.Context) ([]int64, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.now()
	lapsed := []int64{}
	for userID, expiry := range p.lapse {
		if expiry.After(now) {
			continue
		}
		if conns := p.live(userID, now); conns != nil {
			p.lapse[userID] = latest(conns)
			continue
		}
		delete(p.lapse, userID)
		lapsed = append(lapsed, userID)
	}
	slices.Sort(lapsed)
	return lapsed, nil
}

// Online reports, for every id, whether the user has a live entry. It
// never fails.
func (p *Presence) Online(_ context.Context, ids []int64) (map[int64]bool, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.now()
	online := make(map[int64]bool, len(ids))
	for _, id := range ids {
		online[id] = false
		for _, expiry := range p.users[id] {
			if expiry.After(now) {
				online[id] = true
				break
			}
		}
	}
	return online, nil
}

// live drops the user's expired entries, and the user once none is left,
// as the Redis scripts do, and returns the live ones (nil when none).
// p.mu must be held.
func (p *Presence) live(userID int64, now time.Time) map[string]time.Time {
	conns := p.users[userID]
	for conn, expiry := range conns {
		if !expiry.After(now) {
			delete(conns, conn)
		}
	}
	if len(conns) == 0 {
		delete(p.users, userID)
		return nil
	}
	return conns
}

// latest returns the latest expiry of conns.
func latest(conns map[string]time.Time) time.Time {
	var t time.Time
	for _, expiry := range conns {
		if expiry.After(t) {
			t = expiry
		}
	}
	return t
}

func (p *Presence) now() time.Time {
	if p.Now == nil {
		return time.Now()
	}
	return p.Now()
}

package users

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// maxCached bounds a Cache: about 250 bytes per user.
const maxCached = 4096

// Cache is a Store that remembers what Get returned for a short time. Every
// authenticated request loads its user by id, so a client sending messages
// reads the same row over and over; the cache answers those from memory.
//
// Writes through the Cache (Update, Seen) drop the user at once, so this
// instance never shows its own changes late. Another instance's changes
// show up within the TTL: that is the price, and why the TTL is short.
// Only Get is cached; lookups by email, searches and GetMany go to the
// store, so login and lockout always see the stored row.
type Cache struct {
	Store
	ttl time.Duration
	now func() time.Time

	mu sync.Mutex
	// gen counts writes. A Get that read the store while a write went by
	// does not keep what it read: it may predate the write.
	gen     uint64
	entries map[int64]cached

	hits, misses atomic.Uint64
}

type cached struct {
	u     User
	until time.Time
}

var _ Store = (*Cache)(nil)

// NewCache caches Gets of store for ttl, by the clock now (time.Now when
// nil). A ttl of 0 or less returns store itself.
func NewCache(store Store, ttl time.Duration, now func() time.Time) Store {
	if ttl <= 0 {
		return store
	}
	if now == nil {
		now = time.Now
	}
	return &Cache{Store: store, ttl: ttl, now: now, entries: make(map[int64]cached)}
}

// Get returns the user from the cache while fresh, from the store otherwise.
func (c *Cache) Get(ctx context.Context, id int64) (User, error) {
	now := c.now()
	c.mu.Lock()
	e, ok := c.entries[id]
	gen := c.gen
	c.mu.Unlock()
	if ok && now.Before(e.until) {
		c.hits.Add(1)
		return e.u, nil
	}
	c.misses.Add(1)
	u, err := c.Store.Get(ctx, id)
	if err != nil {
		return u, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen != gen {
		return u, nil
	}
	if len(c.entries) >= maxCached {
		c.evict(now)
	}
	c.entries[id] = cached{u: u, until: now.Add(c.ttl)}
	return u, nil
}

// Stats returns how many Gets the cache answered and how many went to the
// store, for /metrics.
func (c *Cache) Stats() (hits, misses uint64) { return c.hits.Load(), c.misses.Load() }

// evict drops the stale entries, or all of them when none is stale: a full
// cache of fresh users means more clients than it holds, and clearing it
// keeps eviction cheap, each user costing one read more.
func (c *Cache) evict(now time.Time) {
	for id, e := range c.entries {
		if !now.Before(e.until) {
			delete(c.entries, id)
		}
	}
	if len(c.entries) >= maxCached {
		clear(c.entries)
	}
}

// forget drops id and makes Gets in flight discard what they read.
func (c *Cache) forget(id int64) {
	c.mu.Lock()
	c.gen++
	delete(c.entries, id)
	c.mu.Unlock()
}

// Update updates the store and drops the user from the cache.
func (c *Cache) Update(ctx context.Context, id int64, fn func(*User) error) (User, error) {
	// Forgotten once the write is done: an entry cached meanwhile goes, and
	// a Get still reading discards what it read (gen).
	defer c.forget(id)
	return c.Store.Update(ctx, id, fn)
}

// Seen stamps the store and drops the user from the cache.
func (c *Cache) Seen(ctx context.Context, id int64, at time.Time) (User, error) {
	defer c.forget(id)
	return c.Store.Seen(ctx, id, at)
}

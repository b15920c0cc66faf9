package users

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/chatterly/chatterly/core"
)

// countingStore is the part of a Store the Cache adds to: Get counts its
// calls and can be held mid-read; Update and Seen rename and stamp.
type countingStore struct {
	Store
	mu    sync.Mutex
	users map[int64]User
	gets  atomic.Int64
	// When hold is set, Get sends on held after it read the user, then
	// waits for hold to close.
	hold, held chan struct{}
}

func (s *countingStore) Get(_ context.Context, id int64) (User, error) {
	s.gets.Add(1)
	s.mu.Lock()
	u, ok := s.users[id]
	hold, held := s.hold, s.held
	s.mu.Unlock()
	if hold != nil {
		held <- struct{}{}
		<-hold
	}
	if !ok {
		return User{}, core.E(core.NotFound, "Not found")
	}
	return u, nil
}

func (s *countingStore) Update(_ context.Context, id int64, fn func(*User) error) (User, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.users[id]
	if err := fn(&u); err != nil {
		return User{}, err
	}
	s.users[id] = u
	return u, nil
}

func (s *countingStore) Seen(_ context.Context, id int64, at time.Time) (User, error) {
	return s.Update(context.Background(), id, func(u *User) error { u.LastSeenAt = &at; return nil })
}

func TestCache(t *testing.T) {
	ctx := context.Background()
	clock := time.Date(2026, 3, 7, 18, 0, 0, 0, time.UTC)
	now := func() time.Time { return clock }
	newCache := func() (*countingStore, *Cache) {
		s := &countingStore{users: map[int64]User{1: {ID: 1, Username: "alice"}}}
		return s, NewCache(s, time.Second, now).(*Cache)
	}
	rename := func(name string) func(*User) error {
		return func(u *User) error { u.Username = name; return nil }
	}

	t.Run("repeated Gets within the TTL read the store once", func(t *testing.T) {
		s, c := newCache()
		for range 3 {
			u, err := c.Get(ctx, 1)
			require.NoError(t, err)
			assert.Equal(t, "alice", u.Username)
		}
		assert.Equal(t, int64(1), s.gets.Load())
		clock = clock.Add(time.Second)
		_, err := c.Get(ctx, 1)
		require.NoError(t, err)
		assert.Equal(t, int64(2), s.gets.Load(), "read again once the TTL is over")
	})

	t.Run("NotFound is not cached", func(t *testing.T) {
		s, c := newCache()
		for range 2 {
			_, err := c.Get(ctx, 2)
			assert.Equal(t, core.NotFound, core.KindOf(err))
		}
		assert.Equal(t, int64(2), s.gets.Load())
	})

	t.Run("writes through the cache show at once", func(t *testing.T) {
		_, c := newCache()
		_, err := c.Get(ctx, 1)
		require.NoError(t, err)
		_, err = c.Update(ctx, 1, rename("alicia"))
		require.NoError(t, err)
		u, err := c.Get(ctx, 1)
		require.NoError(t, err)
		assert.Equal(t, "alicia", u.Username)
		_, err = c.Seen(ctx, 1, clock)
		require.NoError(t, err)
		u, err = c.Get(ctx, 1)
		require.NoError(t, err)
		assert.Equal(t, &clock, u.LastSeenAt)
	})

	t.Run("a Get that read before a write does not cache what it read", func(t *testing.T) {
		s, c := newCache()
		hold := make(chan struct{})
		s.hold, s.held = hold, make(chan struct{})
		read := make(chan User)
		go func() {
			u, _ := c.Get(ctx, 1)
			read <- u
		}()
		<-s.held // it has read alice
		s.mu.Lock()
		s.hold = nil
		s.mu.Unlock()
		_, err := c.Update(ctx, 1, rename("alicia"))
		require.NoError(t, err)
		close(hold)
		assert.Equal(t, "alice", (<-read).Username, "it answers what it read")
		u, err := c.Get(ctx, 1)
		require.NoError(t, err)
		assert.Equal(t, "alicia", u.Username, "but did not keep it")
	})

	t.Run("the cache stays bounded", func(t *testing.T) {
		s, c := newCache()
		for id := int64(1); id <= maxCached+10; id++ {
			s.users[id] = User{ID: id}
			_, err := c.Get(ctx, id)
			require.NoError(t, err)
			assert.LessOrEqual(t, len(c.entries), maxCached)
		}
	})

	t.Run("a TTL of 0 is no cache", func(t *testing.T) {
		s := &countingStore{}
		assert.Same(t, Store(s), NewCache(s, 0, nil))
	})
}

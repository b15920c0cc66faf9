// Package presencetest holds the contract suite of presence.Tracker, run by
// every implementation so that they all behave alike.
package presencetest

import (
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/chatterly/chatterly/core/presence"
)

// long is a TTL that no subtest outlives.
const long = time.Minute

// RunTracker checks a presence.Tracker. newTrackers is called once per
// subtest, from parallel subtests, and must return n Trackers that share
// one empty store, as n instances of the server would, and use the wall
// clock: the TTL cases wait in real time.
func RunTracker(t *testing.T, newTrackers func(t *testing.T, n int) []presence.Tracker) {
	t.Helper()
	newTracker := func(t *testing.T) presence.Tracker {
		t.Helper()
		ps := newTrackers(t, 1)
		require.Len(t, ps, 1)
		return ps[0]
	}

	t.Run("first touch comes online, later ones do not", func(t *testing.T) {
		t.Parallel()
		p := newTracker(t)
		touch(t, p, 1, "a", long, true)
		touch(t, p, 1, "b", long, false) // a second connection
		touch(t, p, 1, "a", long, false) // a renewal
		assertOnline(t, p, map[int64]bool{1: true})
	})

	t.Run("leaving the last connection goes offline", func(t *testing.T) {
		t.Parallel()
		p := newTracker(t)
		touch(t, p, 1, "a", long, true)
		touch(t, p, 1, "b", long, false)
		leave(t, p, 1, "a", false)
		assertOnline(t, p, map[int64]bool{1: true})
		leave(t, p, 1, "b", true)
		assertOnline(t, p, map[int64]bool{1: false})
	})

	t.Run("leaving twice or unknown connections is not an error", func(t *testing.T) {
		t.Parallel()
		p := newTracker(t)
		touch(t, p, 1, "a", long, true)
		leave(t, p, 1, "a", true)
		leave(t, p, 1, "a", true)
		leave(t, p, 2, "never", true)
	})

	t.Run("coming back after leaving comes online again", func(t *testing.T) {
		t.Parallel()
		p := newTracker(t)
		touch(t, p, 1, "a", long, true)
		leave(t, p, 1, "a", true)
		touch(t, p, 1, "a", long, true)
	})

	t.Run("online for online, offline and unknown users", func(t *testing.T) {
		t.Parallel()
		p := newTracker(t)
		touch(t, p, 1, "a", long, true)
		touch(t, p, 2, "b", long, true)
		leave(t, p, 2, "b", true)
		assertOnline(t, p, map[int64]bool{1: true, 2: false, 3: false})
	})

	t.Run("online for 1000 ids", func(t *testing.T) {
		t.Parallel()
		p := newTracker(t)
		want := make(map[int64]bool, 1000)
		for id := int64(1); id <= 1000; id++ {
			want[id] = id%7 == 0
			if want[id] {
				touch(t, p, id, "c", long, true)
			}
		}
		assertOnline(t, p, want)
	})

	t.Run("online for no ids is an empty map", func(t *testing.T) {
		t.Parallel()
		p := newTracker(t)
		touch(t, p, 1, "a", long, true)
		for name, ids := range map[string][]int64{"nil": nil, "empty": {}} {
			got, err := p.Online(t.Context(), ids)
			require.NoError(t, err, name)
			assert.NotNil(t, got, name)
			assert.Empty(t, got, name)
		}
	})

	t.Run("online with repeated ids", func(t *testing.T) {
		t.Parallel()
		p := newTracker(t)
		touch(t, p, 1, "a", long, true)
		got, err := p.Online(t.Context(), []int64{1, 2, 1, 2})
		require.NoError(t, err)
		assert.True(t, got[1])
		assert.False(t, got[2])
	})

	t.Run("entries lapse after their ttl", func(t *testing.T) {
		t.Parallel()
		p := newTracker(t)
		touch(t, p, 1, "a", 300*time.Millisecond, true)
		assertOnline(t, p, map[int64]bool{1: true})
		time.Sleep(time.Second)
		assertOnline(t, p, map[int64]bool{1: false})
		touch(t, p, 1, "a", long, true)
	})

	t.Run("a lapsed connection does not keep its user online", func(t *testing.T) {
		t.Parallel()
		p := newTracker(t)
		touch(t, p, 1, "short", 300*time.Millisecond, true)
		touch(t, p, 1, "long", long, false)
		time.Sleep(time.Second)
		assertOnline(t, p, map[int64]bool{1: true})
		leave(t, p, 1, "long", true)
		assertOnline(t, p, map[int64]bool{1: false})
	})

	t.Run("a renewal with a shorter ttl shortens the entry", func(t *testing.T) {
		t.Parallel()
		p := newTracker(t)
		touch(t, p, 1, "a", long, true)
		touch(t, p, 1, "a", 300*time.Millisecond, false)
		time.Sleep(time.Second)
		assertOnline(t, p, map[int64]bool{1: false})
	})

	t.Run("a user whose last entry lapsed is reported once", func(t *testing.T) {
		t.Parallel()
		p := newTracker(t)
		touch(t, p, 1, "a", 300*time.Millisecond, true)
		touch(t, p, 2, "b", 300*time.Millisecond, true)
		touch(t, p, 3, "c", long, true)
		assertLapsed(t, p) // not yet
		time.Sleep(time.Second)
		assertLapsed(t, p, 1, 2)
		assertLapsed(t, p)
		// Once back, the user can lapse again.
		touch(t, p, 1, "a", 300*time.Millisecond, true)
		time.Sleep(time.Second)
		assertLapsed(t, p, 1)
		assertOnline(t, p, map[int64]bool{1: false, 2: false, 3: true})
	})

	t.Run("a user who left is not reported", func(t *testing.T) {
		t.Parallel()
		p := newTracker(t)
		touch(t, p, 1, "a", 300*time.Millisecond, true)
		leave(t, p, 1, "a", true)
		touch(t, p, 2, "a", 300*time.Millisecond, true)
		touch(t, p, 2, "b", 300*time.Millisecond, false)
		leave(t, p, 2, "a", false)
		leave(t, p, 2, "b", true)
		// Leaving after the entry lapsed still reports going offline, so
		// the leaver announces it and Lapsed must not.
		touch(t, p, 3, "a", 300*time.Millisecond, true)
		time.Sleep(time.Second)
		leave(t, p, 3, "a", true)
		assertLapsed(t, p)
	})

	t.Run("a user who renewed or came back is not reported", func(t *testing.T) {
		t.Parallel()
		p := newTracker(t)
		touch(t, p, 1, "a", 300*time.Millisecond, true)
		touch(t, p, 1, "a", long, false) // renewed before expiry
		touch(t, p, 2, "a", 300*time.Millisecond, true)
		time.Sleep(time.Second)
		touch(t, p, 2, "a", long, true) // back before anyone swept
		assertLapsed(t, p)
		assertOnline(t, p, map[int64]bool{1: true, 2: true})
	})

	t.Run("a user renewed with a shorter ttl is reported when it lapses", func(t *testing.T) {
		t.Parallel()
		p := newTracker(t)
		touch(t, p, 1, "a", long, true)
		touch(t, p, 1, "a", 300*time.Millisecond, false)
		time.Sleep(time.Second)
		assertLapsed(t, p, 1)
	})

	t.Run("a user with a live connection is not reported", func(t *testing.T) {
		t.Parallel()
		p := newTracker(t)
		touch(t, p, 1, "short", 300*time.Millisecond, true)
		touch(t, p, 1, "long", long, false)
		touch(t, p, 2, "long", long, true)
		touch(t, p, 2, "short", 300*time.Millisecond, false)
		time.Sleep(time.Second)
		assertLapsed(t, p)
		assertOnline(t, p, map[int64]bool{1: true, 2: true})
		leave(t, p, 1, "long", true)
		assertLapsed(t, p)
	})

	t.Run("a user whose other connection left is reported when the last lapses", func(t *testing.T) {
		t.Parallel()
		p := newTracker(t)
		touch(t, p, 1, "short", 300*time.Millisecond, true)
		touch(t, p, 1, "long", long, false)
		leave(t, p, 1, "long", false)
		time.Sleep(time.Second)
		assertLapsed(t, p, 1)
	})

	t.Run("each lapsed user goes to exactly one of concurrent instances", func(t *testing.T) {
		t.Parallel()
		const instances, callers, users = 2, 10, 50
		ps := newTrackers(t, instances)
		require.Len(t, ps, instances)
		want := make([]int64, 0, users)
		for id := int64(1); id <= users; id++ {
			touch(t, ps[id%instances], id, "a", 300*time.Millisecond, true)
			want = append(want, id)
		}
		touch(t, ps[0], users+1, "a", long, true)
		time.Sleep(time.Second)

		var wg sync.WaitGroup
		got := make([][]int64, callers)
		errs := make([]error, callers)
		for i := range callers {
			wg.Go(func() { got[i], errs[i] = ps[i%instances].Lapsed(t.Context()) })
		}
		wg.Wait()

		var all []int64
		for i := range callers {
			require.NoError(t, errs[i], "caller %d", i)
			all = append(all, got[i]...)
		}
		assert.ElementsMatch(t, want, all, "every lapsed user exactly once")
		for _, p := range ps {
			assertLapsed(t, p)
		}
	})

	t.Run("users do not interfere", func(t *testing.T) {
		t.Parallel()
		p := newTracker(t)
		touch(t, p, 1, "same", long, true)
		touch(t, p, 2, "same", long, true)
		touch(t, p, 3, "other", long, true)
		leave(t, p, 1, "same", true)
		assertOnline(t, p, map[int64]bool{1: false, 2: true, 3: true})
	})
}

func touch(t *testing.T, p presence.Tracker, userID int64, connID string, ttl time.Duration, wantCameOnline bool) {
	t.Helper()
	got, err := p.Touch(t.Context(), userID, connID, ttl)
	require.NoError(t, err, "Touch(%d, %q)", userID, connID)
	assert.Equal(t, wantCameOnline, got, "Touch(%d, %q) cameOnline", userID, connID)
}

func leave(t *testing.T, p presence.Tracker, userID int64, connID string, wantWentOffline bool) {
	t.Helper()
	got, err := p.Leave(t.Context(), userID, connID)
	require.NoError(t, err, "Leave(%d, %q)", userID, connID)
	assert.Equal(t, wantWentOffline, got, "Leave(%d, %q) wentOffline", userID, connID)
}

// assertLapsed calls Lapsed and compares, in any order.
func assertLapsed(t *testing.T, p presence.Tracker, want ...int64) {
	t.Helper()
	got, err := p.Lapsed(t.Context())
	require.NoError(t, err, "Lapsed")
	if len(want) == 0 {
		assert.Empty(t, got, "Lapsed")
		return
	}
	assert.ElementsMatch(t, want, got, "Lapsed")
}

// assertOnline asks about every id of want at once and compares; an absent
// id counts as offline, as the port allows.
func assertOnline(t *testing.T, p presence.Tracker, want map[int64]bool) {
	t.Helper()
	ids := make([]int64, 0, len(want))
	for id := range want {
		ids = append(ids, id)
	}
	got, err := p.Online(t.Context(), ids)
	require.NoError(t, err)
	for id, w := range want {
		if got[id] != w {
			t.Errorf("Online: user %d online = %v, want %v", id, got[id], w)
		}
	}
}

// Package presencetest holds the contract suite of presence.Tracker, run by
// every implementation so that they all behave alike.
package presencetest

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/chatterly/chatterly/core/presence"
)

// long is a TTL that no subtest outlives.
const long = time.Minute

// RunTracker checks a presence.Tracker. newTracker is called once per
// subtest, from parallel subtests, and must return an empty Tracker that
// uses the wall clock: the TTL cases wait in real time.
func RunTracker(t *testing.T, newTracker func(t *testing.T) presence.Tracker) {
	t.Helper()

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

package redis_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/chatterly/chatterly/adapters/redis"
	"github.com/chatterly/chatterly/adapters/redis/redistest"
	"github.com/chatterly/chatterly/core/presence"
	"github.com/chatterly/chatterly/core/presence/presencetest"
)

func TestPresence(t *testing.T) {
	// Instances share presence by sharing a Redis and a key prefix. Here
	// they also share a client, since redistest hands out a prefix only
	// with the client it opens; the scripts, not the client, make each
	// update atomic.
	presencetest.RunTracker(t, func(t *testing.T, n int) []presence.Tracker {
		c := redistest.New(t)
		ps := make([]presence.Tracker, n)
		for i := range ps {
			ps[i] = redis.NewPresence(c)
		}
		return ps
	})
}

// TestPresenceLapsedManyUsers lapses more users than one script run takes,
// as when an instance holding many connections dies, and expects all of
// them from a single call.
func TestPresenceLapsedManyUsers(t *testing.T) {
	t.Parallel()
	const users = 1234
	p := redis.NewPresence(redistest.New(t))
	want := make([]int64, users)
	for i := range want {
		want[i] = int64(i + 1)
		_, err := p.Touch(t.Context(), want[i], "conn", 300*time.Millisecond)
		require.NoError(t, err)
	}
	_, err := p.Touch(t.Context(), users+1, "conn", time.Minute)
	require.NoError(t, err)
	time.Sleep(time.Second)

	got, err := p.Lapsed(t.Context())

	require.NoError(t, err)
	assert.ElementsMatch(t, want, got)
	again, err := p.Lapsed(t.Context())
	require.NoError(t, err)
	assert.Empty(t, again)
}

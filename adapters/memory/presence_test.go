package memory_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/chatterly/chatterly/adapters/memory"
	"github.com/chatterly/chatterly/core/presence"
	"github.com/chatterly/chatterly/core/presence/presencetest"
)

func TestPresence(t *testing.T) {
	// Instances share presence by sharing one Presence.
	presencetest.RunTracker(t, func(_ *testing.T, n int) []presence.Tracker {
		p := memory.NewPresence()
		ps := make([]presence.Tracker, n)
		for i := range ps {
			ps[i] = p
		}
		return ps
	})
}

func TestPresenceInjectedClock(t *testing.T) {
	now := time.Date(2026, 3, 7, 18, 0, 0, 0, time.UTC)
	p := memory.NewPresence()
	p.Now = func() time.Time { return now }
	cameOnline, err := p.Touch(t.Context(), 1, "a", time.Minute)
	require.NoError(t, err)
	require.True(t, cameOnline)

	tests := []struct {
		name       string
		at         time.Time
		wantOnline bool
	}{
		{"before expiry", now.Add(59 * time.Second), true},
		{"at expiry", now.Add(time.Minute), false},
		{"after expiry", now.Add(time.Hour), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p.Now = func() time.Time { return tt.at }
			online, err := p.Online(t.Context(), []int64{1})
			require.NoError(t, err)
			assert.Equal(t, tt.wantOnline, online[1])
		})
	}
}

func TestPresenceLapsedInjectedClock(t *testing.T) {
	now := time.Date(2026, 3, 7, 18, 0, 0, 0, time.UTC)
	p := memory.NewPresence()
	p.Now = func() time.Time { return now }
	for _, touch := range []struct {
		userID int64
		connID string
		ttl    time.Duration
	}{
		{1, "a", time.Minute},
		{2, "a", time.Minute},
		{2, "b", 2 * time.Minute},
		{3, "a", 3 * time.Minute},
	} {
		_, err := p.Touch(t.Context(), touch.userID, touch.connID, touch.ttl)
		require.NoError(t, err)
	}

	tests := []struct {
		name string
		at   time.Time
		want []int64
	}{
		{"before any expiry", now.Add(59 * time.Second), []int64{}},
		{"at the first expiry", now.Add(time.Minute), []int64{1}},
		{"at it again", now.Add(time.Minute), []int64{}},
		{"past two users' last expiries", now.Add(time.Hour), []int64{2, 3}},
	}
	for _, tt := range tests {
		p.Now = func() time.Time { return tt.at }
		got, err := p.Lapsed(t.Context())
		require.NoError(t, err, tt.name)
		assert.Equal(t, tt.want, got, tt.name)
	}
}

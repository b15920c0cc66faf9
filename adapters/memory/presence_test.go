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
	presencetest.RunTracker(t, func(*testing.T) presence.Tracker { return memory.NewPresence() })
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

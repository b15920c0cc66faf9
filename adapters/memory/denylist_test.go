package memory_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/chatterly/chatterly/adapters/memory"
	"github.com/chatterly/chatterly/core"
	"github.com/chatterly/chatterly/core/auth"
	"github.com/chatterly/chatterly/core/auth/authtest"
)

func TestDenylist(t *testing.T) {
	authtest.RunDenylist(t, func(*testing.T) auth.Denylist { return memory.NewDenylist() })
}

func TestDenylistInjectedClock(t *testing.T) {
	now := time.Date(2026, 3, 7, 18, 0, 0, 0, time.UTC)
	d := memory.NewDenylist()
	d.Now = func() time.Time { return now }
	require.NoError(t, d.Revoke(t.Context(), "jti", now.Add(time.Hour)))

	tests := []struct {
		name        string
		at          time.Time
		wantRevoked bool
	}{
		{"before until", now.Add(59 * time.Minute), true},
		{"at until", now.Add(time.Hour), false},
		{"after until", now.Add(2 * time.Hour), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d.Now = func() time.Time { return tt.at }
			revoked, err := d.Revoked(t.Context(), "jti")
			require.NoError(t, err)
			assert.Equal(t, tt.wantRevoked, revoked)
		})
	}
}

func TestDenylistUnavailable(t *testing.T) {
	d := memory.NewDenylist()
	require.NoError(t, d.Revoke(t.Context(), "jti", time.Now().Add(time.Hour)))

	d.SetUnavailable(true)
	revoked, err := d.Revoked(t.Context(), "jti")
	assert.Equal(t, core.Unavailable, core.KindOf(err), "Revoked: %v", err)
	assert.False(t, revoked)
	err = d.Revoke(t.Context(), "other", time.Now().Add(time.Hour))
	assert.Equal(t, core.Unavailable, core.KindOf(err), "Revoke: %v", err)

	d.SetUnavailable(false)
	revoked, err = d.Revoked(t.Context(), "jti")
	require.NoError(t, err)
	assert.True(t, revoked, "entries survive an outage")
}

// Internal test: admission is unexported.
package ws

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestAdmissionCapsEachUserAndRefusesWhileDraining(t *testing.T) {
	a := admission{max: 2, perUser: map[int64]int{}}
	added := 0
	add := func() { added++ }
	steps := []struct {
		name string
		do   func() verdict
		want verdict
	}{
		{"first socket", func() verdict { return a.admit(1, add) }, admitted},
		{"second socket", func() verdict { return a.admit(1, add) }, admitted},
		{"third socket is over the cap", func() verdict { return a.admit(1, add) }, admitTooMany},
		{"another user has a cap of their own", func() verdict { return a.admit(2, add) }, admitted},
		{"a socket closed frees a place", func() verdict { a.leave(1); return a.admit(1, add) }, admitted},
		{"draining refuses everyone", func() verdict { a.leave(2); a.drain(); return a.admit(2, add) }, admitDraining},
	}
	for _, step := range steps {
		assert.Equal(t, step.want, step.do(), step.name)
	}
	assert.Equal(t, 4, added, "add runs for admitted sockets only")
	assert.True(t, a.isDraining())
	assert.Equal(t, map[int64]int{1: 2}, a.perUser, "user 2 left; user 1 holds two")
}

func TestConnectRateAdmitsABurstThenItsRate(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	tests := []struct {
		name string
		at   time.Duration // since t0
		want bool
	}{
		{"burst 1", 0, true},
		{"burst 2", 0, true},
		{"burst 3", 0, true},
		{"the burst is spent", 0, false},
		{"a tenth of a second later: one token (10/s)", 100 * time.Millisecond, true},
		{"and no more", 100 * time.Millisecond, false},
		{"an idle minute refills the burst only", time.Minute, true},
		{"2", time.Minute, true},
		{"3", time.Minute, true},
		{"not 4", time.Minute, false},
	}
	r := newConnectRate(10, 3)
	for _, tt := range tests {
		assert.Equal(t, tt.want, r.allow(t0.Add(tt.at)), tt.name)
	}
	off := newConnectRate(0, 0)
	for range 1000 {
		require.True(t, off.allow(t0), "a zero rate bounds nothing")
	}
}

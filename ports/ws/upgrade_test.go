// Internal test: admission is unexported.
package ws

import (
	"testing"

	"github.com/stretchr/testify/assert"
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

// Package authtest holds the contract suite of the auth ports, run by every
// implementation so that they all behave alike.
package authtest

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/chatterly/chatterly/core/auth"
)

// RunDenylist checks an auth.Denylist. newDenylist is called once per
// subtest, from parallel subtests, and must return an empty Denylist that
// uses the wall clock: the expiry case waits in real time.
func RunDenylist(t *testing.T, newDenylist func(t *testing.T) auth.Denylist) {
	t.Helper()

	t.Run("unknown jti is not revoked", func(t *testing.T) {
		t.Parallel()
		d := newDenylist(t)
		revoked, err := d.Revoked(t.Context(), uuid.NewString())
		require.NoError(t, err)
		assert.False(t, revoked)
	})

	t.Run("revoked jti is revoked and others are not", func(t *testing.T) {
		t.Parallel()
		d := newDenylist(t)
		jti, other := uuid.NewString(), uuid.NewString()
		require.NoError(t, d.Revoke(t.Context(), jti, time.Now().Add(time.Hour)))

		revoked, err := d.Revoked(t.Context(), jti)
		require.NoError(t, err)
		assert.True(t, revoked, "revoked jti")

		revoked, err = d.Revoked(t.Context(), other)
		require.NoError(t, err)
		assert.False(t, revoked, "another jti")
	})

	t.Run("revoke until a past time is a no-op", func(t *testing.T) {
		t.Parallel()
		d := newDenylist(t)
		jti := uuid.NewString()
		require.NoError(t, d.Revoke(t.Context(), jti, time.Now().Add(-time.Minute)))

		revoked, err := d.Revoked(t.Context(), jti)
		require.NoError(t, err)
		assert.False(t, revoked)
	})

	t.Run("entry expires at until", func(t *testing.T) {
		t.Parallel()
		d := newDenylist(t)
		jti := uuid.NewString()
		require.NoError(t, d.Revoke(t.Context(), jti, time.Now().Add(300*time.Millisecond)))

		revoked, err := d.Revoked(t.Context(), jti)
		require.NoError(t, err)
		assert.True(t, revoked, "right after Revoke")

		time.Sleep(time.Second)
		revoked, err = d.Revoked(t.Context(), jti)
		require.NoError(t, err)
		assert.False(t, revoked, "a second later, past until")
	})

	t.Run("revoking twice is fine", func(t *testing.T) {
		t.Parallel()
		d := newDenylist(t)
		jti := uuid.NewString()
		require.NoError(t, d.Revoke(t.Context(), jti, time.Now().Add(time.Hour)))
		require.NoError(t, d.Revoke(t.Context(), jti, time.Now().Add(2*time.Hour)))

		revoked, err := d.Revoked(t.Context(), jti)
		require.NoError(t, err)
		assert.True(t, revoked)
	})

	t.Run("concurrent revokes and reads", func(t *testing.T) {
		t.Parallel()
		d := newDenylist(t)
		const n = 20
		jtis := make([]string, n)
		for i := range jtis {
			jtis[i] = uuid.NewString()
		}
		var wg sync.WaitGroup
		errs := make(chan error, 2*n)
		for i := range n {
			wg.Go(func() {
				errs <- d.Revoke(t.Context(), jtis[i], time.Now().Add(time.Hour))
			})
			wg.Go(func() {
				_, err := d.Revoked(t.Context(), jtis[(i+1)%n])
				errs <- err
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			require.NoError(t, err)
		}
		for _, jti := range jtis {
			revoked, err := d.Revoked(t.Context(), jti)
			require.NoError(t, err)
			assert.True(t, revoked, fmt.Sprintf("jti %s", jti))
		}
	})
}

// Package wstest holds the contract suites of the ports that ports/ws
// declares, run against every implementation.
package wstest

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Sessions is ws.Sessions (redeclared so that adapters' tests need not
// import the gateway).
type Sessions interface {
	Save(ctx context.Context, sid string, state []byte, ttl time.Duration) error
	Take(ctx context.Context, sid string) ([]byte, error)
}

// RunSessions checks a Sessions. newSessions returns a fresh one per
// subtest; its clock is the real one, so TTLs here are short.
func RunSessions(t *testing.T, newSessions func(t *testing.T) Sessions) {
	t.Run("a saved session is taken once", func(t *testing.T) {
		s := newSessions(t)
		require.NoError(t, s.Save(t.Context(), "a", []byte(`{"user_id":1}`), time.Minute))
		got, err := s.Take(t.Context(), "a")
		require.NoError(t, err)
		assert.JSONEq(t, `{"user_id":1}`, string(got))
		got, err = s.Take(t.Context(), "a")
		require.NoError(t, err)
		assert.Nil(t, got, "a session resumes once")
	})

	t.Run("an unknown or expired session is nothing", func(t *testing.T) {
		s := newSessions(t)
		got, err := s.Take(t.Context(), "never")
		require.NoError(t, err)
		assert.Nil(t, got)
		require.NoError(t, s.Save(t.Context(), "short", []byte("x"), 50*time.Millisecond))
		time.Sleep(150 * time.Millisecond)
		got, err = s.Take(t.Context(), "short")
		require.NoError(t, err)
		assert.Nil(t, got)
	})

	t.Run("of racing takes, one gets the session", func(t *testing.T) {
		s := newSessions(t)
		for round := range 20 {
			sid := fmt.Sprint("race", round)
			require.NoError(t, s.Save(t.Context(), sid, []byte("state"), time.Minute))
			var got atomic.Int32
			var wg sync.WaitGroup
			for range 8 {
				wg.Go(func() {
					b, err := s.Take(context.Background(), sid)
					assert.NoError(t, err)
					if b != nil {
						got.Add(1)
					}
				})
			}
			wg.Wait()
			assert.Equal(t, int32(1), got.Load(), "round %d", round)
		}
	})
}

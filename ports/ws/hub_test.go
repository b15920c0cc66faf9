// Internal test: the hub is unexported.
package ws

import (
	"context"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/chatterly/chatterly/core/chat"
)

// slowBroker answers after a random pause, so calls for one stream race,
// and records which streams end up subscribed.
type slowBroker struct {
	mu   sync.Mutex
	subs map[string]bool
	// unsubscribeDelay, when set, makes every Unsubscribe that slow.
	unsubscribeDelay time.Duration
}

func (b *slowBroker) pause() { time.Sleep(time.Duration(rand.IntN(300)) * time.Microsecond) } //nolint:gosec // test jitter

func (b *slowBroker) Publish(context.Context, string, []byte) error          { return nil }
func (b *slowBroker) PublishTransient(context.Context, string, []byte) error { return nil }
func (b *slowBroker) PublishEvicting(context.Context, string, []byte, chat.Eviction) error {
	return nil
}

func (b *slowBroker) Subscribe(_ context.Context, s string) error {
	b.pause()
	b.mu.Lock()
	defer b.mu.Unlock()
	b.subs[s] = true
	return nil
}

func (b *slowBroker) Unsubscribe(_ context.Context, s string) error {
	b.pause()
	time.Sleep(b.unsubscribeDelay)
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.subs, s)
	return nil
}

// A stream that someone holds is subscribed at the broker, however its
// releases and re-acquisitions interleave; streams do not wait on each other.
func TestHubKeepsHeldStreamsSubscribed(t *testing.T) {
	b := &slowBroker{subs: map[string]bool{}}
	h := newHub(b)
	streams := []string{"a", "b", "c"}
	var wg sync.WaitGroup
	for g := range 24 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			name := streams[g%len(streams)]
			for range 40 {
				require.NoError(t, h.acquire(context.Background(), name))
				time.Sleep(time.Duration(rand.IntN(200)) * time.Microsecond) //nolint:gosec // test jitter
				h.release(name, nil)
			}
		}()
	}
	wg.Wait()
	// Everything released: nothing is subscribed.
	assert.Empty(t, b.subs)

	// The last holder leaves, its Unsubscribe is slow, and a new holder
	// comes meanwhile: the new holder's stream must end up subscribed.
	b.unsubscribeDelay = 3 * time.Millisecond
	for range 10 {
		require.NoError(t, h.acquire(context.Background(), "a"))
		left := make(chan struct{})
		go func() {
			defer close(left)
			h.release("a", nil)
		}()
		time.Sleep(time.Millisecond) // the Unsubscribe is in flight
		require.NoError(t, h.acquire(context.Background(), "a"))
		<-left
		b.mu.Lock()
		held := b.subs["a"]
		b.mu.Unlock()
		require.True(t, held, "a held stream is not subscribed at the broker")
		h.release("a", nil)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	assert.Empty(t, h.streams)
	assert.Empty(t, h.leaving)
}

// A delivery ends the subscriptions its Eviction names, whatever its
// payload says, and reaches the others.
func TestHubDeliveryEvicts(t *testing.T) {
	tests := []struct {
		name string
		ev   chat.Eviction
		kept map[int64]bool // by user id
	}{
		{"nobody", chat.Eviction{}, map[int64]bool{1: true, 2: true}},
		{"one member", chat.Eviction{UserID: 1}, map[int64]bool{1: false, 2: true}},
		{"everyone", chat.Eviction{Everyone: true}, map[int64]bool{1: false, 2: false}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := New(Config{}, Deps{Broker: nopBroker{}})
			conns := map[int64]*conn{}
			for _, id := range []int64{1, 2} {
				c, err := benchConn(t.Context(), srv, &discardSink{done: make(chan struct{}, 1)}, id)
				require.NoError(t, err)
				t.Cleanup(func() { _ = c.ws.NetConn().Close(); <-c.done })
				conns[id] = c
			}
			subscribed := func(c *conn) bool {
				c.mu.Lock()
				defer c.mu.Unlock()
				_, ok := c.subs[benchIdentifier]
				return ok
			}
			// A payload that names another user: only ev counts.
			srv.Deliver(benchStream, []byte(`{"type":"member_left","user_id":2}`), tt.ev, chat.Position{})
			for id, keep := range tt.kept {
				if keep {
					assert.Never(t, func() bool { return !subscribed(conns[id]) }, 100*time.Millisecond, 5*time.Millisecond, "user %d evicted", id)
				} else {
					assert.Eventually(t, func() bool { return !subscribed(conns[id]) }, 5*time.Second, time.Millisecond, "user %d kept", id)
				}
			}
		})
	}
}

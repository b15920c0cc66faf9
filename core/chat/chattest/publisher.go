package chattest

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/chatterly/chatterly/core"
	"github.com/chatterly/chatterly/core/chat"
)

// Broker is what RunPublisher exercises: a chat.Publisher that can also
// subscribe this process to streams. Implementations: redis.Broker,
// memory.Broker.
type Broker interface {
	chat.Publisher
	// Subscribe returns once the subscription is live, so that nothing
	// published after it returns is missed.
	Subscribe(ctx context.Context, stream string) error
	// Unsubscribe stops deliveries for the stream; an unknown stream is fine.
	Unsubscribe(ctx context.Context, stream string) error
	// Close stops deliveries; later calls fail instead of panicking.
	Close()
	// History and HistorySince read the stream's kept events.
	History(ctx context.Context, stream string, after chat.Position) ([]chat.Record, error)
	HistorySince(ctx context.Context, stream string, since time.Time) ([]chat.Record, error)
}

// DefaultHistory is what RunPublisher's cases keep of each stream, as the
// server does by default.
var DefaultHistory = chat.HistoryConfig{Limit: chat.DefaultHistoryLimit, TTL: chat.DefaultHistoryTTL}

// deliveryTimeout bounds the wait for a message that must arrive.
const deliveryTimeout = 5 * time.Second

// quiet is how long a message that must not arrive is given to show up
// after a later marker message did.
const quiet = 100 * time.Millisecond

// RunPublisher checks a Broker pair. newPair is called once per subtest,
// from parallel subtests, and returns two Brokers that share one bus, as
// two instances share one Redis: a publish on either reaches the
// subscribers of both, and both keep (and read) one history of each
// stream, within hist. deliverA and deliverB are their deliver functions,
// which also get the Eviction and Position each message was published with.
// newPair closes the Brokers when t ends.
//
// Absence is checked with a marker: a message that must not be delivered
// is published before a marker on a subscribed stream, and the marker must
// arrive. That relies on a Broker delivering one publisher's messages in
// the order they were published, across streams, which both
// implementations do (one connection, one queue).
func RunPublisher(t *testing.T, newPair func(t *testing.T, hist chat.HistoryConfig, deliverA, deliverB func(stream string, payload []byte, ev chat.Eviction, pos chat.Position)) (a, b Broker)) {
	t.Helper()

	pair := func(t *testing.T) (a, b Broker, inA, inB *inbox) {
		t.Helper()
		inA, inB = newInbox(t), newInbox(t)
		a, b = newPair(t, DefaultHistory, inA.deliver, inB.deliver)
		return a, b, inA, inB
	}
	t.Run("history", func(t *testing.T) {
		runHistory(t, func(t *testing.T, hist chat.HistoryConfig) (a, b Broker, inA, inB *inbox) {
			t.Helper()
			inA, inB = newInbox(t), newInbox(t)
			a, b = newPair(t, hist, inA.deliver, inB.deliver)
			return a, b, inA, inB
		})
	})

	t.Run("a subscribed stream receives the exact payload bytes", func(t *testing.T) {
		t.Parallel()
		a, _, inA, _ := pair(t)
		subscribe(t, a, "conversation_1")
		payload := []byte(`{"type":"new_message","message":{"id":1,"content":"hi"}}`)
		publish(t, a, "conversation_1", payload)
		got := inA.wait(t, 1)
		assert.Equal(t, "conversation_1", got[0].stream)
		assert.Equal(t, payload, got[0].payload)
	})

	t.Run("other streams are not delivered", func(t *testing.T) {
		t.Parallel()
		a, b, inA, _ := pair(t)
		subscribe(t, a, "conversation_1")
		// Names that share a prefix or a suffix with the subscribed one.
		for _, stream := range []string{"conversation_10", "conversation_", "conversation", "xconversation_1", "user_1"} {
			publish(t, b, stream, []byte(stream))
		}
		publish(t, b, "conversation_1", []byte("marker"))
		inA.waitQuiet(t, 1)
		assert.Equal(t, []delivery{{"conversation_1", []byte("marker")}}, inA.all())
	})

	t.Run("a publish on one instance reaches subscribers on both", func(t *testing.T) {
		t.Parallel()
		a, b, inA, inB := pair(t)
		subscribe(t, a, "user_7")
		subscribe(t, b, "user_7")
		publish(t, a, "user_7", []byte("from a"))
		publish(t, b, "user_7", []byte("from b"))
		want := []delivery{{"user_7", []byte("from a")}, {"user_7", []byte("from b")}}
		assert.Equal(t, want, inA.waitQuiet(t, 2))
		assert.Equal(t, want, inB.waitQuiet(t, 2))
	})

	t.Run("publish order is kept per stream", func(t *testing.T) {
		t.Parallel()
		a, b, _, inB := pair(t)
		subscribe(t, b, "odd")
		subscribe(t, b, "even")
		const n = 1000
		for i := range n {
			stream := "even"
			if i%2 == 1 {
				stream = "odd"
			}
			publish(t, a, stream, []byte(fmt.Sprint(i)))
		}
		next := map[string]int{"even": 0, "odd": 1}
		for _, d := range inB.waitQuiet(t, n) {
			require.Equal(t, fmt.Sprint(next[d.stream]), string(d.payload), "stream %s", d.stream)
			next[d.stream] += 2
		}
	})

	t.Run("unsubscribe stops delivery", func(t *testing.T) {
		t.Parallel()
		a, b, inA, _ := pair(t)
		subscribe(t, a, "s")
		subscribe(t, a, "marker")
		publish(t, b, "s", []byte("1"))
		inA.wait(t, 1)
		require.NoError(t, a.Unsubscribe(t.Context(), "s"))
		publish(t, b, "s", []byte("2"))
		publish(t, b, "marker", []byte("m"))
		assert.Equal(t, []delivery{{"s", []byte("1")}, {"marker", []byte("m")}}, inA.waitQuiet(t, 2))

		require.NoError(t, a.Unsubscribe(t.Context(), "s"), "a second time")
		require.NoError(t, a.Unsubscribe(t.Context(), "never-subscribed"))
	})

	t.Run("subscribing twice delivers once and one unsubscribe stops it", func(t *testing.T) {
		t.Parallel()
		a, b, inA, _ := pair(t)
		subscribe(t, a, "s")
		subscribe(t, a, "s")
		subscribe(t, a, "marker")
		publish(t, b, "s", []byte("1"))
		publish(t, b, "marker", []byte("m"))
		assert.Equal(t, []delivery{{"s", []byte("1")}, {"marker", []byte("m")}}, inA.waitQuiet(t, 2))
		require.NoError(t, a.Unsubscribe(t.Context(), "s"))
		publish(t, b, "s", []byte("2"))
		publish(t, b, "marker", []byte("m"))
		assert.Len(t, inA.waitQuiet(t, 3), 3)
	})

	t.Run("a publish right after Subscribe returns is never missed", func(t *testing.T) {
		t.Parallel()
		a, b, _, inB := pair(t)
		// The same stream every time, so that resubscribing after an
		// unsubscribe is covered too.
		for i := range 200 {
			subscribe(t, b, "s")
			publish(t, a, "s", []byte(fmt.Sprint(i)))
			got := inB.wait(t, i+1)
			require.Equal(t, fmt.Sprint(i), string(got[i].payload))
			require.NoError(t, b.Unsubscribe(t.Context(), "s"))
		}
	})

	t.Run("publishing without subscribers is not an error", func(t *testing.T) {
		t.Parallel()
		a, _, _, _ := pair(t)
		publish(t, a, "nobody_listens", []byte("x"))
	})

	t.Run("500 streams on one broker all deliver", func(t *testing.T) {
		t.Parallel()
		a, b, _, inB := pair(t)
		const n = 500
		for i := range n {
			subscribe(t, b, fmt.Sprintf("conversation_%d", i))
		}
		for i := range n {
			publish(t, a, fmt.Sprintf("conversation_%d", i), []byte(fmt.Sprint(i)))
		}
		seen := make(map[string]bool, n)
		for _, d := range inB.waitQuiet(t, n) {
			assert.Equal(t, "conversation_"+string(d.payload), d.stream)
			assert.False(t, seen[d.stream], "%s delivered twice", d.stream)
			seen[d.stream] = true
		}
		assert.Len(t, seen, n)
	})

	t.Run("concurrent subscribe, unsubscribe and publish are race-free", func(t *testing.T) {
		t.Parallel()
		a, b, inA, inB := pair(t)
		brokers := []Broker{a, b}
		streams := []string{"s0", "s1", "s2", "s3", "s4"}
		var wg sync.WaitGroup
		for g := range 20 {
			wg.Go(func() {
				rng := rand.New(rand.NewPCG(uint64(g), 1))
				for range 50 {
					broker := brokers[rng.IntN(len(brokers))]
					stream := streams[rng.IntN(len(streams))]
					var err error
					switch rng.IntN(3) {
					case 0:
						err = broker.Subscribe(context.Background(), stream)
					case 1:
						err = broker.Unsubscribe(context.Background(), stream)
					default:
						err = broker.Publish(context.Background(), stream, []byte(stream))
					}
					assert.NoError(t, err)
				}
			})
		}
		wg.Wait()
		// Whatever state the storm left, both still work.
		for _, in := range []*inbox{inA, inB} {
			for _, d := range in.all() {
				assert.Equal(t, d.stream, string(d.payload))
			}
		}
		subscribe(t, a, "after")
		subscribe(t, b, "after")
		before := [2]int{len(inA.all()), len(inB.all())}
		publish(t, a, "after", []byte("after"))
		assert.Contains(t, inA.waitFor(t, "after", before[0]), delivery{"after", []byte("after")})
		assert.Contains(t, inB.waitFor(t, "after", before[1]), delivery{"after", []byte("after")})
	})

	t.Run("payloads of arbitrary bytes arrive intact", func(t *testing.T) {
		t.Parallel()
		a, b, _, inB := pair(t)
		every := make([]byte, 256)
		for i := range every {
			every[i] = byte(i)
		}
		large := make([]byte, 64<<10)
		for i := range large {
			large[i] = byte(rand.N(256))
		}
		payloads := [][]byte{
			[]byte(`{"content":"héllo 👋 世界 \u0000 \"quoted\" \\ \r\n"}`),
			every,
			large,
			{},
		}
		subscribe(t, b, "bytes")
		for _, p := range payloads {
			publish(t, a, "bytes", p)
		}
		got := inB.waitQuiet(t, len(payloads))
		for i, p := range payloads {
			assert.True(t, bytes.Equal(p, got[i].payload), "payload %d: %d bytes sent, %d received", i, len(p), len(got[i].payload))
		}
	})

	t.Run("an eviction travels with its payload to every instance", func(t *testing.T) {
		t.Parallel()
		a, b, inA, inB := pair(t)
		subscribe(t, a, "conversation_1")
		subscribe(t, b, "conversation_1")
		sent := []struct {
			payload string
			ev      chat.Eviction
		}{
			{`{"type":"new_message"}`, chat.Eviction{}},
			{`{"type":"member_left","user_id":7}`, chat.Eviction{UserID: 7}},
			{`{"type":"member_left","user_id":-3}`, chat.Eviction{UserID: -3}},
			{"", chat.Eviction{UserID: 1 << 62}},
			{`{"type":"conversation_deleted"}`, chat.Eviction{Everyone: true}},
		}
		for _, m := range sent {
			require.NoError(t, a.PublishEvicting(t.Context(), "conversation_1", []byte(m.payload), m.ev), "publish %s", m.payload)
		}
		publish(t, b, "conversation_1", []byte("plain"))
		for _, in := range []*inbox{inA, inB} {
			got := in.waitQuiet(t, len(sent)+1)
			evs := in.evictions()
			for i, m := range sent {
				assert.Equal(t, m.payload, string(got[i].payload), "message %d", i)
				assert.Equal(t, m.ev, evs[i], "message %d", i)
			}
			assert.Equal(t, "plain", string(got[len(sent)].payload))
			assert.Zero(t, evs[len(sent)], "Publish evicts nobody")
		}
	})

	t.Run("the payload is not shared with the publisher", func(t *testing.T) {
		t.Parallel()
		a, _, inA, _ := pair(t)
		subscribe(t, a, "s")
		payload := []byte("original")
		publish(t, a, "s", payload)
		copy(payload, "mutated!")
		assert.Equal(t, "original", string(inA.wait(t, 1)[0].payload))
	})

	t.Run("Close stops deliveries and later calls fail", func(t *testing.T) {
		t.Parallel()
		a, b, inA, inB := pair(t)
		subscribe(t, a, "s")
		subscribe(t, b, "s")
		publish(t, a, "s", []byte("1"))
		inB.wait(t, 1)
		inA.wait(t, 1)

		b.Close()
		publish(t, a, "s", []byte("2"))
		inA.wait(t, 2)
		time.Sleep(quiet)
		assert.Len(t, inB.all(), 1, "delivered after Close")

		err := b.Publish(t.Context(), "s", []byte("3"))
		require.Error(t, err)
		assert.Equal(t, core.Unavailable, core.KindOf(err), "%v", err)
		require.Error(t, b.Subscribe(t.Context(), "other"))
		assert.NotPanics(t, func() { _ = b.Unsubscribe(t.Context(), "s") })
		assert.NotPanics(t, b.Close, "a second Close")
	})
}

func subscribe(t *testing.T, b Broker, stream string) {
	t.Helper()
	require.NoError(t, b.Subscribe(t.Context(), stream), "subscribe %s", stream)
}

func publish(t *testing.T, b Broker, stream string, payload []byte) {
	t.Helper()
	require.NoError(t, b.Publish(t.Context(), stream, payload), "publish to %s", stream)
}

type delivery struct {
	stream  string
	payload []byte
}

type positioned struct {
	payload string
	pos     chat.Position
}

// inbox records what a Broker delivers and checks that deliveries never
// overlap, since the deliver function of a Broker is called from one
// goroutine at a time.
type inbox struct {
	mu      sync.Mutex
	got     []delivery
	evicts  []chat.Eviction // of each delivery in got
	pos     []chat.Position // of each delivery in got
	arrived chan struct{}   // signalled after each delivery

	active     atomic.Int32
	overlapped atomic.Bool
}

// newInbox returns an inbox whose overlap check runs when t ends, after
// the Brokers that newPair registered for closing are closed.
func newInbox(t *testing.T) *inbox {
	t.Helper()
	in := &inbox{arrived: make(chan struct{}, 1)}
	t.Cleanup(func() {
		assert.False(t, in.overlapped.Load(), "deliver was called concurrently with itself")
	})
	return in
}

func (in *inbox) deliver(stream string, payload []byte, ev chat.Eviction, pos chat.Position) {
	if in.active.Add(1) != 1 {
		in.overlapped.Store(true)
	}
	defer in.active.Add(-1)
	in.mu.Lock()
	in.got = append(in.got, delivery{stream, payload})
	in.evicts = append(in.evicts, ev)
	in.pos = append(in.pos, pos)
	in.mu.Unlock()
	select {
	case in.arrived <- struct{}{}:
	default:
	}
}

// positioned returns the payloads delivered so far with their positions.
func (in *inbox) positioned() []positioned {
	in.mu.Lock()
	defer in.mu.Unlock()
	out := make([]positioned, len(in.got))
	for i, d := range in.got {
		out[i] = positioned{string(d.payload), in.pos[i]}
	}
	return out
}

func (in *inbox) evictions() []chat.Eviction {
	in.mu.Lock()
	defer in.mu.Unlock()
	return append([]chat.Eviction(nil), in.evicts...)
}

func (in *inbox) all() []delivery {
	in.mu.Lock()
	defer in.mu.Unlock()
	return append([]delivery(nil), in.got...)
}

// wait returns the deliveries once there are at least n, failing t when
// they do not come in time.
func (in *inbox) wait(t *testing.T, n int) []delivery {
	t.Helper()
	return in.until(t, fmt.Sprintf("%d deliveries", n), func(got []delivery) bool { return len(got) >= n })
}

// waitFor returns the deliveries once one on stream came after the first
// skip, failing t when none comes in time.
func (in *inbox) waitFor(t *testing.T, stream string, skip int) []delivery {
	t.Helper()
	return in.until(t, "a delivery on "+stream, func(got []delivery) bool {
		for _, d := range got[min(skip, len(got)):] {
			if d.stream == stream {
				return true
			}
		}
		return false
	})
}

// waitQuiet waits for n deliveries, then a little longer, and returns all
// of them, so that the caller sees any delivery that should not have been.
func (in *inbox) waitQuiet(t *testing.T, n int) []delivery {
	t.Helper()
	in.wait(t, n)
	time.Sleep(quiet)
	return in.all()
}

func (in *inbox) until(t *testing.T, what string, done func([]delivery) bool) []delivery {
	t.Helper()
	giveUp := time.NewTimer(deliveryTimeout)
	defer giveUp.Stop()
	for {
		if got := in.all(); done(got) {
			return got
		}
		select {
		case <-in.arrived:
		case <-giveUp.C:
			got := in.all()
			require.FailNow(t, "missing deliveries", "waited %v for %s; got %d: %v", deliveryTimeout, what, len(got), summary(got))
		}
	}
}

// summary shortens deliveries for a failure message: a 64 KiB payload
// would drown it.
func summary(got []delivery) []string {
	s := make([]string, 0, min(len(got), 20))
	for _, d := range got[:min(len(got), 20)] {
		p := d.payload
		if len(p) > 40 {
			p = p[:40]
		}
		s = append(s, d.stream+"="+string(p))
	}
	return s
}

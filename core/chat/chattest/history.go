package chattest

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/chatterly/chatterly/core"
	"github.com/chatterly/chatterly/core/chat"
)

// runHistory checks what a Broker pair keeps of each stream: positions
// handed out in delivery order and read back alike from either Broker,
// transient events left out, and the bounds, past which a read says the
// history is lost instead of giving part of it.
func runHistory(t *testing.T, pair func(t *testing.T, hist chat.HistoryConfig) (a, b Broker, inA, inB *inbox)) {
	t.Run("events carry consecutive offsets of one epoch, seen alike by every broker", func(t *testing.T) {
		t.Parallel()
		a, b, inA, inB := pair(t, DefaultHistory)
		subscribe(t, a, "conversation_1")
		subscribe(t, b, "conversation_1")
		publish(t, a, "conversation_1", []byte("1"))
		publish(t, b, "conversation_1", []byte("2"))
		require.NoError(t, a.PublishEvicting(t.Context(), "conversation_1", []byte("3"), chat.Eviction{UserID: 9}))
		inA.wait(t, 3)
		inB.wait(t, 3)
		got := inA.positioned()
		assert.Equal(t, got, inB.positioned())
		epoch := got[0].pos.Epoch
		require.NotEmpty(t, epoch)
		for i, p := range got {
			assert.Equal(t, positioned{fmt.Sprint(i + 1), chat.Position{Epoch: epoch, Offset: uint64(i + 1)}}, p)
		}

		recs, err := b.History(t.Context(), "conversation_1", chat.Position{Epoch: epoch, Offset: 1})
		require.NoError(t, err)
		require.Len(t, recs, 2)
		assert.Equal(t, "2", string(recs[0].Payload))
		assert.Equal(t, chat.Position{Epoch: epoch, Offset: 2}, recs[0].Position)
		assert.Equal(t, "3", string(recs[1].Payload))
		assert.Equal(t, chat.Eviction{UserID: 9}, recs[1].Eviction)
		assert.WithinDuration(t, time.Now(), recs[1].At, 5*time.Second)

		recs, err = a.History(t.Context(), "conversation_1", chat.Position{Epoch: epoch, Offset: 3})
		require.NoError(t, err)
		assert.Empty(t, recs, "nothing after the newest")
		recs, err = a.HistorySince(t.Context(), "conversation_1", time.Now().Add(-time.Minute))
		require.NoError(t, err)
		assert.Len(t, recs, 3)
	})

	t.Run("transient events have no position and no place in the history", func(t *testing.T) {
		t.Parallel()
		a, _, inA, _ := pair(t, DefaultHistory)
		subscribe(t, a, "conversation_2")
		publish(t, a, "conversation_2", []byte("kept"))
		require.NoError(t, a.PublishTransient(t.Context(), "conversation_2", []byte("typing")))
		publish(t, a, "conversation_2", []byte("kept too"))
		inA.wait(t, 3)
		got := inA.positioned()
		assert.True(t, got[1].pos.IsZero(), "transient: %+v", got[1])
		assert.Equal(t, got[0].pos.Offset+1, got[2].pos.Offset)
		recs, err := a.HistorySince(t.Context(), "conversation_2", time.Now().Add(-time.Minute))
		require.NoError(t, err)
		require.Len(t, recs, 2)
		assert.Equal(t, "kept too", string(recs[1].Payload))
	})

	t.Run("since a time gives the events published from then on, however many", func(t *testing.T) {
		t.Parallel()
		a, _, inA, _ := pair(t, DefaultHistory)
		subscribe(t, a, "s")
		start := time.Now().Add(-time.Second)
		for i := range 30 {
			publish(t, a, "s", []byte(fmt.Sprint("early ", i)))
		}
		time.Sleep(20 * time.Millisecond)
		mid := time.Now()
		time.Sleep(5 * time.Millisecond)
		for i := range 5 {
			publish(t, a, "s", []byte(fmt.Sprint("late ", i)))
		}
		inA.wait(t, 35)
		recs, err := a.HistorySince(t.Context(), "s", mid)
		require.NoError(t, err)
		require.Len(t, recs, 5, "the newest few")
		assert.Equal(t, "late 0", string(recs[0].Payload))
		recs, err = a.HistorySince(t.Context(), "s", start)
		require.NoError(t, err)
		require.Len(t, recs, 35, "more than the newest few")
		assert.Equal(t, "early 0", string(recs[0].Payload))
		assert.Equal(t, "late 4", string(recs[34].Payload))
	})

	t.Run("a read the bounds cannot answer in full is lost, not partial", func(t *testing.T) {
		t.Parallel()
		a, _, inA, _ := pair(t, chat.HistoryConfig{Limit: 3, TTL: time.Minute})
		subscribe(t, a, "s")
		for i := 1; i <= 5; i++ {
			publish(t, a, "s", []byte(fmt.Sprint(i)))
		}
		epoch := inA.wait(t, 5)[0]
		_ = epoch
		e := inA.positioned()[0].pos.Epoch

		recs, err := a.History(t.Context(), "s", chat.Position{Epoch: e, Offset: 2})
		require.NoError(t, err, "events 3 to 5 are kept")
		assert.Len(t, recs, 3)
		for _, after := range []chat.Position{{Epoch: e, Offset: 1}, {Epoch: "another", Offset: 4}} {
			_, err = a.History(t.Context(), "s", after)
			assert.True(t, core.Is(err, core.NotFound), "after %+v: %v", after, err)
		}
		_, err = a.HistorySince(t.Context(), "s", time.Now().Add(-30*time.Second))
		assert.True(t, core.Is(err, core.NotFound), "events 1 and 2 are gone: %v", err)
		_, err = a.HistorySince(t.Context(), "s", time.Now().Add(-2*time.Minute))
		assert.True(t, core.Is(err, core.NotFound), "older than the TTL: %v", err)
		_, err = a.History(t.Context(), "never", chat.Position{Epoch: e, Offset: 1})
		assert.True(t, core.Is(err, core.NotFound), "no history at all: %v", err)
		recs, err = a.HistorySince(t.Context(), "never", time.Now().Add(-time.Second))
		require.NoError(t, err, "nothing was published since: that is an answer")
		assert.Empty(t, recs)
	})

	t.Run("a history idle past its TTL is gone, and the next event begins a new epoch", func(t *testing.T) {
		t.Parallel()
		a, _, inA, _ := pair(t, chat.HistoryConfig{Limit: 10, TTL: 300 * time.Millisecond})
		subscribe(t, a, "s")
		publish(t, a, "s", []byte("old"))
		first := inA.wait(t, 1)
		_ = first
		old := inA.positioned()[0].pos
		time.Sleep(600 * time.Millisecond)
		_, err := a.History(t.Context(), "s", chat.Position{Epoch: old.Epoch, Offset: 0})
		assert.True(t, core.Is(err, core.NotFound), "expired: %v", err)
		publish(t, a, "s", []byte("new"))
		inA.wait(t, 2)
		now := inA.positioned()[1].pos
		assert.NotEqual(t, old.Epoch, now.Epoch)
		assert.Equal(t, uint64(1), now.Offset)
	})

	t.Run("without a history events carry no position", func(t *testing.T) {
		t.Parallel()
		a, _, inA, _ := pair(t, chat.HistoryConfig{})
		subscribe(t, a, "s")
		publish(t, a, "s", []byte("x"))
		inA.wait(t, 1)
		assert.True(t, inA.positioned()[0].pos.IsZero())
		_, err := a.HistorySince(t.Context(), "s", time.Now())
		assert.True(t, core.Is(err, core.NotFound), "%v", err)
	})
}

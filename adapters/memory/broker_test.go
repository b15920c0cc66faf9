package memory_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/chatterly/chatterly/adapters/memory"
	"github.com/chatterly/chatterly/core/chat"
	"github.com/chatterly/chatterly/core/chat/chattest"
)

func TestBroker(t *testing.T) {
	chattest.RunPublisher(t, func(t *testing.T, hist chat.HistoryConfig, deliverA, deliverB func(string, []byte, chat.Eviction, chat.Position)) (chattest.Broker, chattest.Broker) {
		bus := memory.NewBus().KeepHistory(hist, time.Now)
		a, b := bus.NewBroker(deliverA), bus.NewBroker(deliverB)
		t.Cleanup(a.Close)
		t.Cleanup(b.Close)
		return a, b
	})
}

func TestBrokersOfSeparateBusesDoNotMeet(t *testing.T) {
	got := make(chan string, 2)
	a := memory.NewBroker(func(_ string, payload []byte, _ chat.Eviction, _ chat.Position) { got <- string(payload) })
	t.Cleanup(a.Close)
	b := memory.NewBroker(func(string, []byte, chat.Eviction, chat.Position) {})
	t.Cleanup(b.Close)
	require.NoError(t, a.Subscribe(t.Context(), "s"))
	require.NoError(t, b.Subscribe(t.Context(), "s"))

	// A publish queues synchronously, so a leak of b's message would be
	// delivered before a's own.
	require.NoError(t, b.Publish(t.Context(), "s", []byte("from b")))
	require.NoError(t, a.Publish(t.Context(), "s", []byte("from a")))
	select {
	case payload := <-got:
		assert.Equal(t, "from a", payload)
	case <-time.After(5 * time.Second):
		t.Fatal("a's own publish was not delivered")
	}
}

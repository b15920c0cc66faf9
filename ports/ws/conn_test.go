package ws

import (
	"bytes"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// cutTooSlow reports whether c has been told too_slow: its queue then
// holds that frame alone, or it is closing with nothing left to write.
func cutTooSlow(c *conn) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closing
}

// A burst that the delivering goroutine queues faster than the writer can
// run is the server's backlog: a client that reads is not cut for it. With
// one P and no blocking call in the loop, the writer gets no CPU unless the
// sender yields, which is what a starved delivery goroutine looks like on a
// busy machine (TestWSSlowClient evicted its fast reader that way).
func TestSendBurstDoesNotCutAReader(t *testing.T) {
	srv := New(Config{SendQueueBytes: 4 << 10}, Deps{Broker: nopBroker{}})
	sk := &discardSink{done: make(chan struct{}, 1)}
	c, err := benchConn(t.Context(), srv, sk, 1)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.ws.NetConn().Close(); <-c.done })

	frame := bytes.Repeat([]byte("x"), 450)
	const n = 150 // 16 times the bound
	sk.arm(n * wireLen(frame))
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	for range n {
		c.send(frame)
	}
	runtime.GOMAXPROCS(2)
	select {
	case <-sk.done:
	case <-time.After(10 * time.Second):
		t.Fatalf("%d bytes never written", sk.pending.Load())
	}
	assert.False(t, cutTooSlow(c), "the reader was cut")
}

// A client whose socket takes nothing is cut once its queue passes the
// bound with the writer blocked for stallAfter, or, however briefly it has
// been blocked, once the queue passes queueSlack times the bound.
func TestSendCutsAClientThatDoesNotRead(t *testing.T) {
	const bound = 4 << 10
	frame := bytes.Repeat([]byte("x"), 450)
	stuckConn := func(t *testing.T) *conn {
		t.Helper()
		srv := New(Config{SendQueueBytes: bound}, Deps{Broker: nopBroker{}})
		nc := &memConn{closed: make(chan struct{})}
		c, err := memoryConn(t.Context(), srv, nc, nil, 1)
		require.NoError(t, err)
		nc.stuck.Store(true)
		t.Cleanup(func() { _ = nc.Close(); <-c.done })
		c.send(frame)
		require.Eventually(t, func() bool { return c.writeSince.Load() != 0 }, 5*time.Second, time.Millisecond, "the writer blocks")
		return c
	}

	t.Run("blocked past stallAfter", func(t *testing.T) {
		c := stuckConn(t)
		for range bound / len(frame) {
			c.send(frame)
		}
		require.False(t, cutTooSlow(c), "within the bound")
		time.Sleep(stallAfter + 5*time.Millisecond)
		c.send(frame)
		assert.True(t, cutTooSlow(c))
	})

	t.Run("past the slack", func(t *testing.T) {
		c := stuckConn(t)
		sent := 0
		for !cutTooSlow(c) && sent < 2*queueSlack*bound {
			c.send(frame)
			sent += len(frame)
		}
		assert.True(t, cutTooSlow(c))
		assert.Greater(t, sent, bound, "not before the bound")
		assert.LessOrEqual(t, sent, queueSlack*bound+len(frame))
	})
}

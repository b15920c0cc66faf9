package ws

import (
	"bufio"
	"bytes"
	"io"
	"net"
	nethttp "net/http"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/chatterly/chatterly/core/users"
	"github.com/chatterly/chatterly/ports/ws/internal/netpoll"
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

// tcpConn is a gateway connection over a real loopback socket, wrapped as
// the gateway wraps one, so that the kernel judges its writes; client is
// the other end. Small buffers make a client that stops reading fill them
// quickly.
func tcpConn(t *testing.T, srv *Server) (*conn, *net.TCPConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	nc, err := net.Dial("tcp", ln.Addr().String())
	require.NoError(t, err)
	client := nc.(*net.TCPConn)
	accepted, err := ln.Accept()
	require.NoError(t, err)
	server := accepted.(*net.TCPConn)
	require.NoError(t, server.SetWriteBuffer(8<<10))
	require.NoError(t, client.SetReadBuffer(8<<10))

	bw := &netpoll.BoundedWriter{ResponseWriter: tcpHijacker{server}}
	req, _ := nethttp.NewRequest(nethttp.MethodGet, "http://chatterly.test/cable", nil)
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "websocket")
	req.Header.Set("Sec-WebSocket-Version", "13")
	req.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
	ws, err := srv.upgrader.Upgrade(bw, req, nil)
	require.NoError(t, err)
	c := &conn{srv: srv, ws: ws, raw: bw.Conn, id: newID(), user: users.User{ID: 1},
		subs: map[string]*subscription{}, done: make(chan struct{})}
	srv.hub.addConn(c)
	go srv.read(c)
	t.Cleanup(func() { _ = client.Close(); _ = ws.Close(); <-c.done })
	return c, client
}

type tcpHijacker struct{ nc net.Conn }

func (h tcpHijacker) Header() nethttp.Header      { return nethttp.Header{} }
func (h tcpHijacker) Write(p []byte) (int, error) { return h.nc.Write(p) }
func (h tcpHijacker) WriteHeader(int)             {}
func (h tcpHijacker) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	return h.nc, bufio.NewReadWriter(bufio.NewReader(h.nc), bufio.NewWriter(h.nc)), nil
}

// A writer that has spent long inside a write the kernel accepted has been
// kept off the CPU, not refused by the client: its client is not cut while
// the queue is within the slack. Judged by the time in the write, it was
// (TestWSSlowClient's fast reader, one run in three on a busy machine).
func TestSendJudgesTheSocketNotTheScheduler(t *testing.T) {
	const bound = 4 << 10
	frame := bytes.Repeat([]byte("x"), 450)

	t.Run("a reader whose writer is off the CPU", func(t *testing.T) {
		c, client := tcpConn(t, New(Config{SendQueueBytes: bound}, Deps{Broker: nopBroker{}}))
		go func() { _, _ = io.Copy(io.Discard, client) }()
		// As the writer looks when it has sat a second inside WriteMessage.
		c.mu.Lock()
		c.writing = true
		c.mu.Unlock()
		c.writeSince.Store(time.Now().Add(-time.Second).UnixNano())
		for range 2 * bound / len(frame) {
			c.send(frame)
		}
		assert.False(t, cutTooSlow(c), "cut while the kernel took everything")

		c.writeSince.Store(0)
		c.mu.Lock()
		c.writing = false
		c.startWriterLocked()
		c.mu.Unlock()
		require.Eventually(t, func() bool {
			c.mu.Lock()
			defer c.mu.Unlock()
			return !c.writing
		}, 5*time.Second, time.Millisecond, "the queue drains")
		assert.False(t, cutTooSlow(c))
	})

	t.Run("a client that stops reading", func(t *testing.T) {
		c, _ := tcpConn(t, New(Config{SendQueueBytes: bound}, Deps{Broker: nopBroker{}}))
		deadline := time.Now().Add(10 * time.Second)
		for !cutTooSlow(c) && time.Now().Before(deadline) {
			c.send(frame)
			time.Sleep(100 * time.Microsecond)
		}
		require.True(t, cutTooSlow(c), "never cut")
		since, known := c.raw.WriteBlockedSince()
		assert.True(t, known)
		assert.NotZero(t, since, "the kernel refused the client's bytes")
	})
}

// Benchmarks for the gateway's hot paths (issue 6): encoding one broadcast
// frame, and the hub's fan-out of one delivery to every local connection.
//
// This is an internal test (package ws, not ws_test) because the hub, conn
// and frame encoders are unexported.
//
// The fan-out benchmarks build real *websocket.Conn values with the
// Server's own Upgrader (same buffer sizes and write-buffer pool as
// production), hijacking an in-memory net.Conn instead of a socket: writes
// are counted and discarded, reads block until close. Each connection has
// its reader goroutine (Server.read) like a live one, so the idle memory
// figure is what a connection costs the process, minus the kernel socket
// and the few hundred bytes of a real net.TCPConn/netFD.
package ws

import (
	"bufio"
	"context"
	"net"
	nethttp "net/http"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chatterly/chatterly/core/auth"
	"github.com/chatterly/chatterly/core/chat"
	"github.com/chatterly/chatterly/core/users"
)

// benchIdentifier is a ConversationChannel identifier as the stock client
// sends it; benchPayload a new_message event as the chat service renders it
// (~600 B).
const (
	benchIdentifier = `{"channel":"ConversationChannel","conversation_id":4821}`
	benchStream     = "conversation_4821"
	benchPayload    = `{"type":"new_message","message":{"id":9912873,"content":"Sounds good — I pushed the fix for the reconnect loop to the release branch, can you give it a spin on staging before the 3 pm sync? The logs from yesterday are in the incident doc.","edited_at":null,"created_at":"2026-03-07T18:11:58.123Z","parent_message_id":9912840,"message_type":"text","call_session":null,"user":{"id":70412,"username":"alice.martin","display_name":"Alice Martin","avatar_url":"https://cdn.chatterly.example/avatars/70412/5f2c9a.png","online":true},"reactions":[{"id":55102,"emoji":"👍","message_id":9912873,"user_id":70398},{"id":55103,"emoji":"🎉","message_id":9912873,"user_id":70377}]}}`
)

var benchFrameSink []byte

func BenchmarkFrameMessage(b *testing.B) {
	ident := identifierJSON(benchIdentifier)
	payload := []byte(benchPayload)
	b.SetBytes(int64(len(payload)))
	b.ReportAllocs()
	for b.Loop() {
		benchFrameSink = frameMessage(ident, payload)
	}
	b.ReportMetric(float64(len(benchFrameSink)), "frameB")
}

func BenchmarkHubFanout1k(b *testing.B)  { benchFanout(b, 1_000) }
func BenchmarkHubFanout10k(b *testing.B) { benchFanout(b, 10_000) }

// benchFanout measures one hub.deliver of a new_message to n connections
// subscribed with one identifier to one stream, until all n have written it
// to their (in-memory) sockets. It also reports what an idle connection
// (reader goroutine, websocket.Conn, conn, one subscription) holds.
func benchFanout(b *testing.B, n int) {
	srv := New(Config{}, Deps{Broker: nopBroker{}})
	h := srv.hub
	sk := &discardSink{done: make(chan struct{}, 1)}
	ctx := context.Background()

	before := memStats()
	conns := make([]*conn, n)
	for i := range conns {
		c, err := benchConn(ctx, srv, sk, int64(i+1))
		if err != nil {
			b.Fatal(err)
		}
		conns[i] = c
	}
	defer func() { // as if every client hung up: the readers clean up
		for _, c := range conns {
			_ = c.ws.NetConn().Close()
		}
		for _, c := range conns {
			<-c.done
		}
		if left := h.count(); left != 0 {
			b.Errorf("%d connections left in the hub", left)
		}
	}()

	// Like ServeHTTP and subscribe: welcome, then confirm. This also warms
	// the write-buffer pool and lets every writer goroutine finish.
	identJSON := conns[0].subs[benchIdentifier].identJSON
	welcome, confirm := frameWelcome, frameConfirm(identJSON)
	sk.arm(n * (wireLen(welcome) + wireLen(confirm)))
	for _, c := range conns {
		c.send(welcome)
		c.send(confirm)
	}
	sk.wait(b)
	waitIdle(b, conns)
	after := memStats()
	idleHeap := float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / float64(n)
	idleStack := float64(int64(after.StackInuse)-int64(before.StackInuse)) / float64(n)

	payload := []byte(benchPayload)
	want := n * wireLen(frameMessage(identJSON, payload))
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		sk.arm(want)
		h.deliver(benchStream, payload, chat.Eviction{}, chat.Position{})
		sk.wait(b)
	}
	b.StopTimer()
	// After the loop: ResetTimer drops metrics reported before it.
	b.ReportMetric(idleHeap, "idle-heapB/conn")
	b.ReportMetric(idleStack, "idle-stackB/conn")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/conn")
	waitIdle(b, conns)
}

// benchConn does what ServeHTTP and a ConversationChannel subscribe do for
// an authenticated client, minus the authorization lookups.
func benchConn(ctx context.Context, srv *Server, sk *discardSink, userID int64) (*conn, error) {
	return memoryConn(ctx, srv, &memConn{closed: make(chan struct{})}, sk, userID)
}

// memoryConn is benchConn over nc.
func memoryConn(ctx context.Context, srv *Server, nc *memConn, sk *discardSink, userID int64) (*conn, error) {
	req, _ := nethttp.NewRequest(nethttp.MethodGet, "http://chatterly.test/cable?token=x", nil)
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "websocket")
	req.Header.Set("Sec-WebSocket-Version", "13")
	req.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
	req.Header.Set("Sec-WebSocket-Protocol", "actioncable-unsupported, actioncable-v1-json")
	ws, err := srv.upgrader.Upgrade(&hijacker{nc: nc}, req, nil)
	if err != nil {
		return nil, err
	}
	nc.sink = sk // count from here on; the handshake response is not counted
	_ = ws.NetConn().SetDeadline(time.Time{})
	ws.SetReadLimit(srv.cfg.MaxFrameBytes)
	c := &conn{
		srv: srv, ws: ws, id: newID(),
		user:   users.User{ID: userID, Username: "user"},
		claims: auth.Claims{UserID: userID, ID: newID(), ExpiresAt: time.Now().Add(time.Hour)},
		subs:   map[string]*subscription{}, done: make(chan struct{}),
	}
	srv.hub.addConn(c)

	sub := &subscription{conn: c, identifier: benchIdentifier, identJSON: identifierJSON(benchIdentifier),
		channel: srv.chans["ConversationChannel"], streams: []string{benchStream}, convID: 4821}
	if err := srv.hub.acquire(ctx, benchStream); err != nil {
		return nil, err
	}
	srv.hub.attach(benchStream, sub)
	c.subs[benchIdentifier] = sub
	go srv.read(c)
	return c, nil
}

// wireLen is the size of a server (unmasked, uncompressed) text frame.
func wireLen(payload []byte) int {
	switch n := len(payload); {
	case n < 126:
		return n + 2
	case n < 1<<16:
		return n + 4
	default:
		return n + 10
	}
}

// waitIdle waits until no writer goroutine is left, so that the next
// measurement starts from idle connections.
func waitIdle(b *testing.B, conns []*conn) {
	deadline := time.Now().Add(30 * time.Second)
	for _, c := range conns {
		for {
			c.mu.Lock()
			busy := c.writing || c.closing
			c.mu.Unlock()
			if !busy {
				break
			}
			if time.Now().After(deadline) {
				b.Fatal("a connection stayed busy (writing or closing)")
			}
			runtime.Gosched()
		}
	}
}

func memStats() runtime.MemStats {
	var m runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&m)
	return m
}

// nopBroker is a broker whose subscriptions are live at once.
type nopBroker struct{}

func (nopBroker) Publish(context.Context, string, []byte) error          { return nil }
func (nopBroker) PublishTransient(context.Context, string, []byte) error { return nil }
func (nopBroker) PublishEvicting(context.Context, string, []byte, chat.Eviction) error {
	return nil
}
func (nopBroker) Subscribe(context.Context, string) error   { return nil }
func (nopBroker) Unsubscribe(context.Context, string) error { return nil }

// discardSink counts down the bytes a phase is expected to write across
// all connections and signals once they are all written.
type discardSink struct {
	pending atomic.Int64
	done    chan struct{}
}

func (s *discardSink) arm(bytes int) { s.pending.Store(int64(bytes)) }

func (s *discardSink) wait(b *testing.B) {
	select {
	case <-s.done:
	case <-time.After(60 * time.Second):
		b.Fatalf("fan-out incomplete: %d bytes never written", s.pending.Load())
	}
}

func (s *discardSink) wrote(n int) {
	if s.pending.Add(-int64(n)) == 0 {
		s.done <- struct{}{}
	}
}

// memConn is an in-memory net.Conn: writes are counted and discarded;
// reads block until Close, like an idle client's socket. While stuck is
// set, writes after the handshake block until Close, like those to a
// client that stopped reading.
type memConn struct {
	sink      *discardSink
	stuck     atomic.Bool
	closed    chan struct{}
	closeOnce sync.Once
}

func (c *memConn) Read([]byte) (int, error) {
	<-c.closed
	return 0, net.ErrClosed
}

func (c *memConn) Write(p []byte) (int, error) {
	if c.stuck.Load() {
		<-c.closed
		return 0, net.ErrClosed
	}
	if c.sink != nil {
		c.sink.wrote(len(p))
	}
	return len(p), nil
}

func (c *memConn) Close() error {
	c.closeOnce.Do(func() { close(c.closed) })
	return nil
}

var memAddr = &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 8080}

func (c *memConn) LocalAddr() net.Addr              { return memAddr }
func (c *memConn) RemoteAddr() net.Addr             { return memAddr }
func (c *memConn) SetDeadline(time.Time) error      { return nil }
func (c *memConn) SetReadDeadline(time.Time) error  { return nil }
func (c *memConn) SetWriteDeadline(time.Time) error { return nil }

// hijacker is the ResponseWriter net/http hands to ServeHTTP, reduced to
// what Upgrader.Upgrade uses: Hijack, returning the in-memory conn.
type hijacker struct {
	nethttp.ResponseWriter // nil: Upgrade only calls these on a failed handshake
	nc                     *memConn
}

func (h *hijacker) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	return h.nc, bufio.NewReadWriter(bufio.NewReader(h.nc), bufio.NewWriter(h.nc)), nil
}

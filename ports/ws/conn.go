package ws

import (
	"bytes"
	"context"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"github.com/chatterly/chatterly/core/auth"
	"github.com/chatterly/chatterly/core/users"
	"github.com/chatterly/chatterly/ports/ws/internal/netpoll"
)

// conn is one client connection. Its reader goroutine runs for the
// connection's life; a writer goroutine exists only while frames are
// queued, so an idle connection costs one goroutine and no write buffer.
type conn struct {
	srv    *Server
	ws     *websocket.Conn
	id     string
	user   users.User
	claims auth.Claims

	mu      sync.Mutex
	queue   [][]byte
	queued  int  // bytes in queue
	writing bool // a writer goroutine is draining the queue
	closing bool // no more frames but what is queued; then close
	closed  bool
	subs    map[string]*subscription // by raw identifier
	done    chan struct{}

	// raw is the socket under ws. When polled, no goroutine waits on it:
	// the poller starts one while the client has something to read, and
	// reading says that one runs.
	raw         *netpoll.FrameBounded
	polled      *netpoll.Registration // nil: a reader goroutine
	reading     bool
	cleanupOnce sync.Once

	slice  int         // the hub's ping group
	expiry *time.Timer // disconnects when the token expires

	// writeSince is when the write in progress began, in Unix nanoseconds;
	// 0 between writes. See stalled.
	writeSince atomic.Int64

	closeCode int // the close frame's code; 0 is a normal closure

	// ext is the extended protocol's state (resume.go); nil for a client
	// of the plain one, which pays nothing for it.
	ext *extState
}

// subscription is one confirmed (or confirming) identifier of a connection.
type subscription struct {
	conn       *conn
	identifier string
	identJSON  []byte
	channel    channel
	streams    []string
	convID     int64 // ConversationChannel's conversation

	// catch is an extended-protocol subscription's catch-up state
	// (resume.go); nil for the plain protocol.
	catch *catchUp
}

// send queues a frame. A client whose queue outgrows its bound while its
// writer is stuck on the socket is too slow: it is disconnected rather than
// allowed to hold memory or delay others.
//
// A queue also outgrows its bound when its writer is keeping up but has
// not had a CPU for a while: on a busy machine the goroutine delivering
// broadcasts can itself be kept off the CPU for tens of milliseconds and
// then deliver the backlog in one loop, faster than sockets are written.
// That backlog is the server's, not the client's: the frame is queued, up
// to queueSlack times the bound, and the sender yields so that the writers
// it started get a turn.
func (c *conn) send(frame []byte) {
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		return
	}
	bound := c.srv.cfg.SendQueueBytes
	over := c.queued+len(frame) > bound
	if over && (c.queued+len(frame) > queueSlack*bound || c.stalled()) {
		c.srv.metrics.tooSlow.Inc()
		c.queue, c.queued = nil, 0
		c.closeWithLocked(frameTooSlow)
		c.mu.Unlock()
		return
	}
	c.queue = append(c.queue, frame)
	c.queued += len(frame)
	c.startWriterLocked()
	c.mu.Unlock()
	if over {
		runtime.Gosched()
	}
}

// queueSlack bounds how far past Config.SendQueueBytes a client whose
// writer is not stuck may fall behind during a burst.
const queueSlack = 4

// stallAfter is how long a write may wait for room in the socket before
// the client counts as not reading: the kernel refuses bytes only when the
// buffers between us and the client are full.
const stallAfter = 10 * time.Millisecond

// stalled reports whether the client has not taken a write for
// stallAfter. Where the socket can say (TCP on Unix), that is the time
// since the kernel refused bytes of the write in progress: a writer kept
// off the CPU inside a write the kernel accepted is not stalled, however
// long it waits. Elsewhere it is the time spent in the write.
func (c *conn) stalled() bool {
	at := c.writeSince.Load()
	if c.raw != nil {
		if since, known := c.raw.WriteBlockedSince(); known {
			at = since
		}
	}
	return at != 0 && time.Now().UnixNano()-at > int64(stallAfter)
}

// disconnect sends a final frame and closes the connection.
func (c *conn) disconnect(frame []byte) {
	if c.ext != nil && bytes.Equal(frame, frameUnauthorized) {
		c.ext.resumable.Store(false)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closing {
		return
	}
	c.closeWithLocked(frame)
}

// closeForRestart closes without a disconnect frame, which would make a
// client of the extended protocol forget its session: it reconnects, to
// another instance, and resumes.
func (c *conn) closeForRestart() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closing {
		return
	}
	c.closeCode = websocket.CloseServiceRestart
	c.closing = true
	c.startWriterLocked()
}

func (c *conn) closeWithLocked(frame []byte) {
	c.closing = true
	c.queue = append(c.queue, frame)
	c.queued += len(frame)
	c.startWriterLocked()
}

func (c *conn) startWriterLocked() {
	if !c.writing {
		c.writing = true
		go c.write()
	}
}

func (c *conn) write() {
	for {
		c.mu.Lock()
		batch := c.queue
		c.queue, c.queued = nil, 0
		if len(batch) == 0 {
			c.writing = false
			closing, code := c.closing, c.closeCode
			c.mu.Unlock()
			if closing {
				if code == 0 {
					code = websocket.CloseNormalClosure
				}
				c.shut(code)
			}
			return
		}
		c.mu.Unlock()
		for _, frame := range batch {
			now := time.Now()
			c.writeSince.Store(now.UnixNano())
			_ = c.ws.SetWriteDeadline(now.Add(c.srv.cfg.WriteTimeout))
			err := c.ws.WriteMessage(websocket.TextMessage, frame)
			c.writeSince.Store(0)
			if err != nil {
				c.mu.Lock()
				c.closing, c.writing, c.queue, c.queued = true, false, nil, 0
				c.mu.Unlock()
				c.shut(-1)
				return
			}
		}
	}
}

// shut closes the socket once; code -1 skips the close handshake.
func (c *conn) shut(code int) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.closed = true
	idle := c.polled != nil && !c.reading
	c.mu.Unlock()
	if code >= 0 {
		_ = c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, ""), time.Now().Add(time.Second))
	}
	if c.polled != nil {
		c.polled.Remove() // before Close: the descriptor is reused after it
	}
	_ = c.ws.Close() // ends a reader, which cleans up
	if idle {
		go c.cleanup() // no reader to do it
	}
}

// cleanup runs once the reader has stopped (or, for a polled connection,
// once it is closed with no reader running): every subscription ends.
func (c *conn) cleanup() { c.cleanupOnce.Do(c.cleanupNow) }

func (c *conn) cleanupNow() {
	c.mu.Lock()
	c.closing = true
	subs := c.subs
	c.subs = nil
	expiry := c.expiry
	c.mu.Unlock()
	if expiry != nil {
		expiry.Stop()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c.srv.saveSession(ctx, c, subs)
	for _, sub := range subs {
		c.end(ctx, sub)
	}
	c.srv.hub.removeConn(c)
	c.srv.gate.leave(c.user.ID)
	c.shut(-1)
	close(c.done)
}

// drop ends one subscription server-side (the member left the conversation).
func (c *conn) drop(sub *subscription) {
	c.mu.Lock()
	if c.subs[sub.identifier] != sub {
		c.mu.Unlock()
		return
	}
	delete(c.subs, sub.identifier)
	c.mu.Unlock()
	c.end(context.Background(), sub)
}

func (c *conn) end(ctx context.Context, sub *subscription) {
	for _, st := range sub.streams {
		c.srv.hub.release(st, sub)
	}
	if sub.channel.left != nil {
		sub.channel.left(ctx, sub)
	}
}

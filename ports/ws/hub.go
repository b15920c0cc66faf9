package ws

import (
	"context"
	"runtime"
	"sync"

	"github.com/chatterly/chatterly/core/chat"
)

// Broker is the pub/sub the hub rides on: redis.Broker or memory.Broker.
// Subscribe returns once the subscription is live.
type Broker interface {
	chat.Publisher
	Subscribe(ctx context.Context, stream string) error
	Unsubscribe(ctx context.Context, stream string) error
}

// hub routes broker deliveries to local subscriptions. It holds one broker
// subscription per stream that has local subscribers: taken with the first,
// released after the last.
type hub struct {
	broker Broker

	mu      sync.RWMutex
	streams map[string]*stream
	byJTI   map[string]map[*conn]struct{}
	conns   map[*conn]struct{}
	// slices split the connections into pingSlices groups, pinged one
	// group per tick, so that a round of pings is spread over the ping
	// interval instead of competing with broadcasts in one burst.
	slices [pingSlices]map[*conn]struct{}
	added  int

	// leaving holds, per stream, the end of a broker Unsubscribe still in
	// flight: a stream released by its last subscriber and taken again a
	// moment later subscribes only after it, so it cannot end up
	// unsubscribed. Other streams do not wait on each other: thousands of
	// clients connecting at once subscribe to their streams in parallel.
	leaving map[string]chan struct{}
}

// stream is one stream's local subscribers, grouped by identifier so that a
// broadcast is encoded once per identifier rather than once per subscriber.
type stream struct {
	ready     chan struct{} // closed when the broker subscription is settled
	err       error
	refs      int
	byIdent   map[string]map[*subscription]struct{}
	listeners map[*listener]struct{}
}

// listener receives a stream's payloads in process (see Server.Listen).
type listener struct{ fn func([]byte) }

func (h *hub) listen(name string, l *listener) {
	h.mu.Lock()
	defer h.mu.Unlock()
	st := h.streams[name]
	if st.listeners == nil {
		st.listeners = map[*listener]struct{}{}
	}
	st.listeners[l] = struct{}{}
}

func (h *hub) unlisten(name string, l *listener) {
	h.mu.Lock()
	if st := h.streams[name]; st != nil {
		delete(st.listeners, l)
	}
	h.mu.Unlock()
	h.release(name, nil)
}

func newHub(b Broker) *hub {
	return &hub{
		broker: b, streams: map[string]*stream{}, byJTI: map[string]map[*conn]struct{}{},
		conns: map[*conn]struct{}{}, leaving: map[string]chan struct{}{},
	}
}

func (h *hub) addConn(c *conn) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.conns[c] = struct{}{}
	c.slice = h.added % pingSlices
	h.added++
	if h.slices[c.slice] == nil {
		h.slices[c.slice] = map[*conn]struct{}{}
	}
	h.slices[c.slice][c] = struct{}{}
	set := h.byJTI[c.claims.ID]
	if set == nil {
		set = map[*conn]struct{}{}
		h.byJTI[c.claims.ID] = set
	}
	set[c] = struct{}{}
}

func (h *hub) removeConn(c *conn) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.conns, c)
	delete(h.slices[c.slice], c)
	if set := h.byJTI[c.claims.ID]; set != nil {
		delete(set, c)
		if len(set) == 0 {
			delete(h.byJTI, c.claims.ID)
		}
	}
}

// each calls fn for every connection, outside the hub's lock.
func (h *hub) each(fn func(*conn)) { h.visit(func() map[*conn]struct{} { return h.conns }, fn) }

// pingSlices is how many groups the connections are pinged in.
const pingSlices = 30

// eachInSlice calls fn for every connection of one ping group, outside
// the hub's lock.
func (h *hub) eachInSlice(slice int, fn func(*conn)) {
	h.visit(func() map[*conn]struct{} { return h.slices[slice] }, fn)
}

// visit calls fn for the connections of the set that pick returns under
// the hub's read lock, from a copy taken under it, yielding as it goes.
func (h *hub) visit(pick func() map[*conn]struct{}, fn func(*conn)) {
	h.mu.RLock()
	set := pick()
	some := make([]*conn, 0, len(set))
	for c := range set {
		some = append(some, c)
	}
	h.mu.RUnlock()
	for i, c := range some {
		fn(c)
		yieldNow(i)
	}
}

// yieldEvery is how many connections a loop that may start their writer
// goroutines serves before it yields. Started all at once, 10,000 writers
// hold 10,000 stacks together (~40 MB for one round of pings); started a
// few dozen at a time, they finish and hand their stacks on.
const yieldEvery = 64

func yieldNow(i int) {
	if i%yieldEvery == yieldEvery-1 {
		runtime.Gosched()
	}
}

func (h *hub) count() int {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return len(h.conns)
}

// acquire takes a reference on the stream, subscribing the broker for the
// first one. It returns once the stream is live.
func (h *hub) acquire(ctx context.Context, name string) error {
	h.mu.Lock()
	st := h.streams[name]
	first := st == nil
	var gone chan struct{}
	if first {
		st = &stream{ready: make(chan struct{}), byIdent: map[string]map[*subscription]struct{}{}}
		h.streams[name] = st
		gone = h.leaving[name]
	}
	st.refs++
	h.mu.Unlock()
	if first {
		if gone != nil {
			<-gone
		}
		st.err = h.broker.Subscribe(ctx, name)
		close(st.ready)
	} else {
		<-st.ready
	}
	if st.err != nil {
		h.release(name, nil)
		return st.err
	}
	return nil
}

// attach makes sub receive the stream's broadcasts; the stream is acquired.
func (h *hub) attach(name string, sub *subscription) {
	h.mu.Lock()
	defer h.mu.Unlock()
	st := h.streams[name]
	set := st.byIdent[sub.identifier]
	if set == nil {
		set = map[*subscription]struct{}{}
		st.byIdent[sub.identifier] = set
	}
	set[sub] = struct{}{}
}

// release detaches sub (if not nil) and drops a reference, unsubscribing
// the broker after the last.
func (h *hub) release(name string, sub *subscription) {
	h.mu.Lock()
	st := h.streams[name]
	if st == nil {
		h.mu.Unlock()
		return
	}
	if sub != nil {
		if set := st.byIdent[sub.identifier]; set != nil {
			delete(set, sub)
			if len(set) == 0 {
				delete(st.byIdent, sub.identifier)
			}
		}
	}
	st.refs--
	if st.refs > 0 {
		h.mu.Unlock()
		return
	}
	delete(h.streams, name)
	// A new holder waits for this Unsubscribe, and this one for any
	// before it, so the broker sees each stream's calls in order.
	prev := h.leaving[name]
	gone := make(chan struct{})
	h.leaving[name] = gone
	h.mu.Unlock()
	if prev != nil {
		<-prev
	}
	_ = h.broker.Unsubscribe(context.Background(), name)
	h.mu.Lock()
	if h.leaving[name] == gone {
		delete(h.leaving, name)
	}
	h.mu.Unlock()
	close(gone)
}

// deliver is the broker's callback: it writes the payload to every local
// subscriber of the stream, encoding the frame once per identifier, and
// ends instead the subscriptions that ev evicts. It only enqueues, so a
// slow client never delays the others.
func (h *hub) deliver(name string, payload []byte, ev chat.Eviction, pos chat.Position) {
	var evict []*subscription
	var listeners []*listener
	h.mu.RLock()
	if st := h.streams[name]; st != nil {
		for l := range st.listeners {
			listeners = append(listeners, l)
		}
		sent := 0
		for _, set := range st.byIdent {
			var frame, framed []byte
			for sub := range set {
				if ev.Evicts(sub.conn.user.ID) {
					evict = append(evict, sub)
					continue
				}
				if sub.catch != nil {
					if framed == nil {
						framed = frameMessage(sub.identJSON, payload)
						if !pos.IsZero() {
							framed = frameMessageAt(sub.identJSON, payload, name, pos)
						}
					}
					sub.offer(name, pos, framed)
				} else {
					if frame == nil {
						frame = frameMessage(sub.identJSON, payload)
					}
					sub.conn.send(frame)
				}
				yieldNow(sent)
				sent++
			}
		}
	}
	h.mu.RUnlock()
	// Outside the lock: a listener may call back into the hub (auth's
	// revocations reach revoke this way).
	for _, l := range listeners {
		l.fn(payload)
	}
	for _, sub := range evict {
		// Off the broker's goroutine: dropping may unsubscribe the broker.
		go sub.conn.drop(sub)
	}
}

// revoke disconnects every local connection authenticated with the token.
func (h *hub) revoke(jti string) {
	h.mu.RLock()
	var victims []*conn
	for c := range h.byJTI[jti] {
		victims = append(victims, c)
	}
	h.mu.RUnlock()
	for _, c := range victims {
		c.disconnect(frameUnauthorized)
	}
}

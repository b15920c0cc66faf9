package redis

import (
	"context"
	"encoding/binary"
	"hash/maphash"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"github.com/redis/rueidis"

	"github.com/chatterly/chatterly/core"
	"github.com/chatterly/chatterly/core/chat"
)

var _ chat.Publisher = (*Broker)(nil)

// Reconnection backoff. The first attempt is immediate, since a connection
// dropped by a healthy Redis (an idle timeout, a killed client) can be
// replaced at once; then the wait starts at reconnectFirstWait and doubles
// up to reconnectMaxWait, which is short enough that deliveries resume
// within a few seconds of Redis coming back.
const (
	reconnectFirstWait = 100 * time.Millisecond
	reconnectMaxWait   = 2 * time.Second
)

// subscribeBatch bounds the channels of one SUBSCRIBE when a new connection
// takes over every stream, so that no single command gets huge.
const subscribeBatch = 1000

// inboxSize bounds the messages read from Redis and not yet delivered.
// When deliver falls behind, the connection stops being read and Redis
// buffers for it, up to its pubsub output buffer limit, past which it drops
// the connection, which the Broker then replaces.
const inboxSize = 1024

// Broker publishes rendered events to streams and subscribes this process
// to streams over Redis pub/sub. A stream's channel is <prefix>stream:<name>,
// so Brokers on Clients with the same key prefix see each other's publishes
// and no others. It passes chattest.RunPublisher, as memory.Broker does.
//
// Every subscription of a Broker shares one dedicated connection. When that
// connection is lost, the Broker opens another and subscribes it to every
// stream it holds, retrying with backoff until Close. What is published
// meanwhile is lost: delivery is at most once.
type Broker struct {
	c       *Client
	deliver func(stream string, payload []byte, ev chat.Eviction, pos chat.Position)
	prefix  string // a stream's channel is prefix + stream
	hist    chat.HistoryConfig

	// stripes serialize Subscribe and Unsubscribe calls on the same stream
	// (picked by hash), so that what subs says of a stream is what Redis
	// was told last. Calls on other streams mostly run concurrently, and
	// rueidis pipelines their commands. A new connection locks every stripe
	// while it subscribes, so no call slips between its list of streams and
	// its taking over.
	stripes [64]sync.Mutex
	seed    maphash.Seed

	mu      sync.RWMutex
	subs    map[string]struct{} // streams held; a message of another is dropped
	cur     *brokerLink         // the live connection; nil while reconnecting and after Close
	up      chan struct{}       // closed once cur is set
	renewed chan struct{}       // closed, and replaced, each time a lost connection is replaced
	closed  bool

	inbox chan brokerMessage
	done  chan struct{} // closed by Close
	wg    sync.WaitGroup
}

// brokerLink is one dedicated pub/sub connection.
type brokerLink struct {
	dc   rueidis.DedicatedClient
	lost <-chan error  // from SetPubSubHooks: the hooks will not be called again
	gone chan struct{} // closed once the Broker stops using the connection
}

type brokerMessage struct {
	stream  string
	payload []byte
	evict   chat.Eviction
	pos     chat.Position
}

// A stream's channel carries envelopes: a tag byte that says whom the event
// evicts (with the user's id, 8 bytes big-endian, after evictUser), then
// the payload as published. An event that evicts nobody and is a JSON
// object, as every event is, goes without a tag: the bytes are those that
// instances sent before evictions were typed, so during a rolling deploy
// old and new instances still understand each other's events (all but the
// evicting member_left and conversation_deleted).
const (
	evictNone     byte = 'n'
	evictEveryone byte = 'a'
	evictUser     byte = 'u'
)

// seal wraps payload and ev into one message. It copies payload, so the
// caller may reuse it even when a canceled call leaves the command queued.
func seal(payload []byte, ev chat.Eviction) string {
	var b strings.Builder
	b.Grow(9 + len(payload))
	switch {
	case ev.Everyone:
		b.WriteByte(evictEveryone)
	case ev.UserID != 0:
		b.WriteByte(evictUser)
		var id [8]byte
		binary.BigEndian.PutUint64(id[:], uint64(ev.UserID)) //nolint:gosec // bit-for-bit; unsealed as int64
		b.Write(id[:])
	case len(payload) > 0 && payload[0] == '{':
	default:
		b.WriteByte(evictNone)
	}
	b.Write(payload)
	return b.String()
}

// unseal splits a message made by seal; ok is false for anything else.
func unseal(msg string) (payload []byte, ev chat.Eviction, ok bool) {
	if msg == "" {
		return nil, ev, false
	}
	switch msg[0] {
	case '{':
		return []byte(msg), ev, true
	case evictNone:
	case evictEveryone:
		ev.Everyone = true
	case evictUser:
		if len(msg) < 9 {
			return nil, ev, false
		}
		ev.UserID = int64(binary.BigEndian.Uint64([]byte(msg[1:9]))) //nolint:gosec // the bits sealed from an int64
		msg = msg[8:]
	default:
		return nil, ev, false
	}
	return []byte(msg[1:]), ev, true
}

// NewBroker opens the Broker's pub/sub connection through c. deliver is
// called for every message of a subscribed stream, with the payload bytes
// and the Eviction as published, in publish order per stream, from one goroutine, never
// concurrently with itself. It must be quick (a slow deliver holds up every
// stream of the Broker) and must not call the Broker: Close waits for it to
// return, and a Subscribe waits for an acknowledgement queued behind it.
// Close the Broker before c. Unavailable when Redis cannot be reached.
func NewBroker(c *Client, deliver func(stream string, payload []byte, ev chat.Eviction, pos chat.Position)) (*Broker, error) {
	b := &Broker{
		c:       c,
		deliver: deliver,
		prefix:  c.key("stream:"),
		seed:    maphash.MakeSeed(),
		subs:    make(map[string]struct{}),
		up:      make(chan struct{}),
		renewed: make(chan struct{}),
		inbox:   make(chan brokerMessage, inboxSize),
		done:    make(chan struct{}),
	}
	l, err := b.connect()
	if err != nil {
		return nil, err
	}
	b.wg.Add(2)
	go b.dispatch()
	go b.supervise(l)
	return b, nil
}

func brokerClosed() error { return core.E(core.Unavailable, "redis: broker closed") }

func brokerUnavailable(err error) error { return core.Wrap(core.Unavailable, "redis unavailable", err) }

// Publish sends payload to every subscriber of stream, on every instance,
// through the Client's pool. Unavailable when Redis cannot be reached or
// after Close.
func (b *Broker) Publish(ctx context.Context, stream string, payload []byte) error {
	return b.PublishEvicting(ctx, stream, payload, chat.Eviction{})
}

// PublishEvicting is Publish with the eviction delivered alongside, in the
// same message, so that every instance sees the two together.
func (b *Broker) PublishEvicting(ctx context.Context, stream string, payload []byte, ev chat.Eviction) error {
	return b.publish(ctx, stream, seal(payload, ev), b.hist.Limit > 0)
}

// PublishTransient is Publish without a place in the stream's history.
func (b *Broker) PublishTransient(ctx context.Context, stream string, payload []byte) error {
	return b.publish(ctx, stream, seal(payload, chat.Eviction{}), false)
}

func (b *Broker) publish(ctx context.Context, stream, sealed string, keep bool) error {
	if b.isClosed() {
		return brokerClosed()
	}
	ctx, cancel := b.c.bound(ctx)
	defer cancel()
	if keep {
		return b.record(ctx, stream, sealed)
	}
	cmd := b.c.rdb.B().Publish().Channel(b.prefix + stream).Message(sealed).Build()
	return b.c.fail(ctx, opPublish, b.c.rdb.Do(ctx, cmd).Error())
}

// Subscribe returns once Redis has acknowledged the subscription, so that
// every message published to the stream after it returns is delivered.
// Subscribing to a stream already held does nothing. While the connection
// is being replaced it waits for the new one, within the Client's timeout.
// Unavailable when Redis cannot be reached in time or after Close.
func (b *Broker) Subscribe(ctx context.Context, stream string) error {
	ctx, cancel := b.c.bound(ctx)
	defer cancel()
	for {
		l, err := b.live(ctx)
		if err != nil {
			return err
		}
		if finished, err := b.subscribeOn(ctx, l, stream); finished {
			return err
		}
		select {
		case <-l.gone:
		case <-b.done:
			return brokerClosed()
		case <-ctx.Done():
			return brokerUnavailable(ctx.Err())
		}
	}
}

// live returns the current connection, waiting for one while reconnecting.
func (b *Broker) live(ctx context.Context) (*brokerLink, error) {
	for {
		b.mu.RLock()
		closed, l, up := b.closed, b.cur, b.up
		b.mu.RUnlock()
		if closed {
			return nil, brokerClosed()
		}
		if l != nil {
			return l, nil
		}
		select {
		case <-up:
		case <-b.done:
		case <-ctx.Done():
			return nil, brokerUnavailable(ctx.Err())
		}
	}
}

// subscribeOn subscribes l to stream. It reports finished=false, with no
// error, when l is lost, or found replaced, before Redis answered: the
// caller then waits for the next connection and tries again.
func (b *Broker) subscribeOn(ctx context.Context, l *brokerLink, stream string) (finished bool, err error) {
	stripe := b.stripe(stream)
	stripe.Lock()
	defer stripe.Unlock()
	b.mu.Lock()
	if b.cur != l {
		b.mu.Unlock()
		return false, nil
	}
	if _, held := b.subs[stream]; held {
		b.mu.Unlock()
		return true, nil
	}
	// Held before Redis is asked, so that the messages that follow the
	// acknowledgement are not dropped as unwanted.
	b.subs[stream] = struct{}{}
	b.mu.Unlock()

	err = l.dc.Do(ctx, l.dc.B().Subscribe().Channel(b.prefix+stream).Build()).Error()
	if err == nil {
		return true, nil
	}
	b.mu.Lock()
	delete(b.subs, stream)
	b.mu.Unlock()
	if _, isReply := rueidis.IsRedisErr(err); isReply || ctx.Err() != nil {
		return true, b.c.fail(ctx, opSubscribe, err)
	}
	return false, nil
}

// Unsubscribe stops deliveries of the stream at once, messages already
// read from Redis included, then tells Redis. Unknown streams, and a closed
// Broker, are fine. Unavailable when Redis could not be told; the stream's
// messages that Redis may then still send are dropped.
func (b *Broker) Unsubscribe(ctx context.Context, stream string) error {
	stripe := b.stripe(stream)
	stripe.Lock()
	defer stripe.Unlock()
	b.mu.Lock()
	_, held := b.subs[stream]
	delete(b.subs, stream)
	l := b.cur
	b.mu.Unlock()
	if !held || l == nil {
		// Without a connection there is nothing to tell: the next one
		// subscribes only to the streams still held.
		return nil
	}
	ctx, cancel := b.c.bound(ctx)
	defer cancel()
	return b.c.fail(ctx, opSubscribe, l.dc.Do(ctx, l.dc.B().Unsubscribe().Channel(b.prefix+stream).Build()).Error())
}

// Resubscribed returns a channel that is closed the next time the Broker
// has replaced a lost connection and subscribed it to every stream it
// holds. Messages published while the connection was down are lost, so a
// caller can use it to have its subscribers catch up.
func (b *Broker) Resubscribed() <-chan struct{} {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return b.renewed
}

// Close unsubscribes from every stream and closes the Broker's connection;
// once it returns, deliver is not called again. Later Publish and Subscribe
// calls fail with Unavailable. It may be called more than once.
func (b *Broker) Close() {
	b.mu.Lock()
	if !b.closed {
		b.closed = true
		close(b.done)
	}
	b.mu.Unlock()
	b.wg.Wait()
}

func (b *Broker) isClosed() bool {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return b.closed
}

func (b *Broker) stripe(stream string) *sync.Mutex {
	return &b.stripes[maphash.String(b.seed, stream)%uint64(len(b.stripes))]
}

// connect opens a dedicated connection, subscribes it to every stream held
// and makes it current.
func (b *Broker) connect() (*brokerLink, error) {
	dc, _ := b.c.rdb.Dedicate() // dc.Close releases it
	l := &brokerLink{dc: dc, gone: make(chan struct{})}
	// The hook is in place before any SUBSCRIBE, so no message is missed.
	l.lost = dc.SetPubSubHooks(rueidis.PubSubHooks{OnMessage: b.receive})

	for i := range b.stripes {
		b.stripes[i].Lock()
	}
	defer func() {
		for i := range b.stripes {
			b.stripes[i].Unlock()
		}
	}()
	b.mu.RLock()
	channels := make([]string, 0, len(b.subs))
	for stream := range b.subs {
		channels = append(channels, b.prefix+stream)
	}
	b.mu.RUnlock()

	// A PING without streams, so that a dead connection shows now.
	cmds := rueidis.Commands{dc.B().Ping().Build()}
	for len(channels) > 0 {
		n := min(len(channels), subscribeBatch)
		cmds = append(cmds, dc.B().Subscribe().Channel(channels[:n]...).Build())
		channels = channels[n:]
	}
	ctx, cancel := b.c.bound(context.Background())
	defer cancel()
	var err error
	for _, r := range dc.DoMulti(ctx, cmds...) {
		if err = r.Error(); err != nil {
			break
		}
	}
	if err != nil {
		dc.Close()
		return nil, b.c.fail(ctx, opSubscribe, err)
	}
	b.mu.Lock()
	closed := b.closed
	if !closed {
		b.cur = l
		close(b.up)
	}
	b.mu.Unlock()
	if closed {
		dc.Close()
		return nil, brokerClosed()
	}
	return l, nil
}

// supervise replaces the connection whenever it is lost, until Close.
func (b *Broker) supervise(l *brokerLink) {
	defer b.wg.Done()
	for {
		select {
		case err := <-l.lost:
			// Whatever the reason (Redis restarted, the network, a killed
			// client), the answer is the same: a new connection.
			_ = err
		case <-b.done:
			b.drop(l)
			return
		}
		b.drop(l)
		if l = b.reconnect(); l == nil {
			return
		}
		b.mu.Lock()
		close(b.renewed)
		b.renewed = make(chan struct{})
		b.mu.Unlock()
	}
}

// drop stops using l and closes it. Calls waiting on l move on to the next
// connection.
func (b *Broker) drop(l *brokerLink) {
	b.mu.Lock()
	if b.cur == l {
		b.cur = nil
		b.up = make(chan struct{})
	}
	b.mu.Unlock()
	close(l.gone)
	l.dc.Close()
}

// reconnect connects again, with backoff, until it succeeds (it returns the
// new connection) or the Broker is closed (it returns nil).
func (b *Broker) reconnect() *brokerLink {
	wait := time.Duration(0)
	for {
		if wait > 0 {
			// Jitter, so that the instances that lost Redis together do
			// not all come back at the same instant.
			t := time.NewTimer(wait/2 + rand.N(wait/2+1)) //nolint:gosec // jitter needs spread, not secrecy
			select {
			case <-t.C:
			case <-b.done:
				t.Stop()
				return nil
			}
		}
		if l, err := b.connect(); err == nil {
			return l
		}
		if b.isClosed() {
			return nil
		}
		wait = min(max(2*wait, reconnectFirstWait), reconnectMaxWait)
	}
}

// receive is the pub/sub hook, run by the connection's reading goroutine.
func (b *Broker) receive(m rueidis.PubSubMessage) {
	stream, ok := strings.CutPrefix(m.Channel, b.prefix)
	if !ok {
		return
	}
	var payload []byte
	var ev chat.Eviction
	var pos chat.Position
	if strings.HasPrefix(m.Message, "h") {
		payload, ev, pos, ok = unsealPositioned(m.Message)
	} else {
		payload, ev, ok = unseal(m.Message)
	}
	if !ok {
		return // not ours: nothing else publishes on our prefix
	}
	select {
	case b.inbox <- brokerMessage{stream, payload, ev, pos}:
	case <-b.done:
	}
}

// dispatch calls deliver for each received message of a stream still held.
func (b *Broker) dispatch() {
	defer b.wg.Done()
	for {
		select {
		case m := <-b.inbox:
			if b.holds(m.stream) {
				b.deliver(m.stream, m.payload, m.evict, m.pos)
			}
		case <-b.done:
			return
		}
	}
}

// holds reports whether deliveries of stream are wanted now: Unsubscribe
// and Close also stop messages already read from Redis.
func (b *Broker) holds(stream string) bool {
	b.mu.RLock()
	defer b.mu.RUnlock()
	_, ok := b.subs[stream]
	return ok && !b.closed
}

package memory

import (
	"bytes"
	"context"
	"strconv"
	"sync"
	"time"

	"github.com/chatterly/chatterly/core"
	"github.com/chatterly/chatterly/core/chat"
)

var _ chat.Publisher = (*Broker)(nil)

// Bus joins in-process Brokers the way one Redis joins the brokers of
// several instances: a publish on any Broker of a Bus reaches every Broker
// of the Bus subscribed to the stream, so tests can run two "instances" in
// one process.
type Bus struct {
	mu   sync.RWMutex
	subs map[string]map[*Broker]struct{} // stream -> subscribed brokers

	// The streams' histories, shared by the Brokers as Redis shares them;
	// kept only when hist.Limit > 0. Guarded by mu.
	hist    chat.HistoryConfig
	now     func() time.Time
	streams map[string]*history
	epochs  int // epochs begun, so that each differs from the last
	records int // events recorded, to sweep idle histories every sweepHistoriesEvery
}

// sweepHistoriesEvery spreads the sweep of histories idle past their TTL
// (which Redis expires by itself): a stream published to once would
// otherwise keep its events for the life of the process.
const sweepHistoriesEvery = 4096

// history is what a Bus keeps of one stream: the events of one epoch, the
// oldest first, at most hist.Limit of them and none older than hist.TTL
// but the newest.
type history struct {
	epoch string
	next  uint64 // the next event's offset
	recs  []chat.Record
}

// NewBus returns a Bus without Brokers that keeps no history.
func NewBus() *Bus { return &Bus{subs: make(map[string]map[*Broker]struct{})} }

// KeepHistory makes the Bus keep each stream's recent events, within h,
// stamped with now, and returns the Bus. Call it before the first publish.
func (bus *Bus) KeepHistory(h chat.HistoryConfig, now func() time.Time) *Bus {
	bus.hist, bus.now, bus.streams = h, now, map[string]*history{}
	return bus
}

// Broker publishes to the streams of its Bus and delivers the messages of
// the streams it subscribed to. It passes chattest.RunPublisher, as
// redis.Broker does.
type Broker struct {
	bus     *Bus
	deliver func(stream string, payload []byte, ev chat.Eviction, pos chat.Position)

	mu      sync.Mutex
	streams map[string]struct{} // subscribed streams; a queued message of another is dropped
	queue   []brokerMessage     // published, not yet delivered
	closed  bool

	wake    chan struct{} // signalled when queue grows
	quit    chan struct{} // closed by Close
	stopped chan struct{} // closed when the delivering goroutine returns
}

type brokerMessage struct {
	stream  string
	payload []byte
	evict   chat.Eviction
	pos     chat.Position
}

// NewBroker returns a Broker on a Bus of its own. See Bus.NewBroker.
func NewBroker(deliver func(stream string, payload []byte, ev chat.Eviction, pos chat.Position)) *Broker {
	return NewBus().NewBroker(deliver)
}

// NewBroker returns a Broker on the bus. deliver is called for every message
// of a subscribed stream, with the Eviction it was published with, in
// publish order per stream, from one goroutine, never concurrently with
// itself. It must be quick, and must not call the Broker's Close, which
// waits for it to return.
func (bus *Bus) NewBroker(deliver func(stream string, payload []byte, ev chat.Eviction, pos chat.Position)) *Broker {
	b := &Broker{
		bus:     bus,
		deliver: deliver,
		streams: make(map[string]struct{}),
		wake:    make(chan struct{}, 1),
		quit:    make(chan struct{}),
		stopped: make(chan struct{}),
	}
	go b.run()
	return b
}

func brokerClosed() error { return core.E(core.Unavailable, "broker closed") }

// Publish queues a copy of payload for every Broker of the bus subscribed
// to stream, itself included; with none, the message is dropped. It never
// blocks on a subscriber. Unavailable after Close.
func (b *Broker) Publish(ctx context.Context, stream string, payload []byte) error {
	return b.PublishEvicting(ctx, stream, payload, chat.Eviction{})
}

// PublishEvicting is Publish with the eviction delivered alongside.
func (b *Broker) PublishEvicting(_ context.Context, stream string, payload []byte, ev chat.Eviction) error {
	return b.publish(stream, payload, ev, b.bus.hist.Limit > 0)
}

// PublishTransient is Publish without a place in the stream's history.
func (b *Broker) PublishTransient(_ context.Context, stream string, payload []byte) error {
	return b.publish(stream, payload, chat.Eviction{}, false)
}

func (b *Broker) publish(stream string, payload []byte, ev chat.Eviction, keep bool) error {
	b.mu.Lock()
	closed := b.closed
	b.mu.Unlock()
	if closed {
		return brokerClosed()
	}
	// Positions are handed out and queued under the write lock, so that
	// every Broker receives a stream's events in the order of their offsets.
	var pos chat.Position
	if keep {
		b.bus.mu.Lock()
		defer b.bus.mu.Unlock()
		pos = b.bus.record(stream, payload, ev)
	} else {
		b.bus.mu.RLock()
		defer b.bus.mu.RUnlock()
	}
	for sub := range b.bus.subs[stream] {
		// A copy for each, as each Redis subscriber reads its own: the
		// publisher may reuse payload, and one receiver cannot alter
		// another's.
		sub.enqueue(brokerMessage{stream, bytes.Clone(payload), ev, pos})
	}
	return nil
}

// record appends an event to the stream's history and returns its place.
// bus.mu must be held for writing.
func (bus *Bus) record(stream string, payload []byte, ev chat.Eviction) chat.Position {
	now := bus.now().Truncate(time.Millisecond)
	if bus.records++; bus.records%sweepHistoriesEvery == 0 {
		for name := range bus.streams {
			bus.live(name, now)
		}
	}
	h := bus.live(stream, now)
	if h == nil {
		bus.epochs++
		h = &history{epoch: strconv.FormatInt(now.UnixMilli(), 10) + "." + strconv.Itoa(bus.epochs), next: 1}
		bus.streams[stream] = h
	}
	pos := chat.Position{Epoch: h.epoch, Offset: h.next}
	h.next++
	h.recs = append(h.recs, chat.Record{Payload: bytes.Clone(payload), Eviction: ev, Position: pos, At: now})
	drop := max(0, len(h.recs)-bus.hist.Limit)
	for drop < len(h.recs)-1 && now.Sub(h.recs[drop].At) > bus.hist.TTL {
		drop++
	}
	if drop > 0 {
		// Resliced, not copied: append moves the live part when it grows
		// the array, so a full history costs O(1) per event, not O(Limit).
		clear(h.recs[:drop])
		h.recs = h.recs[drop:]
	}
	return pos
}

// live returns the stream's history, forgetting it once it has been idle
// for the TTL, as Redis expires it. bus.mu must be held for writing.
func (bus *Bus) live(stream string, now time.Time) *history {
	h := bus.streams[stream]
	if h != nil && now.Sub(h.recs[len(h.recs)-1].At) > bus.hist.TTL {
		delete(bus.streams, stream)
		return nil
	}
	return h
}

// History returns the stream's events after the position, oldest first.
// NotFound when they cannot all be given: another epoch (the history was
// lost since), or older events dropped by the history's bounds.
func (b *Broker) History(_ context.Context, stream string, after chat.Position) ([]chat.Record, error) {
	b.bus.mu.Lock()
	defer b.bus.mu.Unlock()
	if b.bus.streams == nil {
		return nil, chat.ErrHistoryLost
	}
	h := b.bus.live(stream, b.bus.now())
	if h == nil || h.epoch != after.Epoch || after.Offset >= h.next || h.recs[0].Position.Offset > after.Offset+1 {
		return nil, chat.ErrHistoryLost
	}
	return cloneRecords(h.recs[after.Offset+1-h.recs[0].Position.Offset:]), nil
}

// HistorySince returns the stream's events published at since or later,
// oldest first. NotFound when some of them may have been dropped.
func (b *Broker) HistorySince(_ context.Context, stream string, since time.Time) ([]chat.Record, error) {
	b.bus.mu.Lock()
	defer b.bus.mu.Unlock()
	now := b.bus.now()
	if b.bus.streams == nil || now.Sub(since) > b.bus.hist.TTL {
		return nil, chat.ErrHistoryLost
	}
	h := b.bus.live(stream, now)
	if h == nil {
		return nil, nil // nothing published since: it would still be kept
	}
	i := 0
	for i < len(h.recs) && h.recs[i].At.Before(since) {
		i++
	}
	if i == 0 && h.recs[0].Position.Offset > 1 {
		return nil, chat.ErrHistoryLost // what came before the oldest kept may be later than since
	}
	return cloneRecords(h.recs[i:]), nil
}

func cloneRecords(recs []chat.Record) []chat.Record {
	out := make([]chat.Record, len(recs))
	for i, r := range recs {
		out[i] = r
		out[i].Payload = bytes.Clone(r.Payload)
	}
	return out
}

func (b *Broker) enqueue(d brokerMessage) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return
	}
	b.queue = append(b.queue, d)
	select {
	case b.wake <- struct{}{}:
	default:
	}
}

// Subscribe makes the Broker receive the stream's messages from the next
// publish on; subscribing twice is the same as once. Unavailable after Close.
func (b *Broker) Subscribe(_ context.Context, stream string) error {
	b.bus.mu.Lock()
	defer b.bus.mu.Unlock()
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return brokerClosed()
	}
	b.streams[stream] = struct{}{}
	subs := b.bus.subs[stream]
	if subs == nil {
		subs = make(map[*Broker]struct{})
		b.bus.subs[stream] = subs
	}
	subs[b] = struct{}{}
	return nil
}

// Unsubscribe stops deliveries of the stream at once, queued messages
// included. It never fails; an unknown stream, or a closed Broker, is fine.
func (b *Broker) Unsubscribe(_ context.Context, stream string) error {
	b.bus.mu.Lock()
	defer b.bus.mu.Unlock()
	b.mu.Lock()
	defer b.mu.Unlock()
	b.leave(stream)
	return nil
}

// leave removes the subscription to stream. b.bus.mu and b.mu must be held.
func (b *Broker) leave(stream string) {
	delete(b.streams, stream)
	if subs := b.bus.subs[stream]; subs != nil {
		delete(subs, b)
		if len(subs) == 0 {
			delete(b.bus.subs, stream)
		}
	}
}

// Close unsubscribes from every stream and drops queued messages; once it
// returns, deliver is not called again. Later Publish and Subscribe calls
// fail with Unavailable. It may be called more than once.
func (b *Broker) Close() {
	b.bus.mu.Lock()
	b.mu.Lock()
	if !b.closed {
		b.closed = true
		for stream := range b.streams {
			b.leave(stream)
		}
		b.queue = nil
		close(b.quit)
	}
	b.mu.Unlock()
	b.bus.mu.Unlock()
	<-b.stopped
}

// run delivers queued messages until Close. Publishers only append to the
// queue, so a slow deliver never holds up a publish.
func (b *Broker) run() {
	defer close(b.stopped)
	for {
		select {
		case <-b.wake:
		case <-b.quit:
			return
		}
		b.mu.Lock()
		batch := b.queue
		b.queue = nil
		b.mu.Unlock()
		for _, d := range batch {
			if b.holds(d.stream) {
				b.deliver(d.stream, d.payload, d.evict, d.pos)
			}
		}
	}
}

// holds reports whether deliveries of stream are wanted now: Unsubscribe
// and Close also stop messages queued before them.
func (b *Broker) holds(stream string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	_, ok := b.streams[stream]
	return ok && !b.closed
}

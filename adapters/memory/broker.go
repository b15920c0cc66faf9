package memory

import (
	"bytes"
	"context"
	"sync"

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
}

// NewBus returns a Bus without Brokers.
func NewBus() *Bus { return &Bus{subs: make(map[string]map[*Broker]struct{})} }

// Broker publishes to the streams of its Bus and delivers the messages of
// the streams it subscribed to. It passes chattest.RunPublisher, as
// redis.Broker does.
type Broker struct {
	bus     *Bus
	deliver func(stream string, payload []byte, ev chat.Eviction)

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
}

// NewBroker returns a Broker on a Bus of its own. See Bus.NewBroker.
func NewBroker(deliver func(stream string, payload []byte, ev chat.Eviction)) *Broker {
	return NewBus().NewBroker(deliver)
}

// NewBroker returns a Broker on the bus. deliver is called for every message
// of a subscribed stream, with the Eviction it was published with, in
// publish order per stream, from one goroutine, never concurrently with
// itself. It must be quick, and must not call the Broker's Close, which
// waits for it to return.
func (bus *Bus) NewBroker(deliver func(stream string, payload []byte, ev chat.Eviction)) *Broker {
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
	b.mu.Lock()
	closed := b.closed
	b.mu.Unlock()
	if closed {
		return brokerClosed()
	}
	b.bus.mu.RLock()
	defer b.bus.mu.RUnlock()
	for sub := range b.bus.subs[stream] {
		// A copy for each, as each Redis subscriber reads its own: the
		// publisher may reuse payload, and one receiver cannot alter
		// another's.
		sub.enqueue(brokerMessage{stream, bytes.Clone(payload), ev})
	}
	return nil
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
				b.deliver(d.stream, d.payload, d.evict)
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

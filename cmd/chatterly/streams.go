package main

import (
	"context"
	"sync"
)

// broker is what the app needs of memory.Broker and redis.Broker besides publishing.
type broker interface {
	Publish(ctx context.Context, stream string, payload []byte) error
	Subscribe(ctx context.Context, stream string) error
	Unsubscribe(ctx context.Context, stream string) error
	Close()
}

// streams hands broker deliveries to local listeners, holding one broker
// subscription per stream that has any. The WebSocket gateway's hub will
// take this over; until then tests watch events through App.Subscribe.
type streams struct {
	broker    broker
	mu        sync.Mutex
	listeners map[string]map[chan []byte]struct{}
}

func newStreams() *streams { return &streams{listeners: map[string]map[chan []byte]struct{}{}} }

// deliver is the broker's callback. A listener that does not keep up loses
// events rather than stalling every other stream.
func (s *streams) deliver(stream string, payload []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for ch := range s.listeners[stream] {
		select {
		case ch <- payload:
		default:
		}
	}
}

func (s *streams) subscribe(ctx context.Context, stream string) (<-chan []byte, func(), error) {
	ch := make(chan []byte, 256)
	s.mu.Lock()
	first := len(s.listeners[stream]) == 0
	if first {
		s.listeners[stream] = map[chan []byte]struct{}{}
	}
	s.listeners[stream][ch] = struct{}{}
	s.mu.Unlock()
	if first {
		if err := s.broker.Subscribe(ctx, stream); err != nil {
			s.remove(stream, ch)
			return nil, nil, err
		}
	}
	var once sync.Once
	return ch, func() { once.Do(func() { s.remove(stream, ch) }) }, nil
}

func (s *streams) remove(stream string, ch chan []byte) {
	s.mu.Lock()
	delete(s.listeners[stream], ch)
	last := len(s.listeners[stream]) == 0
	if last {
		delete(s.listeners, stream)
	}
	s.mu.Unlock()
	if last {
		_ = s.broker.Unsubscribe(context.Background(), stream)
	}
}

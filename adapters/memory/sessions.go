package memory

import (
	"bytes"
	"context"
	"sync"
	"time"
)

// Sessions keeps cable sessions in process, as redis.Sessions does in
// Redis. Expired ones are swept every sessionSweepEvery saves.
type Sessions struct {
	now func() time.Time

	mu    sync.Mutex
	byID  map[string]savedSession
	saves int
}

type savedSession struct {
	state   []byte
	expires time.Time
}

// sessionSweepEvery spreads the sweep's cost: a storm of closing connections
// saves thousands of sessions at once.
const sessionSweepEvery = 1024

// NewSessions returns empty Sessions on the clock now.
func NewSessions(now func() time.Time) *Sessions {
	return &Sessions{now: now, byID: map[string]savedSession{}}
}

// Save keeps state under sid for ttl.
func (s *Sessions) Save(_ context.Context, sid string, state []byte, ttl time.Duration) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	if s.saves++; s.saves%sessionSweepEvery == 0 {
		for id, saved := range s.byID {
			if !now.Before(saved.expires) {
				delete(s.byID, id)
			}
		}
	}
	s.byID[sid] = savedSession{bytes.Clone(state), now.Add(ttl)}
	return nil
}

// Take returns and forgets what sid holds.
func (s *Sessions) Take(_ context.Context, sid string) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	saved, ok := s.byID[sid]
	delete(s.byID, sid)
	if !ok || !s.now().Before(saved.expires) {
		return nil, nil
	}
	return saved.state, nil
}

package auth

import (
	"context"
	"encoding/json"
	"sync"
)

// RevocationStream carries {"jti": ...} for every logged-out token, to
// every instance.
const RevocationStream = "auth_revocations"

// Publisher sends rendered events to streams; chat.Publisher's shape.
type Publisher interface {
	// PublishTransient: a logout matters to the sockets open now, not to
	// a history replayed later.
	PublishTransient(ctx context.Context, stream string, payload []byte) error
}

// Listener hears a stream's payloads from every instance. Implementation:
// ws.Server, which holds the process's broker subscriptions.
type Listener interface {
	// Listen calls fn with every payload published to stream, on any
	// instance, from when it returns until stop is called. fn must not block.
	Listen(ctx context.Context, stream string, fn func(payload []byte)) (stop func(), err error)
}

// revocation is the payload of RevocationStream.
type revocation struct {
	JTI string `json:"jti"`
}

// observers are told of every token revoked on any instance.
type observers struct {
	mu  sync.RWMutex
	fns []func(jti string)
}

// OnRevoke registers fn to be called with the id (jti) of every token
// logged out on any instance, this one included, once WatchRevocations
// has started: the WebSocket gateway closes the token's sockets. fn must
// not block.
func (s *Service) OnRevoke(fn func(jti string)) {
	s.revoked.mu.Lock()
	defer s.revoked.mu.Unlock()
	s.revoked.fns = append(s.revoked.fns, fn)
}

// WatchRevocations hears the logouts of every instance through l, from
// when it returns until stop is called: each ends this instance's outage
// trust in its token (Config.OutageGrace) and is passed to the functions
// registered with OnRevoke.
func (s *Service) WatchRevocations(ctx context.Context, l Listener) (stop func(), err error) {
	return l.Listen(ctx, RevocationStream, s.heard)
}

func (s *Service) heard(payload []byte) {
	var r revocation
	if json.Unmarshal(payload, &r) != nil || r.JTI == "" {
		return
	}
	s.cleared.forget(r.JTI)
	s.revoked.mu.RLock()
	defer s.revoked.mu.RUnlock()
	for _, fn := range s.revoked.fns {
		fn(r.JTI)
	}
}

// announce tells every instance that the token jti is revoked.
func (s *Service) announce(ctx context.Context, jti string) {
	if s.cfg.Revocations == nil {
		return
	}
	payload, _ := json.Marshal(revocation{JTI: jti}) // a string always marshals
	// The token is already denied everywhere; this only hurries open
	// sockets along, so a failure is not the caller's.
	_ = s.cfg.Revocations.PublishTransient(context.WithoutCancel(ctx), RevocationStream, payload)
}

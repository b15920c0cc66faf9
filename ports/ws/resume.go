package ws

import (
	"context"
	"encoding/json"
	"sync"
	"sync/atomic"
	"time"

	"github.com/chatterly/chatterly/core/chat"
	"github.com/chatterly/chatterly/core/users"
)

// The extended protocol (AnyCable's actioncable-v1-ext-json, which its
// client @anycable/core speaks) adds what a client needs to lose nothing
// across a reconnect: every event carries its stream's position, a client
// asks for what it missed since the positions it holds (or since a time),
// and a session closed within SessionTTL can be resumed by its id, with
// its subscriptions, instead of authorizing each anew. Clients of the plain
// protocol see none of it.
const (
	protocolPlain = "actioncable-v1-json"
	protocolExt   = "actioncable-v1-ext-json"
)

// Sessions keeps what a closed connection of the extended protocol was
// subscribed to, for its client to resume within a TTL, on any instance.
// Implementations: redis.Sessions, memory.Sessions; both pass
// wstest.RunSessions.
type Sessions interface {
	// Save keeps state under sid for ttl.
	Save(ctx context.Context, sid string, state []byte, ttl time.Duration) error
	// Take returns and forgets what sid holds: a session resumes once.
	// nil, nil when it holds nothing (expired, taken, never saved).
	Take(ctx context.Context, sid string) ([]byte, error)
}

// History reads the events a broker kept of a stream: redis.Broker and
// memory.Broker. Both return chat.ErrHistoryLost when they cannot give
// every event asked for.
type History interface {
	History(ctx context.Context, stream string, after chat.Position) ([]chat.Record, error)
	HistorySince(ctx context.Context, stream string, since time.Time) ([]chat.Record, error)
}

// session is what Sessions keeps of a connection: the user as it was
// authenticated (what the gateway uses of it, no secrets), so that a
// resumed connection need not load it, and its subscriptions.
type session struct {
	UserID      int64    `json:"user_id"`
	Username    string   `json:"username"`
	DisplayName *string  `json:"display_name,omitempty"`
	AvatarURL   *string  `json:"avatar_url,omitempty"`
	Identifiers []string `json:"identifiers"`
}

func (s session) user() users.User {
	return users.User{ID: s.UserID, Username: s.Username, DisplayName: s.DisplayName, AvatarURL: s.AvatarURL}
}

// extState is what a connection of the extended protocol keeps besides a
// plain one's. histories and historyWindow are guarded by the conn's mu.
type extState struct {
	// sid is the session the connection's client may resume once it is
	// closed, unless it was closed for its credentials (resumable false).
	sid       string
	resumable atomic.Bool
	// histories counts the history requests since historyWindow began.
	histories     int
	historyWindow time.Time
}

// catchUp is a subscription's state for the extended protocol: while
// holding, live events wait in held for the replay of what the client
// missed; last is, per stream, the newest event sent, so that none is
// sent twice. See offer.
type catchUp struct {
	mu      sync.Mutex
	holding bool
	held    []heldFrame
	last    map[string]chat.Position
}

// heldFrame is a live event queued while a subscription catches up.
type heldFrame struct {
	stream string
	pos    chat.Position
	frame  []byte
}

// restoreHold bounds how long a resumed subscription queues live events
// for the history request its client sends right after the welcome.
const restoreHold = 10 * time.Second

// offer sends a positioned frame to an extended-protocol subscriber: held
// while it catches up, dropped when it got that event already (a replay
// and the live delivery of one event cross), sent otherwise.
func (sub *subscription) offer(stream string, pos chat.Position, frame []byte) {
	cu := sub.catch
	cu.mu.Lock()
	defer cu.mu.Unlock()
	if cu.holding {
		cu.held = append(cu.held, heldFrame{stream, pos, frame})
		return
	}
	sub.sendNewLocked(heldFrame{stream, pos, frame})
}

// sendNewLocked sends f unless it was sent already; sub.catch.mu is held.
func (sub *subscription) sendNewLocked(f heldFrame) {
	cu := sub.catch
	if !f.pos.IsZero() {
		last := cu.last[f.stream]
		if last.Epoch == f.pos.Epoch && f.pos.Offset <= last.Offset {
			return
		}
		if cu.last == nil {
			cu.last = make(map[string]chat.Position, len(sub.streams))
		}
		cu.last[f.stream] = f.pos
	}
	sub.conn.send(f.frame)
}

// release sends the replayed frames, then the live ones held meanwhile
// that the replay did not cover, then last (if any), and ends the hold.
// Releasing a subscription not held sends only last.
func (sub *subscription) release(replay []heldFrame, last []byte) {
	cu := sub.catch
	cu.mu.Lock()
	defer cu.mu.Unlock()
	held := cu.held
	cu.holding, cu.held = false, nil
	for _, f := range replay {
		sub.sendNewLocked(f)
	}
	for _, f := range held {
		sub.sendNewLocked(f)
	}
	if last != nil {
		sub.conn.send(last)
	}
}

// replay answers a history request for sub: the missed events of each of
// its streams, then confirm_history, or reject_history when some could not
// be found (the client then catches up over REST). Live events held since
// sub began catching up follow the replay, less those it covered.
func (s *Server) replay(ctx context.Context, sub *subscription, req *historyRequest) {
	var frames []heldFrame
	ok := s.history != nil
	for _, stream := range sub.streams {
		if !ok {
			break
		}
		var recs []chat.Record
		var err error
		if p, known := req.Streams[stream]; known {
			recs, err = s.history.History(ctx, stream, chat.Position{Epoch: p.Epoch, Offset: p.Offset})
		} else if req.Since > 0 {
			recs, err = s.history.HistorySince(ctx, stream, time.Unix(req.Since, 0))
		}
		if err != nil {
			s.log.Debug("cable: history not served", "user_id", sub.conn.user.ID, "stream", stream, "err", err)
			ok = false
			break
		}
		for _, r := range recs {
			if r.Eviction.Evicts(sub.conn.user.ID) {
				// The subscription ended while the client was away.
				sub.release(frames, nil)
				go sub.conn.drop(sub) //nolint:gosec // G118: the drop outlives the command, as the hub's evictions do
				return
			}
			frames = append(frames, heldFrame{stream, r.Position, frameMessageAt(sub.identJSON, r.Payload, stream, r.Position)})
		}
	}
	if !ok {
		sub.release(nil, frameRejectHistory(sub.identJSON))
		return
	}
	sub.release(frames, frameConfirmHistory(sub.identJSON))
}

// historyCommand runs a client's history command.
func (s *Server) historyCommand(ctx context.Context, c *conn, identifier string, req *historyRequest) {
	c.mu.Lock()
	sub := c.subs[identifier]
	c.mu.Unlock()
	switch {
	case sub == nil || c.ext == nil || !c.historyAllowed(time.Now()):
		if sub != nil {
			sub.release(nil, frameRejectHistory(sub.identJSON))
			return
		}
		c.send(frameRejectHistory(identifierJSON(identifier)))
	case req == nil:
		// A restored subscription holds its live events for this request.
		sub.release(nil, frameRejectHistory(sub.identJSON))
	default:
		s.replay(ctx, sub, req)
	}
}

// historyBudget bounds the history requests of one connection per
// minute: each may read a few hundred events from Redis and send them, so
// a client repeating them would turn a few bytes into much work. A client
// asks once per subscription after a reconnect (or with its subscribe).
const historyBudget = DefaultMaxSubscriptionsPerConn

// historyAllowed counts a history request against the connection's budget.
func (c *conn) historyAllowed(now time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.ext
	if now.Sub(e.historyWindow) > time.Minute {
		e.historyWindow, e.histories = now, 0
	}
	e.histories++
	return e.histories <= historyBudget
}

// saveSession keeps c's subscriptions for its client to resume. A
// connection ended for its credentials is not kept: there is nothing to
// resume with.
func (s *Server) saveSession(ctx context.Context, c *conn, subs map[string]*subscription) {
	if s.sessions == nil || c.ext == nil || c.ext.sid == "" || !c.ext.resumable.Load() {
		return
	}
	st := session{UserID: c.user.ID, Username: c.user.Username, DisplayName: c.user.DisplayName, AvatarURL: c.user.AvatarURL}
	for ident := range subs {
		st.Identifiers = append(st.Identifiers, ident)
	}
	b, err := json.Marshal(st)
	if err == nil {
		err = s.sessions.Save(ctx, c.ext.sid, b, s.cfg.SessionTTL)
	}
	if err != nil {
		s.log.Warn("cable: session not saved; its client will subscribe anew", "user_id", c.user.ID, "err", err)
	}
}

// takeSession returns the session sid names, if it is there.
func (s *Server) takeSession(ctx context.Context, sid string) *session {
	if s.sessions == nil || sid == "" || len(sid) > 64 {
		return nil
	}
	b, err := s.sessions.Take(ctx, sid)
	if err != nil {
		s.log.Warn("cable: session not read; its client will subscribe anew", "err", err)
		return nil
	}
	var st session
	if b == nil || json.Unmarshal(b, &st) != nil || st.UserID == 0 {
		return nil
	}
	return &st
}

// restore subscribes c again to what its session held, each subscription
// authorized as a new one would be (a membership that ended meanwhile is
// not brought back) and holding its live events for the history request
// that the client sends for it once welcomed.
func (s *Server) restore(ctx context.Context, c *conn, st *session) []*subscription {
	var subs []*subscription
	for _, ident := range st.Identifiers {
		if sub := s.join(ctx, c, ident, true, true); sub != nil {
			subs = append(subs, sub)
		}
	}
	return subs
}

// restored finishes the restored subscriptions once the welcome is sent:
// what a subscription does once confirmed (the presence roster), and the
// end of the hold for a client that never asks for its history.
func (s *Server) restored(ctx context.Context, subs []*subscription) {
	for _, sub := range subs {
		time.AfterFunc(restoreHold, func() { sub.release(nil, nil) })
		if sub.channel.joined != nil {
			if err := sub.channel.joined(ctx, sub); err != nil {
				s.log.Warn("cable: after-subscribe step failed", "user_id", sub.conn.user.ID, "identifier", sub.identifier, "err", err)
			}
		}
	}
}

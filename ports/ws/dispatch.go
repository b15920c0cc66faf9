package ws

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/gorilla/websocket"

	"github.com/chatterly/chatterly/core"
)

// readReady reads what a polled client has sent, then re-arms the poller.
func (s *Server) readReady(c *conn) {
	c.mu.Lock()
	if c.closed { // shut has cleaned up, or will
		c.mu.Unlock()
		return
	}
	c.reading = true
	c.mu.Unlock()
	for {
		kind, data, err := c.ws.ReadMessage()
		if err != nil {
			s.readFailed(c, err)
			c.cleanup()
			return
		}
		if kind == websocket.TextMessage {
			s.handle(c, data)
		}
		if c.raw.AtBoundary() {
			break
		}
	}
	c.mu.Lock()
	c.reading = false
	closed := c.closed
	c.mu.Unlock()
	if closed || c.polled.Rearm() != nil {
		c.cleanup()
	}
}

// readFailed answers a frame over the limit; other read errors mean the
// connection is gone.
func (s *Server) readFailed(c *conn, err error) {
	if errors.Is(err, websocket.ErrReadLimit) {
		s.log.Info("cable frame over the limit; closing", "user_id", c.user.ID)
		_ = c.ws.WriteControl(websocket.CloseMessage,
			websocket.FormatCloseMessage(websocket.CloseMessageTooBig, ""), time.Now().Add(time.Second))
	}
}

func (s *Server) read(c *conn) {
	defer c.cleanup()
	for {
		kind, data, err := c.ws.ReadMessage()
		if err != nil {
			s.readFailed(c, err)
			return
		}
		if kind != websocket.TextMessage {
			continue
		}
		// Commands run on a goroutine of their own while the reader waits
		// (so they stay in order): subscribing goes deep (JSON, SQL, Redis)
		// and would leave the reader, idle for the socket's life, with a
		// grown stack. Commands are rare; a goroutine start costs ~1 µs.
		done := make(chan struct{})
		go func() {
			defer close(done)
			s.handle(c, data)
		}()
		<-done
	}
}

// handle runs one client command. Malformed commands are ignored: an error
// in a command never closes the connection.
func (s *Server) handle(c *conn, data []byte) {
	var cmd command
	if err := json.Unmarshal(data, &cmd); err != nil {
		s.log.Debug("cable: malformed frame ignored", "user_id", c.user.ID)
		return
	}
	var identifier string
	if json.Unmarshal(cmd.Identifier, &identifier) != nil {
		s.log.Debug("cable: command without a string identifier ignored", "user_id", c.user.ID, "command", cmd.Command)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	switch cmd.Command {
	case "subscribe":
		s.subscribe(ctx, c, identifier, cmd.History)
	case "history":
		req, ok := historyOf(cmd.History)
		if !ok {
			s.log.Debug("cable: malformed history request", "user_id", c.user.ID)
		}
		s.historyCommand(ctx, c, identifier, req)
	case "unsubscribe":
		c.mu.Lock()
		sub := c.subs[identifier]
		c.mu.Unlock()
		if sub != nil {
			c.drop(sub)
		}
	case "message":
		s.perform(ctx, c, identifier, cmd.Data)
	default:
		s.log.Debug("cable: unknown command ignored", "user_id", c.user.ID, "command", cmd.Command)
	}
}

func (s *Server) subscribe(ctx context.Context, c *conn, identifier string, rawHistory json.RawMessage) {
	c.mu.Lock()
	_, dup := c.subs[identifier]
	c.mu.Unlock()
	if dup {
		return // the client's guarantor re-sends until it hears back
	}
	history, wellFormed := historyOf(rawHistory)
	catchUp := (history != nil || !wellFormed) && c.ext != nil
	sub := s.join(ctx, c, identifier, false, catchUp)
	if sub == nil {
		return
	}
	c.send(frameConfirm(sub.identJSON))
	if sub.channel.joined != nil {
		if err := sub.channel.joined(ctx, sub); err != nil {
			s.log.Warn("cable: after-subscribe step failed", "user_id", c.user.ID, "identifier", identifier, "err", err)
		}
	}
	if catchUp {
		if wellFormed && c.historyAllowed(time.Now()) {
			s.replay(ctx, sub, history)
		} else {
			sub.release(nil, frameRejectHistory(sub.identJSON))
		}
	}
}

// join authorizes a subscription and attaches it to its streams; it
// answers a failure with reject_subscription, unless quiet (a resumed
// session, whose client subscribes anew to what was not restored). A
// subscription made to catch up (hold) queues its live events until
// replay or release.
func (s *Server) join(ctx context.Context, c *conn, identifier string, quiet, hold bool) *subscription {
	identJSON := identifierJSON(identifier)
	fail := func(msg string, err error) {
		if quiet {
			s.log.Debug("cable: subscription not restored", "user_id", c.user.ID, "err", err)
			return
		}
		s.subscribeFailed(c, identJSON, msg, err)
	}
	reject := func(reason string) { fail(reason, core.E(core.Invalid, reason)) }
	// Subscriptions are added only by this connection's reader, which runs
	// this, so the count cannot grow between the check and the add below.
	c.mu.Lock()
	held := len(c.subs)
	c.mu.Unlock()
	if held >= s.cfg.MaxSubscriptionsPerConn {
		reject("too many subscriptions on the connection")
		return nil
	}
	var params map[string]json.RawMessage
	if err := json.Unmarshal([]byte(identifier), &params); err != nil {
		reject("identifier is not a JSON object")
		return nil
	}
	var name string
	if json.Unmarshal(params["channel"], &name) != nil {
		reject("no channel")
		return nil
	}
	ch, ok := s.chans[name]
	if !ok {
		reject("unknown channel")
		return nil
	}
	streams, convID, err := ch.join(ctx, c, params)
	if err != nil {
		fail("authorizing a subscription", err)
		return nil
	}
	sub := &subscription{conn: c, identifier: identifier, identJSON: identJSON, channel: ch, streams: streams, convID: convID}
	if c.ext != nil {
		// Held from before it is attached: the replay that ends the hold
		// must come before any live event.
		sub.catch = &catchUp{holding: hold}
	}
	for i, st := range streams {
		if err := s.hub.acquire(ctx, st); err != nil {
			for _, taken := range streams[:i] {
				s.hub.release(taken, sub)
			}
			// Whatever the broker said, it is a service that is down.
			fail("subscribing to the broker", core.Wrap(core.Unavailable, "broker", err))
			return nil
		}
		s.hub.attach(st, sub)
	}
	c.mu.Lock()
	if c.subs == nil { // the connection closed meanwhile
		c.mu.Unlock()
		for _, st := range streams {
			s.hub.release(st, sub)
		}
		return nil
	}
	c.subs[identifier] = sub
	c.mu.Unlock()
	return sub
}

func (s *Server) perform(ctx context.Context, c *conn, identifier string, raw json.RawMessage) {
	c.mu.Lock()
	sub := c.subs[identifier]
	c.mu.Unlock()
	if sub == nil {
		s.log.Debug("cable: message for an identifier not subscribed", "user_id", c.user.ID)
		return
	}
	var encoded string
	var data map[string]json.RawMessage
	if json.Unmarshal(raw, &encoded) != nil || json.Unmarshal([]byte(encoded), &data) != nil {
		s.log.Debug("cable: message data is not a JSON object string", "user_id", c.user.ID)
		return
	}
	action := "receive"
	if a, ok := data["action"]; ok {
		_ = json.Unmarshal(a, &action)
	}
	fn, ok := sub.channel.actions[action]
	if !ok {
		s.log.Debug("cable: unknown action ignored", "user_id", c.user.ID, "action", action)
		return
	}
	fn(ctx, sub, data)
}

package ws

import (
	"encoding/json"
	"errors"

	"github.com/chatterly/chatterly/core"
)

// reply is what a client is told when one of its commands fails.
type reply int

const (
	// replyNone: the failure is logged and the client hears nothing; the
	// web client does not await the outcome of its actions.
	replyNone reply = iota
	// replyReject answers a subscribe with reject_subscription. The stock
	// client never retries a rejected subscription.
	replyReject
	// replyUnauthorized closes with disconnect/unauthorized, reconnect
	// false: the client signs in again.
	replyUnauthorized
	// replyRestart closes with disconnect/server_restart, reconnect true:
	// the client comes back (and resubscribes) with its backoff, by when a
	// service that was down may be up again.
	replyRestart
	// replyRateLimit transmits {"error":"rate_limit","message":...} on the
	// subscription's identifier; the connection stays open.
	replyRateLimit
)

// step is what the client was doing when the error happened.
type step int

const (
	connecting  step = iota // the /cable upgrade, authenticating the token
	subscribing             // a subscribe command
	performing              // a message command: a channel action
)

// replyOf is the one place where error kinds become Action Cable replies,
// as ports/http/errors.go is for HTTP statuses: one row per kind, one
// column per step. A service that is down never rejects or signs out:
// the client is told to come back instead.
var replyOf = map[core.Kind][3]reply{
	// kind: {connecting, subscribing, performing}
	core.Invalid:         {replyRestart, replyReject, replyNone},
	core.Unauthenticated: {replyUnauthorized, replyReject, replyNone},
	core.Forbidden:       {replyRestart, replyReject, replyNone},
	core.NotFound:        {replyRestart, replyReject, replyNone},
	core.Conflict:        {replyRestart, replyReject, replyNone},
	core.RateLimited:     {replyRestart, replyReject, replyRateLimit},
	core.Unavailable:     {replyRestart, replyRestart, replyNone},
	core.Internal:        {replyRestart, replyReject, replyNone},
}

// replyTo is the reply to err at step st.
func replyTo(st step, err error) reply { return replyOf[core.KindOf(err)][st] }

// frame renders r for the subscription identified by ident (nil outside a
// subscription); nil for replyNone.
func (r reply) frame(ident []byte, err error) []byte {
	switch r {
	case replyReject:
		return frameReject(ident)
	case replyUnauthorized:
		return frameUnauthorized
	case replyRestart:
		return frameServerRestart
	case replyRateLimit:
		// A RateLimited error has a *core.Error in its chain, and strings
		// always marshal.
		var ce *core.Error
		errors.As(err, &ce)
		payload, _ := json.Marshal(rateLimitedMessage{Error: "rate_limit", Message: ce.Message})
		return frameMessage(ident, payload)
	default:
		return nil
	}
}

// rateLimitedMessage is the transmit of an action over its limit, as the
// original's channel helper sent it.
type rateLimitedMessage struct {
	Error   string `json:"error"`
	Message string `json:"message"`
}

// subscribeFailed answers a subscribe that failed with err: rejected, or
// the connection closed for the client to come back.
func (s *Server) subscribeFailed(c *conn, identJSON []byte, what string, err error) {
	r := replyTo(subscribing, err)
	if r == replyReject {
		s.metrics.rejected.Inc()
		s.log.Debug("cable: subscription rejected", "user_id", c.user.ID, "reason", what, "err", err)
		c.send(r.frame(identJSON, err))
		return
	}
	s.log.Warn("cable: "+what+" failed; the client will reconnect", "user_id", c.user.ID, "err", err)
	c.disconnect(r.frame(identJSON, err))
}

// performFailed answers an action that failed with err. attrs add to the log line.
func (s *Server) performFailed(sub *subscription, action string, err error, attrs ...any) {
	r := replyTo(performing, err)
	attrs = append([]any{"action", action, "user_id", sub.conn.user.ID, "err", err}, attrs...)
	switch kind := core.KindOf(err); {
	case r == replyRateLimit:
		// Debug, not Info: a client flooding the action must not flood the logs too.
		s.log.Debug("cable: action over its rate limit", attrs...)
	case kind == core.Internal || kind == core.Unavailable:
		s.log.Warn("cable: action failed; dropped", attrs...)
	default:
		s.log.Info("cable: action refused", attrs...)
	}
	if f := r.frame(sub.identJSON, err); f != nil {
		sub.conn.send(f)
	}
}

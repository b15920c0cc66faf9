package ws

import (
	"context"
	"encoding/json"
	"strconv"

	"github.com/chatterly/chatterly/core"
	"github.com/chatterly/chatterly/core/calls"
	"github.com/chatterly/chatterly/core/chat"
	"github.com/chatterly/chatterly/core/presence"
	"github.com/chatterly/chatterly/core/ratelimit"
)

// channel is one Action Cable channel: who may subscribe and to which
// streams, what the subscriber is sent first, and the actions it performs.
type channel struct {
	// join authorizes a subscription and names its streams; an error rejects it.
	join func(ctx context.Context, c *conn, params map[string]json.RawMessage) (streams []string, convID int64, err error)
	// joined runs after the confirm (e.g. to transmit the presence roster).
	joined func(ctx context.Context, sub *subscription) error
	// left runs when the subscription ends, however it ends.
	left    func(ctx context.Context, sub *subscription)
	actions map[string]func(ctx context.Context, sub *subscription, data map[string]json.RawMessage)
}

func (s *Server) channels() map[string]channel {
	return map[string]channel{
		"ConversationChannel": {
			join: func(ctx context.Context, c *conn, params map[string]json.RawMessage) ([]string, int64, error) {
				id, ok := intParam(params["conversation_id"])
				if !ok {
					return nil, 0, core.E(core.Invalid, "conversation_id is not an id")
				}
				if err := s.chat.CanSubscribe(ctx, c.user.ID, id); err != nil {
					return nil, 0, err
				}
				return []string{chat.ConversationStream(id)}, id, nil
			},
			actions: map[string]func(context.Context, *subscription, map[string]json.RawMessage){
				"typing": func(ctx context.Context, sub *subscription, _ map[string]json.RawMessage) {
					if s.typingAllowed(ctx, sub, "start") {
						s.chat.Typing(ctx, &sub.conn.user, sub.convID, true)
					}
				},
				"stop_typing": func(ctx context.Context, sub *subscription, _ map[string]json.RawMessage) {
					if s.typingAllowed(ctx, sub, "stop") {
						s.chat.Typing(ctx, &sub.conn.user, sub.convID, false)
					}
				},
			},
		},
		"PresenceChannel": {
			join: func(_ context.Context, c *conn, _ map[string]json.RawMessage) ([]string, int64, error) {
				return []string{presence.Stream(c.user.ID)}, 0, nil
			},
			joined: func(ctx context.Context, sub *subscription) error {
				roster, err := s.presence.Connect(ctx, sub.conn.user.ID, presenceEntry(sub))
				if err != nil {
					return err
				}
				payload, err := json.Marshal(roster)
				if err != nil {
					return err
				}
				sub.conn.send(frameMessage(sub.identJSON, payload))
				return nil
			},
			left: func(ctx context.Context, sub *subscription) {
				if err := s.presence.Disconnect(ctx, sub.conn.user.ID, presenceEntry(sub)); err != nil {
					s.log.Warn("presence disconnect failed", "user_id", sub.conn.user.ID, "err", err)
				}
			},
			actions: map[string]func(context.Context, *subscription, map[string]json.RawMessage){
				"ping": func(ctx context.Context, sub *subscription, _ map[string]json.RawMessage) {
					if err := s.presence.Ping(ctx, sub.conn.user.ID, presenceEntry(sub)); err != nil {
						s.log.Warn("presence ping failed", "user_id", sub.conn.user.ID, "err", err)
					}
				},
			},
		},
		"CallChannel": {
			join: func(_ context.Context, c *conn, _ map[string]json.RawMessage) ([]string, int64, error) {
				return []string{calls.Stream(c.user.ID)}, 0, nil
			},
			actions: s.callActions(),
		},
		"UserChannel": {
			join: func(_ context.Context, c *conn, _ map[string]json.RawMessage) ([]string, int64, error) {
				return []string{chat.UserStream(c.user.ID)}, 0, nil
			},
		},
	}
}

// typingAllowed counts a typing notice against the user's limit; the
// excess is dropped without a word, as typing notices are best effort.
// Starts and stops are counted apart: were a burst of starts to use up the
// budget, the stop that follows would be dropped and the indicator would
// stay on for everyone else.
func (s *Server) typingAllowed(ctx context.Context, sub *subscription, kind string) bool {
	err := s.limits.Check(ctx, ratelimit.Typing, strconv.FormatInt(sub.conn.user.ID, 10)+":"+kind)
	if err != nil {
		s.log.Debug("cable: typing notice dropped", "user_id", sub.conn.user.ID, "err", err)
	}
	return err == nil
}

// limited counts an action against the user's limit under name. Over the
// limit, the subscription is told so (see replyOf) and the connection stays
// open; when the limit cannot be checked, the action is dropped.
func (s *Server) limited(ctx context.Context, sub *subscription, name ratelimit.Name) bool {
	err := s.limits.Check(ctx, name, strconv.FormatInt(sub.conn.user.ID, 10))
	if err != nil {
		s.performFailed(sub, string(name), err)
	}
	return err != nil
}

// presenceEntry names a presence subscription's entry: per connection and
// identifier, so two tabs (two connections) of one user are two entries.
func presenceEntry(sub *subscription) string { return sub.conn.id }

// intParam reads an id given as a JSON number or a numeric string, as the
// client's params may carry either.
func intParam(raw json.RawMessage) (int64, bool) {
	if len(raw) == 0 {
		return 0, false
	}
	var n json.Number
	if err := json.Unmarshal(raw, &n); err != nil {
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return 0, false
		}
		n = json.Number(s)
	}
	id, err := strconv.ParseInt(string(n), 10, 64)
	return id, err == nil && id > 0
}

type action = func(ctx context.Context, sub *subscription, data map[string]json.RawMessage)

// callActions are the CallChannel's actions. The web client does not await
// their outcome, so refusals are logged, not answered.
func (s *Server) callActions() map[string]action {
	if s.calls == nil {
		return nil
	}
	// onCall runs fn for the call named by call_session_id, in its conversation.
	onCall := func(name string, fn func(ctx context.Context, userID, convID, callID int64) error) action {
		return func(ctx context.Context, sub *subscription, data map[string]json.RawMessage) {
			callID, ok := intParam(data["call_session_id"])
			if !ok {
				s.log.Debug("cable: call action without call_session_id", "action", name, "user_id", sub.conn.user.ID)
				return
			}
			convID, err := s.calls.ConversationOf(ctx, callID)
			if err == nil {
				err = fn(ctx, sub.conn.user.ID, convID, callID)
			}
			if err != nil {
				s.performFailed(sub, name, err, "call_id", callID)
			}
		}
	}
	toggle := func(name, field string, camera bool) action {
		return func(ctx context.Context, sub *subscription, data map[string]json.RawMessage) {
			callID, ok := intParam(data["call_session_id"])
			var on bool
			if !ok || json.Unmarshal(data[field], &on) != nil {
				s.log.Debug("cable: malformed call action", "action", name, "user_id", sub.conn.user.ID)
				return
			}
			if err := s.calls.Toggle(ctx, sub.conn.user.ID, callID, camera, on); err != nil {
				s.performFailed(sub, name, err, "call_id", callID)
			}
		}
	}
	return map[string]action{
		"accept_call": onCall("accept_call", func(ctx context.Context, u, conv, call int64) error {
			_, err := s.calls.Accept(ctx, u, conv, call)
			return err
		}),
		"decline_call": onCall("decline_call", func(ctx context.Context, u, conv, call int64) error {
			_, err := s.calls.Decline(ctx, u, conv, call)
			return err
		}),
		"end_call": onCall("end_call", s.calls.End),
		"send_signal": func(ctx context.Context, sub *subscription, data map[string]json.RawMessage) {
			if s.limited(ctx, sub, ratelimit.Signals) {
				return
			}
			callID, ok1 := intParam(data["call_session_id"])
			target, ok2 := intParam(data["target_user_id"])
			signal := data["signal"]
			if !ok1 || !ok2 || len(signal) == 0 {
				s.log.Debug("cable: malformed send_signal", "user_id", sub.conn.user.ID)
				return
			}
			if err := s.calls.Signal(ctx, sub.conn.user.ID, callID, target, signal); err != nil {
				s.performFailed(sub, "send_signal", err, "call_id", callID, "target", target)
			}
		},
		"toggle_mute":   toggle("toggle_mute", "muted", false),
		"toggle_camera": toggle("toggle_camera", "camera_off", true),
	}
}

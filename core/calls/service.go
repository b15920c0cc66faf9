package calls

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/chatterly/chatterly/core"
	"github.com/chatterly/chatterly/core/chat"
	"github.com/chatterly/chatterly/core/users"
)

// Members is what calls needs of the chat store: who is in a conversation.
type Members interface {
	GetMembership(ctx context.Context, conversationID, userID int64) (chat.Membership, error)
	GetConversation(ctx context.Context, id int64) (chat.Conversation, error)
	ListMemberships(ctx context.Context, conversationIDs []int64) ([]chat.Membership, error)
}

// Users loads users for the views.
type Users interface {
	Get(ctx context.Context, id int64) (users.User, error)
	GetMany(ctx context.Context, ids []int64) ([]users.User, error)
}

// Publisher sends rendered events to streams; chat.Publisher's shape.
type Publisher interface {
	Publish(ctx context.Context, stream string, payload []byte) error
}

// Messages renders and announces a call log like any new message.
type Messages interface {
	Announce(ctx context.Context, m chat.Message)
}

// Deps are the Service's collaborators.
type Deps struct {
	Store     Store
	Members   Members
	Users     Users
	Online    users.OnlineChecker
	Publisher Publisher
	Messages  Messages
	// RingTimeout is how long a call rings unanswered before it is missed (30 s).
	RingTimeout time.Duration
	// LeaveGrace is how long a participant of an active call may have no
	// live connection (no presence entry) before the sweeper takes them out
	// of it (30 s): clients that crash or are closed never hang up.
	LeaveGrace time.Duration
	Now        func() time.Time
	Log        *slog.Logger
}

// Service runs the call use cases.
type Service struct {
	d Deps

	mu sync.Mutex
	// absent remembers when each participant of an active call was first
	// seen offline. Each instance keeps its own; losing it on a restart
	// only delays the leaving.
	absent map[absentKey]time.Time
}

type absentKey struct{ callID, userID int64 }

// NewService returns a Service.
func NewService(d Deps) *Service {
	if d.RingTimeout <= 0 {
		d.RingTimeout = 30 * time.Second
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.Log == nil {
		d.Log = slog.Default()
	}
	if d.LeaveGrace <= 0 {
		d.LeaveGrace = 30 * time.Second
	}
	return &Service{d: d, absent: map[absentKey]time.Time{}}
}

// Stream is a user's call stream.
func Stream(userID int64) string { return "calls_user_" + strconv.FormatInt(userID, 10) }

var (
	errNotFound   = core.E(core.NotFound, "Not found")
	errForbidden  = core.E(core.Forbidden, "Not authorized")
	errNotRinging = core.E(core.Invalid, "Call is no longer ringing")
)

func (s *Service) clock() time.Time { return s.d.Now().UTC().Truncate(time.Microsecond) }

func (s *Service) member(ctx context.Context, convID, userID int64) error {
	_, err := s.d.Members.GetMembership(ctx, convID, userID)
	if core.Is(err, core.NotFound) {
		return errNotFound
	}
	return err
}

// Initiate starts a call in a conversation and rings every other member.
// Conflict when the conversation already has an ongoing call.
func (s *Service) Initiate(ctx context.Context, actorID, convID int64, callType string) (View, error) {
	if err := s.member(ctx, convID, actorID); err != nil {
		return View{}, err
	}
	var typ Type
	switch callType {
	case "audio", "":
		typ = Audio
	case "video":
		typ = Video
	default:
		return View{}, core.InvalidDetails("Call type is not included in the list")
	}
	create := func() (Call, error) {
		now := s.clock()
		return s.d.Store.Create(ctx, Call{ConversationID: convID, InitiatorID: actorID, Type: typ, Status: Calling, CreatedAt: now, UpdatedAt: now},
			[]Participant{{UserID: actorID, JoinedAt: &now}})
	}
	c, err := create()
	if core.Is(err, core.Conflict) {
		// An active call that nobody is connected to any more (its people
		// closed or crashed) must not block calling until the sweeper gets
		// to it: end it, and try once more.
		var cleared bool
		if cleared, err = s.endDeserted(ctx, convID); err == nil && cleared {
			c, err = create()
		} else if err == nil {
			err = core.E(core.Conflict, "Already exists")
		}
	}
	if core.Is(err, core.Conflict) {
		return View{}, core.E(core.Conflict, "A call is already in progress in this conversation")
	}
	if err != nil {
		return View{}, err
	}
	callees, err := s.others(ctx, convID, actorID)
	if err != nil {
		return View{}, err
	}
	caller, err := s.d.Users.Get(ctx, actorID)
	if err != nil {
		return View{}, err
	}
	online := s.online(ctx, append([]int64{actorID}, callees...))
	payload := render(incomingCall{Type: "incoming_call", CallSessionID: c.ID, Caller: caller.PublicView(online[actorID]), CallType: typ.String(), ConversationID: convID})
	reached := false
	for _, id := range callees {
		s.publish(ctx, Stream(id), payload)
		reached = reached || online[id]
	}
	if reached {
		// The ring reached someone: calling becomes ringing, unless an
		// answer or the timer got there first.
		err := s.d.Store.InTx(ctx, func(tx Store) error {
			cur, err := tx.Lock(ctx, c.ID)
			if err != nil || cur.Status != Calling {
				return err
			}
			cur.Status, cur.UpdatedAt = Ringing, s.clock()
			c = cur
			return tx.Save(ctx, cur)
		})
		if err != nil {
			s.d.Log.WarnContext(ctx, "marking a call ringing failed", "call_id", c.ID, "err", err)
		}
	}
	return s.view(ctx, c, false)
}

// endDeserted ends the conversation's ongoing call if it is active and none
// of its participants is connected, and reports whether the conversation
// is then free of an ongoing call. A ringing call is left alone: the ring
// timeout ends it soon enough, and it always has its initiator in it.
func (s *Service) endDeserted(ctx context.Context, convID int64) (bool, error) {
	cur, err := s.d.Store.Ongoing(ctx, convID)
	if core.Is(err, core.NotFound) {
		return true, nil // it ended meanwhile
	}
	if err != nil || cur.Status != Active || s.d.Online == nil {
		return false, err
	}
	parts, err := s.d.Store.Participants(ctx, cur.ID)
	if err != nil {
		return false, err
	}
	in := joinedIDs(parts)
	online, err := s.d.Online.Online(ctx, in)
	if err != nil {
		// Presence cannot tell: the call counts as attended.
		s.d.Log.WarnContext(ctx, "presence lookup for an ongoing call failed", "call_id", cur.ID, "err", err)
		return false, nil
	}
	for _, id := range in {
		if online[id] {
			return false, nil
		}
	}
	c, ended, log, err := s.transition(ctx, convID, cur.ID, func(c *Call, tx Store) error {
		if c.Status != Active {
			return nil
		}
		parts, err := tx.Participants(ctx, c.ID)
		if err != nil {
			return err
		}
		for _, id := range joinedIDs(parts) {
			if !slices.Contains(in, id) {
				return nil // someone joined since the presence check
			}
		}
		now := s.clock()
		c.Status, c.EndedAt, c.UpdatedAt = Ended, &now, now
		return nil
	})
	if err != nil {
		return false, err
	}
	if ended {
		s.d.Log.InfoContext(ctx, "ended a call nobody was connected to, for a new one", "call_id", c.ID)
		s.finish(ctx, c, log, 0)
	}
	return !c.Status.Ongoing(), nil
}

// joinedIDs lists the users in the call: joined and not left.
func joinedIDs(parts []Participant) []int64 {
	var ids []int64
	for _, p := range parts {
		if p.JoinedAt != nil && p.LeftAt == nil {
			ids = append(ids, p.UserID)
		}
	}
	return ids
}

// Active returns the conversation's ongoing call with its participants.
func (s *Service) Active(ctx context.Context, actorID, convID int64) (View, error) {
	if err := s.member(ctx, convID, actorID); err != nil {
		return View{}, err
	}
	c, err := s.d.Store.Ongoing(ctx, convID)
	if err != nil {
		return View{}, err
	}
	return s.view(ctx, c, true)
}

// transition runs fn on the locked call of a conversation and, if fn ends
// it, writes the call log in the same transaction. It returns the call as
// it stands and whether this transition ended it.
func (s *Service) transition(ctx context.Context, convID, callID int64, fn func(c *Call, tx Store) error) (c Call, ended bool, log chat.Message, err error) {
	err = s.d.Store.InTx(ctx, func(tx Store) error {
		cur, err := tx.Lock(ctx, callID)
		if err != nil {
			return err
		}
		if convID != 0 && cur.ConversationID != convID {
			return errNotFound
		}
		before := cur
		if err := fn(&cur, tx); err != nil {
			return err
		}
		c = cur
		if cur == before {
			return nil
		}
		was := before.Status
		if err := tx.Save(ctx, cur); err != nil {
			return err
		}
		if was.Ongoing() && !cur.Status.Ongoing() {
			ended = true
			log, err = tx.AddLog(ctx, logMessage(&cur))
			return err
		}
		return nil
	})
	return c, ended, log, err
}

func logMessage(c *Call) chat.Message {
	content := map[Status]string{Ended: "call", Declined: "call declined", Missed: "missed call"}[c.Status]
	content = c.Type.String() + " " + content
	id := c.ID
	return chat.Message{
		ConversationID: c.ConversationID, UserID: c.InitiatorID, Content: content, Type: chat.Call,
		CallSessionID: &id, CreatedAt: *c.EndedAt, UpdatedAt: *c.EndedAt,
	}
}

// Accept answers a ringing call, or joins an active group call late.
// The initiator cannot accept their own call.
//
// Only the accept that makes the call active sends call_accepted to the
// initiator (whose client then offers to accepted_by), and tells the other
// members, whose dialogs still ring, that someone else answered. A later
// accept joins: participant_joined to the others, never a second
// call_accepted, which the web client would take for a new peer to
// connect to in place of the one it is talking to. Accepting a call one is
// already in changes nothing and announces nothing.
func (s *Service) Accept(ctx context.Context, actorID, convID, callID int64) (View, error) {
	if err := s.member(ctx, convID, actorID); err != nil {
		return View{}, err
	}
	var answered, joined bool
	var parts []Participant
	c, _, _, err := s.transition(ctx, convID, callID, func(c *Call, tx Store) error {
		if c.InitiatorID == actorID {
			return errForbidden
		}
		if !c.Status.Ongoing() {
			return errNotRinging
		}
		now := s.clock()
		ps, err := tx.Participants(ctx, c.ID)
		if err != nil {
			return err
		}
		if p, ok := find(ps, actorID); ok && p.JoinedAt != nil && p.LeftAt == nil {
			return nil // already in the call
		}
		if c.Status == Active {
			joined = true
		} else {
			answered = true
			c.Status = Active
			if c.StartedAt == nil {
				c.StartedAt = &now
			}
		}
		c.UpdatedAt = now
		p := Participant{CallID: c.ID, UserID: actorID, JoinedAt: &now}
		parts = append(slices.DeleteFunc(ps, func(q Participant) bool { return q.UserID == actorID }), p)
		return tx.PutParticipant(ctx, p)
	})
	if err != nil {
		return View{}, err
	}
	if answered || joined {
		u, err := s.d.Users.Get(ctx, actorID)
		if err != nil {
			return View{}, err
		}
		pub := u.PublicView(true)
		if answered {
			s.publish(ctx, Stream(c.InitiatorID), render(callAccepted{Type: "call_accepted", CallSessionID: c.ID, AcceptedBy: pub}))
			s.stopRinging(ctx, c, parts)
		} else {
			s.toParticipants(ctx, c.ID, actorID, render(participantJoined{Type: "participant_joined", CallSessionID: c.ID, User: pub}))
		}
	}
	return s.view(ctx, c, false)
}

// AnsweredByOther is the reason of the call_ended that closes the ringing
// dialogs of the members not in a call once someone answered it. The call
// goes on; they may still join it (GET …/calls/active, then accept).
const AnsweredByOther = "answered_by_other"

// stopRinging sends call_ended with reason AnsweredByOther to every member
// of the call's conversation who is not in the call: the web client closes
// its ringing dialog on any call_ended. The ones in the call are not sent
// it, as it would close their call (the accepter's other tabs keep ringing
// until the call ends; an accept there changes nothing).
func (s *Service) stopRinging(ctx context.Context, c Call, parts []Participant) {
	members, err := s.others(ctx, c.ConversationID, 0)
	if err != nil {
		s.d.Log.WarnContext(ctx, "listing members to stop the ringing failed", "call_id", c.ID, "err", err)
		return
	}
	in := joinedIDs(parts)
	payload := render(callEnded{Type: "call_ended", CallSessionID: c.ID, Reason: AnsweredByOther})
	for _, id := range members {
		if !slices.Contains(in, id) {
			s.publish(ctx, Stream(id), payload)
		}
	}
}

// Decline refuses a ringing call. In a DM that ends it; in a group it ends
// once every callee has declined.
//
// call_declined goes to the initiator (and the conversation stream) only
// when the call ends declined: the web client closes the call on it. A
// group callee's decline that leaves others ringing is that callee's
// answer only, announced as participant_declined, which the web client
// ignores.
func (s *Service) Decline(ctx context.Context, actorID, convID, callID int64) (View, error) {
	if err := s.member(ctx, convID, actorID); err != nil {
		return View{}, err
	}
	conv, err := s.d.Members.GetConversation(ctx, convID)
	if err != nil {
		return View{}, err
	}
	callees, err := s.others(ctx, convID, 0)
	if err != nil {
		return View{}, err
	}
	var answered bool
	c, ended, log, err := s.transition(ctx, convID, callID, func(c *Call, tx Store) error {
		if c.InitiatorID == actorID {
			return errForbidden
		}
		if c.Status != Calling && c.Status != Ringing {
			return errNotRinging
		}
		now := s.clock()
		parts, err := tx.Participants(ctx, c.ID)
		if err != nil {
			return err
		}
		if p, ok := find(parts, actorID); ok && p.LeftAt != nil {
			return nil // declined already
		}
		answered = true
		if err := tx.PutParticipant(ctx, Participant{CallID: c.ID, UserID: actorID, LeftAt: &now}); err != nil {
			return err
		}
		declinedAll := conv.Type == chat.Direct
		if !declinedAll {
			declinedAll = true
			for _, id := range callees {
				if id == c.InitiatorID || id == actorID {
					continue
				}
				if p, ok := find(parts, id); !ok || p.LeftAt == nil {
					declinedAll = false
				}
			}
		}
		c.UpdatedAt = now
		if declinedAll {
			c.Status, c.EndedAt = Declined, &now
		}
		return nil
	})
	if err != nil {
		return View{}, err
	}
	if answered {
		u, err := s.d.Users.Get(ctx, actorID)
		if err != nil {
			return View{}, err
		}
		var payload []byte
		if ended {
			payload = render(callDeclined{Type: "call_declined", CallSessionID: c.ID, DeclinedBy: u.PublicView(true)})
		} else {
			payload = render(participantDeclined{Type: "participant_declined", CallSessionID: c.ID, User: u.PublicView(true)})
		}
		s.publish(ctx, Stream(c.InitiatorID), payload)
		s.publish(ctx, chat.ConversationStream(convID), payload)
	}
	if ended {
		s.finish(ctx, c, log, actorID)
	}
	return s.view(ctx, c, false)
}

// End hangs up. In a DM, or by the initiator, it ends the call; in a group
// anyone else only leaves, and the call ends when fewer than two remain.
// Ending a call that has already ended is a no-op.
func (s *Service) End(ctx context.Context, actorID, convID, callID int64) error {
	if err := s.member(ctx, convID, actorID); err != nil {
		return err
	}
	conv, err := s.d.Members.GetConversation(ctx, convID)
	if err != nil {
		return err
	}
	var left bool
	c, ended, log, err := s.transition(ctx, convID, callID, func(c *Call, tx Store) error {
		if !c.Status.Ongoing() {
			return nil
		}
		now := s.clock()
		parts, err := tx.Participants(ctx, c.ID)
		if err != nil {
			return err
		}
		if conv.Type == chat.Direct || actorID == c.InitiatorID || c.Status != Active {
			c.Status, c.EndedAt, c.UpdatedAt = Ended, &now, now
			return nil
		}
		p, ok := find(parts, actorID)
		if !ok || p.JoinedAt == nil || p.LeftAt != nil {
			return nil // not in the call: nothing to leave
		}
		p.LeftAt, left = &now, true
		if err := tx.PutParticipant(ctx, p); err != nil {
			return err
		}
		remaining := 0
		for _, q := range parts {
			if q.JoinedAt != nil && q.LeftAt == nil && q.UserID != actorID {
				remaining++
			}
		}
		if remaining < 2 {
			c.Status, c.EndedAt = Ended, &now
		}
		c.UpdatedAt = now
		return nil
	})
	if err != nil {
		return err
	}
	if left && !ended {
		s.toParticipants(ctx, c.ID, actorID, render(participantLeft{Type: "participant_left", CallSessionID: c.ID, UserID: actorID}))
	}
	if ended {
		s.finish(ctx, c, log, actorID)
	}
	return nil
}

// Sweep ends as missed the calls that rang longer than the ring timeout.
// Every instance runs it; the store hands each due call to one of them,
// and the state machine makes a late answer or hang-up a no-op.
func (s *Service) Sweep(ctx context.Context) error {
	deadline := s.clock().Add(-s.d.RingTimeout)
	type done struct {
		c   Call
		log chat.Message
	}
	var finished []done
	err := s.d.Store.InTx(ctx, func(tx Store) error {
		ids, err := tx.Due(ctx, deadline, 100)
		if err != nil {
			return err
		}
		for _, id := range ids {
			c, err := tx.Lock(ctx, id)
			if err != nil {
				return err
			}
			if c.Status != Calling && c.Status != Ringing {
				continue
			}
			now := s.clock()
			c.Status, c.EndedAt, c.UpdatedAt = Missed, &now, now
			if err := tx.Save(ctx, c); err != nil {
				return err
			}
			log, err := tx.AddLog(ctx, logMessage(&c))
			if err != nil {
				return err
			}
			finished = append(finished, done{c, log})
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, f := range finished {
		s.finish(ctx, f.c, f.log, 0)
	}
	return nil
}

// sweepLimit bounds the active calls SweepAbsent looks at each time.
const sweepLimit = 1000

// SweepAbsent takes out of active calls the participants who have been
// offline for LeaveGrace, and ends the calls that this leaves with fewer
// than two participants, as hanging up would. Offline is presence: none of
// the user's connections holds a PresenceChannel subscription (every
// socket closed, or their entries lapsed with a crashed instance). When
// presence cannot be read, nobody is taken out.
func (s *Service) SweepAbsent(ctx context.Context) error {
	if s.d.Online == nil {
		return nil
	}
	now := s.clock()
	// Every active call: one updated "before now".
	ids, err := s.d.Store.StaleActive(ctx, now, sweepLimit)
	if err != nil {
		return err
	}
	seen := map[absentKey]bool{}
	for _, id := range ids {
		parts, err := s.d.Store.Participants(ctx, id)
		if err != nil {
			return err
		}
		in := joinedIDs(parts)
		online, err := s.d.Online.Online(ctx, in)
		if err != nil {
			return err
		}
		var gone []int64
		s.mu.Lock()
		for _, u := range in {
			if online[u] {
				continue
			}
			k := absentKey{id, u}
			seen[k] = true
			since, ok := s.absent[k]
			switch {
			case !ok:
				s.absent[k] = now
			case now.Sub(since) >= s.d.LeaveGrace:
				gone = append(gone, u)
			}
		}
		s.mu.Unlock()
		if len(gone) > 0 {
			if err := s.leave(ctx, id, gone); err != nil {
				return err
			}
		}
	}
	// Forget whoever is back online, left, or whose call ended; after a
	// failed sweep nothing is forgotten, so a blip does not restart graces.
	s.mu.Lock()
	defer s.mu.Unlock()
	for k := range s.absent {
		if !seen[k] {
			delete(s.absent, k)
		}
	}
	return nil
}

// leave takes the users out of the active call, which ends when fewer than
// two participants remain.
func (s *Service) leave(ctx context.Context, callID int64, gone []int64) error {
	var left []int64
	c, ended, log, err := s.transition(ctx, 0, callID, func(c *Call, tx Store) error {
		if c.Status != Active {
			return nil
		}
		parts, err := tx.Participants(ctx, c.ID)
		if err != nil {
			return err
		}
		now := s.clock()
		remaining := 0
		for _, p := range parts {
			if p.JoinedAt == nil || p.LeftAt != nil {
				continue
			}
			if !slices.Contains(gone, p.UserID) {
				remaining++
				continue
			}
			p.LeftAt = &now
			if err := tx.PutParticipant(ctx, p); err != nil {
				return err
			}
			left = append(left, p.UserID)
		}
		if len(left) == 0 {
			return nil
		}
		c.UpdatedAt = now
		if remaining < 2 {
			c.Status, c.EndedAt = Ended, &now
		}
		return nil
	})
	if err != nil {
		return err
	}
	if len(left) > 0 {
		s.d.Log.InfoContext(ctx, "took offline participants out of a call", "call_id", callID, "user_ids", left, "ended", ended)
	}
	if ended {
		s.finish(ctx, c, log, 0)
		return nil
	}
	for _, u := range left {
		s.toParticipants(ctx, c.ID, u, render(participantLeft{Type: "participant_left", CallSessionID: c.ID, UserID: u}))
	}
	return nil
}

// RunSweeper runs Sweep and SweepAbsent every interval until ctx is done.
func (s *Service) RunSweeper(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := s.Sweep(ctx); err != nil {
				s.d.Log.Warn("missed-call sweep failed", "err", err)
			}
			if err := s.SweepAbsent(ctx); err != nil {
				s.d.Log.Warn("absent-participant sweep failed", "err", err)
			}
		}
	}
}

// finish announces a call's end: call_ended to every member but the one
// who ended it (so ringing dialogs close), and the log as a new message.
func (s *Service) finish(ctx context.Context, c Call, log chat.Message, by int64) {
	members, err := s.others(ctx, c.ConversationID, 0)
	if err != nil {
		s.d.Log.WarnContext(ctx, "listing members to end a call failed", "call_id", c.ID, "err", err)
	}
	payload := render(callEnded{Type: "call_ended", CallSessionID: c.ID})
	for _, id := range members {
		if id != by {
			s.publish(ctx, Stream(id), payload)
		}
	}
	if s.d.Messages != nil {
		s.d.Messages.Announce(context.WithoutCancel(ctx), log)
	}
}

// Signal relays a WebRTC signal untouched from one participant to another.
// Anything else (strangers, ended calls, unknown targets) is dropped.
func (s *Service) Signal(ctx context.Context, actorID, callID, targetID int64, signal json.RawMessage) error {
	c, err := s.d.Store.Get(ctx, callID)
	if err != nil {
		return err
	}
	if !c.Status.Ongoing() || actorID == targetID {
		return errForbidden
	}
	parts, err := s.d.Store.Participants(ctx, callID)
	if err != nil {
		return err
	}
	inCall := func(id int64) bool {
		p, ok := find(parts, id)
		if ok && p.JoinedAt != nil && p.LeftAt == nil {
			return true
		}
		// While it rings, callees may already exchange offers with the initiator.
		if c.Status != Active && (!ok || p.LeftAt == nil) {
			_, err := s.d.Members.GetMembership(ctx, c.ConversationID, id)
			return err == nil
		}
		return false
	}
	if !inCall(actorID) || !inCall(targetID) {
		return errForbidden
	}
	s.publish(ctx, Stream(targetID), renderSignal(callID, actorID, signal))
	return nil
}

// Toggle tells the other participants that the actor muted or turned off
// the camera; what is "mute" or "camera" is the kind.
func (s *Service) Toggle(ctx context.Context, actorID, callID int64, camera, on bool) error {
	c, err := s.d.Store.Get(ctx, callID)
	if err != nil {
		return err
	}
	parts, err := s.d.Store.Participants(ctx, callID)
	if err != nil {
		return err
	}
	if p, ok := find(parts, actorID); !c.Status.Ongoing() || !ok || p.LeftAt != nil {
		return errForbidden
	}
	var payload []byte
	if camera {
		payload = render(cameraToggled{Type: "participant_camera_toggled", CallSessionID: callID, UserID: actorID, CameraOff: on})
	} else {
		payload = render(muted{Type: "participant_muted", CallSessionID: callID, UserID: actorID, Muted: on})
	}
	s.toParticipants(ctx, callID, actorID, payload)
	return nil
}

func (s *Service) toParticipants(ctx context.Context, callID, except int64, payload []byte) {
	parts, err := s.d.Store.Participants(ctx, callID)
	if err != nil {
		s.d.Log.WarnContext(ctx, "listing call participants failed", "call_id", callID, "err", err)
		return
	}
	for _, p := range parts {
		if p.UserID != except && p.JoinedAt != nil && p.LeftAt == nil {
			s.publish(ctx, Stream(p.UserID), payload)
		}
	}
}

// others lists the conversation's members except one user (0: nobody).
func (s *Service) others(ctx context.Context, convID, except int64) ([]int64, error) {
	ms, err := s.d.Members.ListMemberships(ctx, []int64{convID})
	if err != nil {
		return nil, err
	}
	var out []int64
	for _, m := range ms {
		if m.UserID != except {
			out = append(out, m.UserID)
		}
	}
	return out, nil
}

func (s *Service) online(ctx context.Context, ids []int64) map[int64]bool {
	if s.d.Online == nil {
		return map[int64]bool{}
	}
	m, err := s.d.Online.Online(ctx, ids)
	if err != nil {
		s.d.Log.WarnContext(ctx, "presence lookup failed", "err", err)
		return map[int64]bool{}
	}
	return m
}

func (s *Service) publish(ctx context.Context, stream string, payload []byte) {
	if err := s.d.Publisher.Publish(context.WithoutCancel(ctx), stream, payload); err != nil {
		s.d.Log.WarnContext(ctx, "publishing a call event failed", "stream", stream, "err", err)
	}
}

func find(parts []Participant, userID int64) (Participant, bool) {
	for _, p := range parts {
		if p.UserID == userID {
			return p, true
		}
	}
	return Participant{}, false
}

// renderSignal writes the signal event by hand: encoding/json would compact
// the signal and escape <, > and & in it, and the peer must get the SDP or
// candidate exactly as sent. signal is valid JSON, as it was parsed out of
// the client's frame.
func renderSignal(callID, from int64, signal json.RawMessage) []byte {
	b := make([]byte, 0, len(signal)+80)
	b = append(b, `{"type":"signal","call_session_id":`...)
	b = strconv.AppendInt(b, callID, 10)
	b = append(b, `,"from_user_id":`...)
	b = strconv.AppendInt(b, from, 10)
	b = append(b, `,"signal":`...)
	b = append(b, signal...)
	return append(b, '}')
}

func render(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("calls: rendering %T: %v", v, err))
	}
	return b
}

// ConversationOf returns the conversation of a call, for actions that name
// only the call (the CallChannel's). NotFound when there is no such call.
func (s *Service) ConversationOf(ctx context.Context, callID int64) (int64, error) {
	c, err := s.d.Store.Get(ctx, callID)
	if err != nil {
		return 0, err
	}
	return c.ConversationID, nil
}

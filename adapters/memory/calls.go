package memory

import (
	"cmp"
	"context"
	"slices"
	"time"

	"github.com/chatterly/chatterly/core"
	"github.com/chatterly/chatterly/core/calls"
	"github.com/chatterly/chatterly/core/chat"
)

// CallStore keeps calls and their participants in maps, and call logs as
// messages of a ChatStore. It behaves as postgres.CallStore does; both
// pass callstest.RunStore.
//
// It lives inside its ChatStore: the ChatStore's lock guards the calls
// too, and its transactions are the CallStore's, with one undo log for
// both. So a rolled-back transaction takes back a call's change and its
// log message together. As transactions are serial, Lock needs no lock
// of its own, and Due never has rows locked by another transaction to skip.
//
// A call whose conversation was deleted is gone, as the database's cascade
// would have it.
type CallStore struct {
	// chats is the ChatStore given to NewCallStore, or the one its InTx
	// hands to its function.
	chats *ChatStore
	data  *callData
}

var (
	_ calls.Store = (*CallStore)(nil)
	_ chat.Calls  = (*CallStore)(nil)
)

// callData is what a CallStore holds, guarded by its ChatStore's lock.
type callData struct {
	calls        map[int64]calls.Call
	participants map[participantKey]calls.Participant
	// Not rolled back, as sequences are not.
	lastCallID int64
}

type participantKey struct{ callID, userID int64 }

// NewCallStore returns an empty CallStore whose call logs go to chats.
func NewCallStore(chats *ChatStore) *CallStore {
	return &CallStore{chats: chats, data: &callData{
		calls:        make(map[int64]calls.Call),
		participants: make(map[participantKey]calls.Participant),
	}}
}

// InTx runs fn in a transaction of the ChatStore, so that its changes to
// calls and messages alike are undone, in reverse order, when fn returns
// an error or panics. On a store already in a transaction it runs fn with
// that store.
func (s *CallStore) InTx(ctx context.Context, fn func(tx calls.Store) error) error {
	if s.chats.tx != nil {
		return fn(s)
	}
	return s.chats.InTx(ctx, func(tx chat.Store) error {
		// ChatStore.InTx hands its function a *ChatStore.
		return fn(&CallStore{chats: tx.(*ChatStore), data: s.data})
	})
}

// call returns the call id unless it, or its conversation, does not exist.
func (s *CallStore) call(d *chatData, id int64) (calls.Call, bool) {
	c, ok := s.data.calls[id]
	if !ok {
		return calls.Call{}, false
	}
	if _, ok := d.conversations[c.ConversationID]; !ok {
		return calls.Call{}, false
	}
	return c, true
}

// Create stores c and its participants. Conflict when the conversation
// already has an ongoing call, or when participants name a user twice;
// NotFound when the conversation does not exist.
func (s *CallStore) Create(_ context.Context, c calls.Call, participants []calls.Participant) (calls.Call, error) {
	d, release, err := s.chats.acquire()
	if err != nil {
		return calls.Call{}, err
	}
	defer release()
	if _, ok := d.conversations[c.ConversationID]; !ok {
		return calls.Call{}, core.E(core.NotFound, "Not found")
	}
	if c.Status.Ongoing() {
		if _, ok := s.ongoing(d, c.ConversationID); ok {
			return calls.Call{}, core.E(core.Conflict, "Already exists")
		}
	}
	seen := make(map[int64]bool, len(participants))
	for _, p := range participants {
		if seen[p.UserID] {
			return calls.Call{}, core.E(core.Conflict, "Already exists")
		}
		seen[p.UserID] = true
	}
	s.data.lastCallID++
	c.ID = s.data.lastCallID
	c = storedCallOf(c)
	setUndoable(d, s.data.calls, c.ID, c)
	for _, p := range participants {
		p.CallID = c.ID
		setUndoable(d, s.data.participants, participantKey{c.ID, p.UserID}, storedParticipant(p))
	}
	return storedCallOf(c), nil
}

// Get returns the call. NotFound when there is none.
func (s *CallStore) Get(_ context.Context, id int64) (calls.Call, error) {
	d, release, err := s.chats.acquire()
	if err != nil {
		return calls.Call{}, err
	}
	defer release()
	c, ok := s.call(d, id)
	if !ok {
		return calls.Call{}, core.E(core.NotFound, "Not found")
	}
	return storedCallOf(c), nil
}

// Lock returns the call, as Get does: transactions are serial, so nothing
// else can change it before the enclosing one ends. NotFound when there is
// none.
func (s *CallStore) Lock(ctx context.Context, id int64) (calls.Call, error) {
	return s.Get(ctx, id)
}

// Ongoing returns the conversation's calling, ringing or active call.
// NotFound when there is none.
func (s *CallStore) Ongoing(_ context.Context, conversationID int64) (calls.Call, error) {
	d, release, err := s.chats.acquire()
	if err != nil {
		return calls.Call{}, err
	}
	defer release()
	c, ok := s.ongoing(d, conversationID)
	if !ok {
		return calls.Call{}, core.E(core.NotFound, "Not found")
	}
	return storedCallOf(c), nil
}

func (s *CallStore) ongoing(d *chatData, conversationID int64) (calls.Call, bool) {
	if _, ok := d.conversations[conversationID]; !ok {
		return calls.Call{}, false
	}
	for _, c := range s.data.calls {
		if c.ConversationID == conversationID && c.Status.Ongoing() {
			return c, true
		}
	}
	return calls.Call{}, false
}

// Save writes c's Status, StartedAt, EndedAt and UpdatedAt. NotFound when
// there is no such call; Conflict when c becomes ongoing again while
// another call of its conversation is.
func (s *CallStore) Save(_ context.Context, c calls.Call) error {
	d, release, err := s.chats.acquire()
	if err != nil {
		return err
	}
	defer release()
	stored, ok := s.call(d, c.ID)
	if !ok {
		return core.E(core.NotFound, "Not found")
	}
	if c.Status.Ongoing() {
		if other, ok := s.ongoing(d, stored.ConversationID); ok && other.ID != c.ID {
			return core.E(core.Conflict, "Already exists")
		}
	}
	stored.Status = c.Status
	stored.StartedAt = c.StartedAt
	stored.EndedAt = c.EndedAt
	stored.UpdatedAt = c.UpdatedAt
	setUndoable(d, s.data.calls, stored.ID, storedCallOf(stored))
	return nil
}

// Participants returns the call's participants, ordered by user id.
func (s *CallStore) Participants(_ context.Context, callID int64) ([]calls.Participant, error) {
	d, release, err := s.chats.acquire()
	if err != nil {
		return nil, err
	}
	defer release()
	out := []calls.Participant{}
	if _, ok := s.call(d, callID); !ok {
		return out, nil
	}
	for k, p := range s.data.participants {
		if k.callID == callID {
			out = append(out, storedParticipant(p))
		}
	}
	slices.SortFunc(out, func(a, b calls.Participant) int { return cmp.Compare(a.UserID, b.UserID) })
	return out, nil
}

// PutParticipant creates or replaces the participant (p.CallID, p.UserID).
// NotFound when the call does not exist.
func (s *CallStore) PutParticipant(_ context.Context, p calls.Participant) error {
	d, release, err := s.chats.acquire()
	if err != nil {
		return err
	}
	defer release()
	if _, ok := s.call(d, p.CallID); !ok {
		return core.E(core.NotFound, "Not found")
	}
	setUndoable(d, s.data.participants, participantKey{p.CallID, p.UserID}, storedParticipant(p))
	return nil
}

// Due returns up to limit ids of calls still calling or ringing that were
// created before the deadline, oldest first (then by id).
func (s *CallStore) Due(_ context.Context, createdBefore time.Time, limit int) ([]int64, error) {
	d, release, err := s.chats.acquire()
	if err != nil {
		return nil, err
	}
	defer release()
	deadline := chatTime(createdBefore)
	var due []calls.Call
	for id, c := range s.data.calls {
		if _, ok := s.call(d, id); ok && (c.Status == calls.Calling || c.Status == calls.Ringing) && c.CreatedAt.Before(deadline) {
			due = append(due, c)
		}
	}
	slices.SortFunc(due, func(a, b calls.Call) int {
		return cmp.Or(a.CreatedAt.Compare(b.CreatedAt), cmp.Compare(a.ID, b.ID))
	})
	ids := make([]int64, 0, min(len(due), max(limit, 0)))
	for _, c := range due[:min(len(due), max(limit, 0))] {
		ids = append(ids, c.ID)
	}
	return ids, nil
}

// StaleActive returns up to limit ids of active calls last updated before
// the deadline, least recently updated first (then by id).
func (s *CallStore) StaleActive(_ context.Context, updatedBefore time.Time, limit int) ([]int64, error) {
	d, release, err := s.chats.acquire()
	if err != nil {
		return nil, err
	}
	defer release()
	deadline := chatTime(updatedBefore)
	var stale []calls.Call
	for id, c := range s.data.calls {
		if _, ok := s.call(d, id); ok && c.Status == calls.Active && c.UpdatedAt.Before(deadline) {
			stale = append(stale, c)
		}
	}
	slices.SortFunc(stale, func(a, b calls.Call) int {
		return cmp.Or(a.UpdatedAt.Compare(b.UpdatedAt), cmp.Compare(a.ID, b.ID))
	})
	ids := make([]int64, 0, min(len(stale), max(limit, 0)))
	for _, c := range stale[:min(len(stale), max(limit, 0))] {
		ids = append(ids, c.ID)
	}
	return ids, nil
}

// AddLog stores the call's log message in the ChatStore, in this store's
// transaction. NotFound when the conversation or the call does not exist.
func (s *CallStore) AddLog(ctx context.Context, m chat.Message) (chat.Message, error) {
	if s.chats.tx == nil {
		// The check and the message must be one change.
		var logged chat.Message
		err := s.InTx(ctx, func(tx calls.Store) error {
			var err error
			logged, err = tx.AddLog(ctx, m)
			return err
		})
		return logged, err
	}
	if m.CallSessionID != nil {
		d, release, err := s.chats.acquire()
		if err != nil {
			return chat.Message{}, err
		}
		_, ok := s.call(d, *m.CallSessionID)
		release()
		if !ok {
			return chat.Message{}, core.E(core.NotFound, "Not found")
		}
	}
	return s.chats.CreateMessage(ctx, m)
}

// CallSummaries returns the calls with these ids that exist, ordered by ID.
func (s *CallStore) CallSummaries(_ context.Context, callIDs []int64) ([]chat.CallSummary, error) {
	d, release, err := s.chats.acquire()
	if err != nil {
		return nil, err
	}
	defer release()
	out := []chat.CallSummary{}
	for id := range chatIDSet(callIDs) {
		if c, ok := s.call(d, id); ok {
			c = storedCallOf(c)
			out = append(out, chat.CallSummary{
				ID: c.ID, CallType: int32(c.Type), Status: int32(c.Status),
				StartedAt: c.StartedAt, EndedAt: c.EndedAt, InitiatorID: c.InitiatorID,
			})
		}
	}
	slices.SortFunc(out, func(a, b chat.CallSummary) int { return cmp.Compare(a.ID, b.ID) })
	return out, nil
}

// storedCallOf copies c with its times as PostgreSQL keeps them and no
// pointer shared with c.
func storedCallOf(c calls.Call) calls.Call {
	c.StartedAt = chatTimePtr(c.StartedAt)
	c.EndedAt = chatTimePtr(c.EndedAt)
	c.CreatedAt = chatTime(c.CreatedAt)
	c.UpdatedAt = chatTime(c.UpdatedAt)
	return c
}

// storedParticipant is storedCallOf for participants.
func storedParticipant(p calls.Participant) calls.Participant {
	p.JoinedAt = chatTimePtr(p.JoinedAt)
	p.LeftAt = chatTimePtr(p.LeftAt)
	return p
}

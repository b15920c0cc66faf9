package postgres

import (
	"context"
	"math"
	"time"

	"github.com/chatterly/chatterly/core"
	"github.com/chatterly/chatterly/core/calls"
	"github.com/chatterly/chatterly/core/chat"
	"github.com/chatterly/chatterly/gen/db"
)

// CallStore keeps calls and their participants in call_sessions and
// call_participants, and call logs in messages. Besides the kinds each
// method names, every method returns Unavailable when the database cannot
// be reached.
//
// It runs on a ChatStore, whose connection, transactions and partition
// handling it shares: a call log is a message like any other, and it must
// be written in the transaction that ends the call.
type CallStore struct {
	chats *ChatStore
}

var (
	_ calls.Store = (*CallStore)(nil)
	_ chat.Calls  = (*CallStore)(nil)
)

// NewCallStore returns a CallStore over db that creates message partitions
// through parts as call logs need them.
func NewCallStore(db *DB, parts *Partitions) *CallStore {
	return &CallStore{chats: NewChatStore(db, parts)}
}

// InTx runs fn in a transaction on the primary, committed when fn returns
// nil and rolled back when it returns an error, which InTx returns as it is.
// On a store already in a transaction it runs fn with that store. fn must
// not use its store after it returns, nor from several goroutines at once.
func (s *CallStore) InTx(ctx context.Context, fn func(tx calls.Store) error) error {
	if s.chats.inTx {
		return fn(s)
	}
	return s.chats.InTx(ctx, func(tx chat.Store) error {
		// ChatStore.InTx hands its function a *ChatStore bound to the transaction.
		return fn(&CallStore{chats: tx.(*ChatStore)})
	})
}

func (s *CallStore) queries() *db.Queries { return db.New(s.chats.conn) }

// Create stores c and its participants in one statement. Conflict when the
// conversation already has an ongoing call; NotFound when the conversation,
// the initiator or a participant's user does not exist.
func (s *CallStore) Create(ctx context.Context, c calls.Call, participants []calls.Participant) (calls.Call, error) {
	params := db.CreateCallParams{
		ConversationID:       c.ConversationID,
		InitiatorID:          c.InitiatorID,
		CallType:             int32(c.Type),
		Status:               int32(c.Status),
		StartedAt:            c.StartedAt,
		EndedAt:              c.EndedAt,
		CreatedAt:            c.CreatedAt,
		UpdatedAt:            c.UpdatedAt,
		ParticipantUserIds:   make([]int64, len(participants)),
		ParticipantJoinedAts: make([]time.Time, len(participants)),
		ParticipantLeftAts:   make([]time.Time, len(participants)),
	}
	for i, p := range participants {
		params.ParticipantUserIds[i] = p.UserID
		// The zero time is the statement's NULL.
		if p.JoinedAt != nil {
			params.ParticipantJoinedAts[i] = *p.JoinedAt
		}
		if p.LeftAt != nil {
			params.ParticipantLeftAts[i] = *p.LeftAt
		}
	}
	var row db.CreateCallRow
	err := s.chats.recoverable(ctx, func(q *db.Queries) error {
		var err error
		row, err = q.CreateCall(ctx, params)
		return translateRef(err)
	})
	if err != nil {
		return calls.Call{}, err
	}
	return callFromRow(db.CallSession(row)), nil
}

// Get returns the call. NotFound when there is none.
func (s *CallStore) Get(ctx context.Context, id int64) (calls.Call, error) {
	row, err := s.queries().GetCall(ctx, id)
	if err != nil {
		return calls.Call{}, translate(err)
	}
	return callFromRow(row), nil
}

// Lock returns the call with its row locked until the transaction ends;
// outside InTx the lock ends with the statement. NotFound when there is none.
func (s *CallStore) Lock(ctx context.Context, id int64) (calls.Call, error) {
	row, err := s.queries().LockCall(ctx, id)
	if err != nil {
		return calls.Call{}, translate(err)
	}
	return callFromRow(row), nil
}

// Ongoing returns the conversation's calling, ringing or active call.
// NotFound when there is none.
func (s *CallStore) Ongoing(ctx context.Context, conversationID int64) (calls.Call, error) {
	row, err := s.queries().OngoingCall(ctx, conversationID)
	if err != nil {
		return calls.Call{}, translate(err)
	}
	return callFromRow(row), nil
}

// Save writes c's Status, StartedAt, EndedAt and UpdatedAt. NotFound when
// there is no such call; Conflict when c becomes ongoing again while
// another call of its conversation is.
func (s *CallStore) Save(ctx context.Context, c calls.Call) error {
	var n int64
	err := s.chats.recoverable(ctx, func(q *db.Queries) error {
		var err error
		n, err = q.SaveCall(ctx, db.SaveCallParams{
			Status:    int32(c.Status),
			StartedAt: c.StartedAt,
			EndedAt:   c.EndedAt,
			UpdatedAt: c.UpdatedAt,
			ID:        c.ID,
		})
		return translate(err)
	})
	if err != nil {
		return err
	}
	if n == 0 {
		return core.E(core.NotFound, "Not found")
	}
	return nil
}

// Participants returns the call's participants, ordered by user id.
func (s *CallStore) Participants(ctx context.Context, callID int64) ([]calls.Participant, error) {
	rows, err := s.queries().CallParticipants(ctx, callID)
	if err != nil {
		return nil, translate(err)
	}
	out := make([]calls.Participant, len(rows))
	for i, r := range rows {
		out[i] = calls.Participant{
			CallID:   r.CallSessionID,
			UserID:   r.UserID,
			JoinedAt: utcPtr(r.JoinedAt),
			LeftAt:   utcPtr(r.LeftAt),
		}
	}
	return out, nil
}

// PutParticipant creates or replaces the participant (p.CallID, p.UserID).
// NotFound when the call or the user does not exist.
func (s *CallStore) PutParticipant(ctx context.Context, p calls.Participant) error {
	return s.chats.recoverable(ctx, func(q *db.Queries) error {
		return translateRef(q.PutCallParticipant(ctx, db.PutCallParticipantParams{
			CallSessionID: p.CallID,
			UserID:        p.UserID,
			JoinedAt:      p.JoinedAt,
			LeftAt:        p.LeftAt,
		}))
	})
}

// Due returns up to limit ids of calls still calling or ringing that were
// created before the deadline, oldest first. Inside InTx their rows stay
// locked until the transaction ends, and rows other transactions hold are
// skipped rather than waited for.
func (s *CallStore) Due(ctx context.Context, createdBefore time.Time, limit int) ([]int64, error) {
	if limit <= 0 {
		return []int64{}, nil
	}
	ids, err := s.queries().DueCalls(ctx, db.DueCallsParams{
		CreatedBefore: createdBefore,
		MaxCalls:      int32(min(limit, math.MaxInt32)),
	})
	if err != nil {
		return nil, translate(err)
	}
	if ids == nil {
		ids = []int64{}
	}
	return ids, nil
}

// StaleActive returns up to limit ids of active calls last updated before
// the deadline, least recently updated first.
func (s *CallStore) StaleActive(ctx context.Context, updatedBefore time.Time, limit int) ([]int64, error) {
	if limit <= 0 {
		return []int64{}, nil
	}
	ids, err := s.queries().StaleActiveCalls(ctx, db.StaleActiveCallsParams{
		UpdatedBefore: updatedBefore,
		MaxCalls:      int32(min(limit, math.MaxInt32)),
	})
	if err != nil {
		return nil, translate(err)
	}
	if ids == nil {
		ids = []int64{}
	}
	return ids, nil
}

// AddLog stores the call's log message as ChatStore.CreateMessage does:
// on this store's transaction, creating the partition of its month if need
// be, and moving the conversation's LastMessageAt forward. NotFound when
// the conversation, the user or the call does not exist.
func (s *CallStore) AddLog(ctx context.Context, m chat.Message) (chat.Message, error) {
	return s.chats.CreateMessage(ctx, m)
}

func callFromRow(r db.CallSession) calls.Call {
	return calls.Call{
		ID:             r.ID,
		ConversationID: r.ConversationID,
		InitiatorID:    r.InitiatorID,
		Type:           calls.Type(r.CallType),
		Status:         calls.Status(r.Status),
		StartedAt:      utcPtr(r.StartedAt),
		EndedAt:        utcPtr(r.EndedAt),
		CreatedAt:      r.CreatedAt.UTC(),
		UpdatedAt:      r.UpdatedAt.UTC(),
	}
}

// CallSummaries returns the calls with these ids that exist, ordered by ID.
func (s *CallStore) CallSummaries(ctx context.Context, callIDs []int64) ([]chat.CallSummary, error) {
	rows, err := s.queries().CallSummaries(ctx, callIDs)
	if err != nil {
		return nil, translate(err)
	}
	out := make([]chat.CallSummary, len(rows))
	for i, r := range rows {
		out[i] = chat.CallSummary{
			ID:          r.ID,
			CallType:    r.CallType,
			Status:      r.Status,
			StartedAt:   utcPtr(r.StartedAt),
			EndedAt:     utcPtr(r.EndedAt),
			InitiatorID: r.InitiatorID,
		}
	}
	return out, nil
}

// Package calls runs voice/video calls: the call state machine, who may act
// on a call, the call log, and the signaling relayed between participants.
// The server never sees media.
package calls

import (
	"context"
	"time"

	"github.com/chatterly/chatterly/core/chat"
)

// Type is stored as the original's integer code.
type Type int32

// The call types, with their database codes.
const (
	Audio Type = 0
	Video Type = 1
)

// Status is stored as the original's integer code.
type Status int32

// The statuses, with their database codes.
const (
	Calling  Status = 0
	Ringing  Status = 1
	Active   Status = 2
	Ended    Status = 3
	Declined Status = 4
	Missed   Status = 5
)

// String returns the wire name of the type.
func (t Type) String() string { return chat.CallTypeName(int32(t)) }

// String returns the wire name of the status.
func (s Status) String() string { return chat.CallStatusName(int32(s)) }

// Ongoing reports whether the call has not reached a terminal state.
func (s Status) Ongoing() bool { return s == Calling || s == Ringing || s == Active }

// Call is one call session.
type Call struct {
	ID             int64
	ConversationID int64
	InitiatorID    int64
	Type           Type
	Status         Status
	StartedAt      *time.Time // set once, when first accepted
	EndedAt        *time.Time // set once, on the terminal transition
	CreatedAt      time.Time
	UpdatedAt      time.Time
}

// Participant is a user's part in a call: joined when they accepted (the
// initiator when calling), left when they hung up.
type Participant struct {
	CallID   int64
	UserID   int64
	JoinedAt *time.Time
	LeftAt   *time.Time
}

// Store keeps calls and their participants. Implementations:
// postgres.CallStore, memory.CallStore; both pass callstest.RunStore.
// Every method may return Unavailable when the database cannot be reached.
type Store interface {
	// InTx calls fn with a Store whose calls all run in one transaction,
	// committed when fn returns nil and rolled back when it returns an
	// error, which InTx then returns. Nested InTx calls join the outer one.
	InTx(ctx context.Context, fn func(tx Store) error) error

	// Create stores a new call (ID assigned) with its participants.
	// Conflict when the conversation already has an ongoing call.
	Create(ctx context.Context, c Call, participants []Participant) (Call, error)
	// Get returns the call. NotFound when there is none.
	Get(ctx context.Context, id int64) (Call, error)
	// Lock returns the call and holds it against other Locks until the
	// enclosing transaction ends; outside InTx it behaves as Get.
	// NotFound when there is none.
	Lock(ctx context.Context, id int64) (Call, error)
	// Ongoing returns the conversation's calling, ringing or active call.
	// NotFound when there is none.
	Ongoing(ctx context.Context, conversationID int64) (Call, error)
	// Save writes c's Status, StartedAt, EndedAt and UpdatedAt.
	// NotFound when there is no such call.
	Save(ctx context.Context, c Call) error
	// Participants returns the call's participants, ordered by user id.
	Participants(ctx context.Context, callID int64) ([]Participant, error)
	// PutParticipant creates or replaces the participant (CallID, UserID).
	PutParticipant(ctx context.Context, p Participant) error
	// Due returns up to limit ids of calls still calling or ringing that
	// were created before the deadline, oldest first. Inside InTx the rows
	// are locked and rows locked by others are skipped, so that instances
	// sweeping together each take different calls.
	Due(ctx context.Context, createdBefore time.Time, limit int) ([]int64, error)
	// StaleActive returns up to limit ids of active calls last updated
	// before the deadline, least recently updated first.
	StaleActive(ctx context.Context, updatedBefore time.Time, limit int) ([]int64, error)
	// AddLog stores the call's log message (chat.Call type) in the
	// conversation, within the same transaction as the terminal transition.
	AddLog(ctx context.Context, m chat.Message) (chat.Message, error)
}

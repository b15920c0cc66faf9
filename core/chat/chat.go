// Package chat holds conversations, their members, messages and reactions:
// who may do what (one policy per resource), the rules of each change, and
// the events each change publishes.
package chat

import (
	"context"
	"time"
)

// ConversationType is stored as the original's integer code.
type ConversationType int32

// The conversation types, with their database codes.
const (
	Channel ConversationType = 0
	Group   ConversationType = 1
	Direct  ConversationType = 2
)

// Role is a member's role in a conversation, stored as the original's code.
type Role int32

// The roles, with their database codes.
const (
	RoleMember Role = 0
	RoleAdmin  Role = 1
)

// MessageType is stored as the original's integer code.
type MessageType int32

// The message types, with their database codes.
const (
	Text  MessageType = 0
	Image MessageType = 1
	File  MessageType = 2
	Call  MessageType = 3
)

// Conversation is a DM, a group or a channel.
type Conversation struct {
	ID          int64
	Name        *string
	Description *string
	Type        ConversationType
	CreatedByID int64
	// DirectKey is "<smaller user id>:<larger user id>" for a DM, nil otherwise;
	// the store keeps it unique, so each pair of users has at most one DM.
	DirectKey     *string
	LastMessageAt *time.Time
	CreatedAt     time.Time
	UpdatedAt     time.Time
}

// Membership puts a user in a conversation with a role.
type Membership struct {
	ConversationID int64
	UserID         int64
	Role           Role
	CreatedAt      time.Time
	// LastRead is the newest message the user has read, where history's
	// order places it; nil when they marked none, and then the messages
	// from CreatedAt (when they joined) on are the unread ones.
	LastRead *Cursor
}

// unreadFrom is where the member's unread messages start: strictly after
// the marker, or after the moment they joined when they marked none.
func (m *Membership) unreadFrom() Cursor {
	if m.LastRead != nil {
		return *m.LastRead
	}
	return Cursor{CreatedAt: m.CreatedAt}
}

// MemberConversation is a conversation as one member lists it: with their
// read marker and how many messages they have not read.
type MemberConversation struct {
	Conversation
	LastRead *Cursor
	// Unread counts the messages by others, not deleted, after the marker,
	// up to the limit the store was given.
	Unread int
}

// Message is one message. Deleted messages keep their row with DeletedAt set.
type Message struct {
	ID              int64
	ConversationID  int64
	UserID          int64
	Content         string
	Type            MessageType
	ParentMessageID *int64
	CallSessionID   *int64
	// ClientID is the name the sending client gave the message, so that a
	// retry of the send finds it (Store.PostMessage); nil when it gave none.
	ClientID  *string
	EditedAt  *time.Time
	DeletedAt *time.Time
	CreatedAt time.Time
	UpdatedAt time.Time
}

// ClientIDWindow is how long a client id names the message first sent
// with it: a retry within it gets that message, a send after it a new one.
const ClientIDWindow = 24 * time.Hour

// Cursor marks a place in a conversation's history: messages strictly older
// than it, in (CreatedAt, ID) order, come after it.
type Cursor struct {
	CreatedAt time.Time
	ID        int64
}

// Reaction is one user's emoji on one message.
type Reaction struct {
	ID               int64
	MessageID        int64
	MessageCreatedAt time.Time
	UserID           int64
	Emoji            string
	CreatedAt        time.Time
}

// CallSummary is what a call log message shows of its call. CallType and
// Status are the call_sessions codes (audio=0 video=1; calling=0 ringing=1
// active=2 ended=3 declined=4 missed=5).
type CallSummary struct {
	ID          int64
	CallType    int32
	Status      int32
	StartedAt   *time.Time
	EndedAt     *time.Time
	InitiatorID int64
}

// Calls is what chat needs of the call store, which keeps the calls that
// call log messages show. Implementations: postgres.CallStore,
// memory.CallStore; both pass callstest.RunStore.
type Calls interface {
	// CallSummaries returns the calls with these ids that exist. It may
	// return Unavailable when the database cannot be reached.
	CallSummaries(ctx context.Context, callIDs []int64) ([]CallSummary, error)
}

// Store keeps conversations, memberships, messages and reactions.
// Implementations: postgres.ChatStore, memory.ChatStore; both pass
// chattest.RunStore. Rules live in Service: a Store checks nothing but
// existence and uniqueness. Every method may return Unavailable when the
// database cannot be reached.
type Store interface {
	// InTx calls fn with a Store whose calls all run in one transaction,
	// committed when fn returns nil and rolled back when it returns an
	// error, which InTx then returns. Nested InTx calls join the outer one.
	InTx(ctx context.Context, fn func(tx Store) error) error

	// CreateConversation stores c with an assigned ID, and its memberships,
	// atomically. Conflict when c.DirectKey is already used by another
	// conversation; NotFound when a member's user does not exist.
	CreateConversation(ctx context.Context, c Conversation, members []Membership) (Conversation, error)
	// GetConversation returns the conversation. NotFound when there is none.
	GetConversation(ctx context.Context, id int64) (Conversation, error)
	// LockConversation is GetConversation that, in a transaction, also
	// locks the conversation until the transaction ends, so that the
	// membership changes of one conversation (and its deletion) run one at
	// a time. NotFound when there is none.
	LockConversation(ctx context.Context, id int64) (Conversation, error)
	// GetDirect returns the DM with the direct key. NotFound when there is none.
	GetDirect(ctx context.Context, directKey string) (Conversation, error)
	// ListConversations returns the conversations userID is a member of,
	// most recently active first: by LastMessageAt (or CreatedAt when no
	// message was sent) descending, then ID descending; each with userID's
	// marker and unread count (as UnreadCount, up to unreadLimit).
	ListConversations(ctx context.Context, userID int64, unreadLimit int) ([]MemberConversation, error)
	// DeleteConversation deletes the conversation with its memberships,
	// messages (in every partition), reactions and calls. NotFound when there is none.
	DeleteConversation(ctx context.Context, id int64) error

	// GetMembership returns userID's membership of the conversation.
	// NotFound when userID is not a member.
	GetMembership(ctx context.Context, conversationID, userID int64) (Membership, error)
	// ListMemberships returns the memberships of the conversations, ordered
	// by conversation id, then CreatedAt, then user id.
	ListMemberships(ctx context.Context, conversationIDs []int64) ([]Membership, error)
	// AddMembership stores m. Conflict when the user is already a member;
	// NotFound when the conversation or the user does not exist.
	AddMembership(ctx context.Context, m Membership) error
	// RemoveMembership deletes the membership. NotFound when there is none.
	RemoveMembership(ctx context.Context, conversationID, userID int64) error
	// UnreadCount counts the messages of m's conversation that are not
	// deleted, not by m.UserID, and strictly after m.LastRead in history's
	// (CreatedAt, ID) order (after m.CreatedAt when m.LastRead is nil),
	// stopping at limit.
	UnreadCount(ctx context.Context, m Membership, limit int) (int, error)
	// MarkRead moves userID's marker in the conversation forward to at,
	// and reports moved true; when the marker is at or after at already it
	// changes nothing and reports false. Either way it returns the
	// membership as it then stands. Concurrent marks end at the latest of
	// them. The store does not check that at is a message of the
	// conversation. NotFound when userID is not a member.
	MarkRead(ctx context.Context, conversationID, userID int64, at Cursor) (m Membership, moved bool, err error)
	// SetRole gives userID the role in the conversation, stamping the
	// membership updated at at. NotFound when userID is not a member.
	SetRole(ctx context.Context, conversationID, userID int64, role Role, at time.Time) error

	// CreateMessage stores m with the CreatedAt it carries (ID assigned)
	// and moves the conversation's LastMessageAt forward to m.CreatedAt.
	// It never fails for want of a partition, whatever month CreatedAt is in.
	// m.ClientID is not stored. NotFound when the conversation or the user
	// does not exist.
	CreateMessage(ctx context.Context, m Message) (Message, error)
	// PostMessage is CreateMessage for a message a user sends: it stores m
	// only while m.UserID is a member of the conversation, checked in the
	// same step as the insert, and reports created true. NotFound when the
	// author is not a member (or the conversation does not exist); nothing
	// is stored then.
	//
	// With a ClientID that m.UserID sent a message with less than
	// ClientIDWindow before m.CreatedAt (the clock the window is read
	// with), it stores nothing and returns that message with created
	// false, or Conflict when that message is of another conversation.
	// Concurrent calls with one key store one message, which all of them
	// return. An older key is forgotten: m is stored under it.
	//
	// A stored message moves its author's read marker to it (as MarkRead),
	// in the same step: a user has read what they wrote.
	PostMessage(ctx context.Context, m Message) (msg Message, created bool, err error)
	// GetMessage returns message id, deleted or not. NotFound when there is
	// none. conversationID 0 means any conversation; otherwise a message of
	// another conversation is NotFound.
	GetMessage(ctx context.Context, conversationID, id int64) (Message, error)
	// LockMessage is GetMessage that, in a transaction, also locks the
	// message until the transaction ends, so that the changes of one
	// message run one at a time. NotFound as GetMessage.
	LockMessage(ctx context.Context, conversationID, id int64) (Message, error)
	// UpdateMessage writes m's Content, EditedAt, DeletedAt and UpdatedAt to
	// the stored message m.ID (m.CreatedAt locates its partition).
	// NotFound when there is none or it is deleted: a deleted message never
	// changes again, so of two concurrent deletes only one succeeds.
	UpdateMessage(ctx context.Context, m Message) (Message, error)
	// History returns up to limit messages of the conversation that are not
	// deleted, newest first by (CreatedAt, ID), strictly older than before
	// when it is not nil.
	History(ctx context.Context, conversationID int64, before *Cursor, limit int) ([]Message, error)
	// HistoryAfter returns up to limit messages of the conversation that
	// are not deleted, oldest first by (CreatedAt, ID), strictly newer than
	// after: History the other way, so that paging forward and backward
	// agree on one order.
	HistoryAfter(ctx context.Context, conversationID int64, after Cursor, limit int) ([]Message, error)

	// CreateReaction stores r (ID assigned). Conflict when the user already
	// reacted to the message with the same emoji; NotFound when the message
	// (r.MessageID, r.MessageCreatedAt) does not exist.
	CreateReaction(ctx context.Context, r Reaction) (Reaction, error)
	// GetReaction returns the reaction. NotFound when there is none.
	GetReaction(ctx context.Context, id int64) (Reaction, error)
	// DeleteReaction deletes the reaction. NotFound when there is none.
	DeleteReaction(ctx context.Context, id int64) error
	// ListReactions returns the reactions to the messages, ordered by ID.
	ListReactions(ctx context.Context, messageIDs []int64) ([]Reaction, error)

	// ContactIDs returns the distinct ids of the users who share at least one
	// conversation with userID, userID excluded, in ascending order.
	ContactIDs(ctx context.Context, userID int64) ([]int64, error)
}

// Publisher sends an event, already rendered as JSON, to every subscriber
// of a stream ("conversation_<id>", "user_<id>") on every instance.
// Live delivery is at most once; a broker also keeps each stream's recent
// events with their Position (see HistoryConfig), from which clients of the
// extended cable protocol resume, and others catch up over REST.
// Implementations: redis.Broker, memory.Broker; both pass chattest.RunPublisher.
type Publisher interface {
	// Publish returns Unavailable when the broker cannot be reached.
	Publish(ctx context.Context, stream string, payload []byte) error
	// PublishTransient is Publish for a notice worth nothing once missed
	// (typing, presence, revocations): it is kept in no history, so it
	// neither crowds real events out of it nor is replayed stale.
	PublishTransient(ctx context.Context, stream string, payload []byte) error
	// PublishEvicting is Publish for an event that ends some subscriptions
	// to the stream: ev travels with the payload to every instance, whose
	// gateway ends the evicted subscriptions instead of delivering the
	// event to them. Unavailable when the broker cannot be reached.
	PublishEvicting(ctx context.Context, stream string, payload []byte, ev Eviction) error
}

// Eviction says whose subscriptions to a conversation's stream an event
// ends: the member who left (member_left), or every subscriber when the
// conversation is deleted (conversation_deleted). The zero Eviction ends
// none.
type Eviction struct {
	UserID   int64 // the user whose subscriptions end; 0 for none
	Everyone bool  // every subscription to the stream ends
}

// Evicts reports whether the subscriptions of userID end.
func (e Eviction) Evicts(userID int64) bool {
	return e.Everyone || (e.UserID != 0 && e.UserID == userID)
}

// IsZero reports whether e evicts nobody.
func (e Eviction) IsZero() bool { return e == Eviction{} }

// publishEvicting is publish for an event that ends subscriptions.
func (s *Service) publishEvicting(ctx context.Context, stream string, payload []byte, ev Eviction) {
	// The change is committed: a client hanging up now must not cancel its event.
	if err := s.pub.PublishEvicting(context.WithoutCancel(ctx), stream, payload, ev); err != nil {
		s.log.WarnContext(ctx, "publishing event failed", "stream", stream, "err", err)
	}
}

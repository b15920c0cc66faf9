package chat

import (
	"github.com/chatterly/chatterly/core"
	"github.com/chatterly/chatterly/core/users"
)

// The views below are the original's blueprints: HTTP responses and event
// payloads render the same structs, so a client sees one shape everywhere.

// ConversationView is the conversation blueprint's "with members" view.
type ConversationView struct {
	ID               int64          `json:"id"`
	Name             *string        `json:"name"`
	Description      *string        `json:"description"`
	ConversationType string         `json:"conversation_type"`
	CreatedByID      int64          `json:"created_by_id"`
	CreatedAt        core.Time      `json:"created_at"`
	MemberCount      int            `json:"member_count"`
	Members          []users.Public `json:"members"`
	// The reader's read state: the newest message they have read (null
	// when they marked none; they joined with everything before read), and
	// how many messages by others came after it, up to UnreadCap, with
	// UnreadCapped set at the cap.
	LastReadMessageID *int64 `json:"last_read_message_id"`
	UnreadCount       int    `json:"unread_count"`
	UnreadCapped      bool   `json:"unread_capped"`
}

// MessageView is the message blueprint.
type MessageView struct {
	ID              int64          `json:"id"`
	Content         string         `json:"content"`
	EditedAt        *core.Time     `json:"edited_at"`
	CreatedAt       core.Time      `json:"created_at"`
	ParentMessageID *int64         `json:"parent_message_id"`
	ClientID        *string        `json:"client_id"`
	MessageType     string         `json:"message_type"`
	CallSession     *CallLogView   `json:"call_session"`
	User            users.Public   `json:"user"`
	Reactions       []ReactionView `json:"reactions"`
}

// CallLogView is what a call message shows of its call.
type CallLogView struct {
	ID          int64      `json:"id"`
	CallType    string     `json:"call_type"`
	Status      string     `json:"status"`
	StartedAt   *core.Time `json:"started_at"`
	EndedAt     *core.Time `json:"ended_at"`
	Duration    *int64     `json:"duration"`
	InitiatorID int64      `json:"initiator_id"`
}

// ReactionView is the reaction blueprint.
type ReactionView struct {
	ID        int64  `json:"id"`
	Emoji     string `json:"emoji"`
	MessageID int64  `json:"message_id"`
	UserID    int64  `json:"user_id"`
}

// Page is one page of history, oldest message first.
type Page struct {
	Messages []MessageView `json:"messages"`
	// NextCursor continues the paging when the page is full, else nil: the
	// oldest message's id for History (pass it as cursor), the newest's for
	// HistoryAfter (pass it as after).
	NextCursor *int64 `json:"next_cursor"`
}

var (
	conversationTypeNames = map[ConversationType]string{Channel: "channel", Group: "group", Direct: "direct"}
	messageTypeNames      = map[MessageType]string{Text: "text", Image: "image", File: "file", Call: "call"}
	callTypeNames         = map[int32]string{0: "audio", 1: "video"}
	callStatusNames       = map[int32]string{0: "calling", 1: "ringing", 2: "active", 3: "ended", 4: "declined", 5: "missed"}
)

// String returns the wire name of the type.
func (t ConversationType) String() string { return conversationTypeNames[t] }

// String returns the wire name of the type.
func (t MessageType) String() string { return messageTypeNames[t] }

// CallTypeName returns the wire name of a call type code, as CallSummary
// carries it. calls.Type prints through it, so that a call reads the same
// in its own events and in its log.
func CallTypeName(code int32) string { return callTypeNames[code] }

// CallStatusName returns the wire name of a call status code, as
// CallSummary carries it; calls.Status prints through it.
func CallStatusName(code int32) string { return callStatusNames[code] }

func reactionView(r *Reaction) ReactionView {
	return ReactionView{ID: r.ID, Emoji: r.Emoji, MessageID: r.MessageID, UserID: r.UserID}
}

func callLogView(c *CallSummary) *CallLogView {
	v := &CallLogView{
		ID: c.ID, CallType: CallTypeName(c.CallType), Status: CallStatusName(c.Status),
		StartedAt: core.TimePtr(c.StartedAt), EndedAt: core.TimePtr(c.EndedAt), InitiatorID: c.InitiatorID,
	}
	if c.StartedAt != nil && c.EndedAt != nil {
		d := int64(c.EndedAt.Sub(*c.StartedAt).Seconds())
		v.Duration = &d
	}
	return v
}

// Events, as the contract shapes them. Each is rendered once and published as bytes.
type (
	newConversationEvent struct {
		Type         string           `json:"type"`
		Conversation ConversationView `json:"conversation"`
	}
	messageEvent struct {
		Type    string      `json:"type"`
		Message MessageView `json:"message"`
	}
	messageDeletedEvent struct {
		Type      string `json:"type"`
		MessageID int64  `json:"message_id"`
	}
	reactionAddedEvent struct {
		Type     string       `json:"type"`
		Reaction ReactionView `json:"reaction"`
	}
	reactionRemovedEvent struct {
		Type       string `json:"type"`
		ReactionID int64  `json:"reaction_id"`
		MessageID  int64  `json:"message_id"`
	}
	memberJoinedEvent struct {
		Type string       `json:"type"`
		User users.Public `json:"user"`
	}
	memberLeftEvent struct {
		Type   string `json:"type"`
		UserID int64  `json:"user_id"`
	}
	// memberPromotedEvent tells a conversation that a member became admin
	// because the last admin left. Role is always "admin".
	memberPromotedEvent struct {
		Type   string `json:"type"`
		UserID int64  `json:"user_id"`
		Role   string `json:"role"`
	}
	conversationDeletedEvent struct {
		Type           string `json:"type"`
		ConversationID int64  `json:"conversation_id"`
	}
)

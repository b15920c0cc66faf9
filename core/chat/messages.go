package chat

import (
	"context"
	"fmt"
	"slices"

	"github.com/chatterly/chatterly/core"
	"github.com/chatterly/chatterly/core/users"
)

// History returns the page of messages strictly older than the message
// cursor (or the newest page when cursor is 0), oldest first. A given
// limit is clamped into 1..MaxPageSize; without one a page holds
// DefaultPageSize messages.
func (s *Service) History(ctx context.Context, actorID, convID, cursor int64, limit int, limitGiven bool) (Page, error) {
	limit, err := s.pageStart(ctx, actorID, convID, limit, limitGiven)
	if err != nil {
		return Page{}, err
	}
	var before *Cursor
	if cursor != 0 {
		c, err := s.cursorAt(ctx, convID, cursor, "Cursor")
		if err != nil {
			return Page{}, err
		}
		before = &c
	}
	msgs, err := s.store.History(ctx, convID, before, limit)
	if err != nil {
		return Page{}, err
	}
	slices.Reverse(msgs)
	return s.page(ctx, msgs, limit, 0)
}

// HistoryAfter returns the page of messages strictly newer than the message
// after, oldest first, for a client catching up on what it missed. Its
// NextCursor is the newest message's id when the page is full, to be passed
// back as after. Newer means later in (CreatedAt, ID), History's order, so
// that both directions page through the same sequence. limit as History;
// the after message may be deleted (a client may have seen it before it
// was), but must be one of the conversation's, else Invalid.
func (s *Service) HistoryAfter(ctx context.Context, actorID, convID, after int64, limit int, limitGiven bool) (Page, error) {
	limit, err := s.pageStart(ctx, actorID, convID, limit, limitGiven)
	if err != nil {
		return Page{}, err
	}
	c, err := s.cursorAt(ctx, convID, after, "After")
	if err != nil {
		return Page{}, err
	}
	msgs, err := s.store.HistoryAfter(ctx, convID, c, limit)
	if err != nil {
		return Page{}, err
	}
	return s.page(ctx, msgs, limit, len(msgs)-1)
}

// pageStart checks that the actor may read the conversation and returns
// the page size to read.
func (s *Service) pageStart(ctx context.Context, actorID, convID int64, limit int, limitGiven bool) (int, error) {
	if _, err := s.member(ctx, convID, actorID); err != nil {
		return 0, err
	}
	if !limitGiven {
		limit = DefaultPageSize
	}
	return min(max(limit, 1), MaxPageSize), nil
}

// cursorAt places a cursor at message id of the conversation; param names
// the query parameter in the error when there is no such message.
func (s *Service) cursorAt(ctx context.Context, convID, id int64, param string) (Cursor, error) {
	m, err := s.store.GetMessage(ctx, convID, id)
	if core.Is(err, core.NotFound) {
		return Cursor{}, core.InvalidDetails(param + " is not a message of this conversation")
	} else if err != nil {
		return Cursor{}, err
	}
	return Cursor{CreatedAt: m.CreatedAt, ID: m.ID}, nil
}

// page renders msgs, oldest first; when they fill the page, the message at
// next is where the following page starts.
func (s *Service) page(ctx context.Context, msgs []Message, limit, next int) (Page, error) {
	views, err := s.renderMessages(ctx, s.store, msgs, true, nil)
	if err != nil {
		return Page{}, err
	}
	p := Page{Messages: views}
	if len(msgs) == limit {
		p.NextCursor = &msgs[next].ID
	}
	return p, nil
}

// MessageInput is what a client submits to send a message.
type MessageInput struct {
	Content         string
	Type            string // "text" (default), "image" or "file"
	ParentMessageID *int64
	// ClientID, when not nil, makes the send idempotent: see SendMessage.
	ClientID *string
}

var errClientIDTaken = core.E(core.Conflict, "Client id was already used for another conversation")

// SendMessage stores a message from a member and publishes new_message,
// and reports created true.
// actor is the user the request authenticated; the message is rendered
// with it rather than with a second read of the same row.
//
// A send with a ClientID that the actor sent a message with within
// ClientIDWindow is a retry: it stores and publishes nothing, and returns
// that message as history renders it now, with created false, whatever
// the rest of in says. Conflict when that message is of another
// conversation.
func (s *Service) SendMessage(ctx context.Context, actor users.User, convID int64, in MessageInput) (v MessageView, created bool, err error) {
	problems := validateText("Content", in.Content, MaxContent)
	if in.ClientID != nil {
		problems = append(problems, validateClientID(*in.ClientID)...)
	}
	typ := Text
	switch in.Type {
	case "", "text":
	case "image":
		typ = Image
	case "file":
		typ = File
	case "call":
		problems = append(problems, "Message type call is reserved for call logs")
	default:
		problems = append(problems, "Message type is not included in the list")
	}
	// A valid message without a parent checks membership in the insert
	// itself (PostMessage): one round trip fewer on the hottest write. The
	// other paths ask first, so that a stranger learns nothing but 404,
	// whatever the body.
	if len(problems) > 0 || in.ParentMessageID != nil {
		if _, err := s.member(ctx, convID, actor.ID); err != nil {
			return MessageView{}, false, err
		}
	}
	if in.ParentMessageID != nil {
		if _, err := s.store.GetMessage(ctx, convID, *in.ParentMessageID); core.Is(err, core.NotFound) {
			problems = append(problems, "Parent message must belong to this conversation")
		} else if err != nil {
			return MessageView{}, false, err
		}
	}
	if len(problems) > 0 {
		return MessageView{}, false, core.InvalidDetails(problems...)
	}
	now := s.clock()
	// The store, not a lookup here, tells a retry from a first send: of
	// concurrent sends with one client id, only the store sees which stored it.
	m, created, err := s.store.PostMessage(ctx, Message{
		ConversationID: convID, UserID: actor.ID, Content: in.Content, Type: typ,
		ParentMessageID: in.ParentMessageID, ClientID: in.ClientID, CreatedAt: now, UpdatedAt: now,
	})
	switch {
	case core.Is(err, core.NotFound):
		return MessageView{}, false, errNotFound
	case core.Is(err, core.Conflict):
		return MessageView{}, false, errClientIDTaken
	case err != nil:
		return MessageView{}, false, err
	case !created:
		// The first answer went out, and so did its event; the message may
		// have gained reactions since, which history would show.
		views, err := s.renderMessages(ctx, s.store, []Message{m}, true, nil, actor)
		if err != nil {
			return MessageView{}, false, err
		}
		return views[0], false, nil
	}
	v, err = s.publishMessage(ctx, "new_message", m, false, actor)
	return v, true, err
}

// validateClientID checks a client id: 1 to MaxClientID characters of a
// small set that survives URLs, headers and logs unescaped and covers
// UUIDs, ULIDs and "device:counter" schemes.
func validateClientID(id string) []string {
	switch {
	case id == "":
		return []string{"Client id can't be blank"}
	case len(id) > MaxClientID:
		return []string{fmt.Sprintf("Client id is too long (maximum is %d characters)", MaxClientID)}
	}
	for i := range len(id) {
		if !clientIDByte(id[i]) {
			return []string{"Client id may contain only letters, digits, '-', '_', '.' and ':'"}
		}
	}
	return nil
}

func clientIDByte(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return c == '-' || c == '_' || c == '.' || c == ':'
}

// liveMessage returns a message of the conversation that is not deleted.
func (s *Service) liveMessage(ctx context.Context, convID, id int64) (Message, error) {
	m, err := s.store.GetMessage(ctx, convID, id)
	if core.Is(err, core.NotFound) || (err == nil && m.DeletedAt != nil) {
		return Message{}, errNotFound
	}
	return m, err
}

// EditMessage changes a message's content; its author only. actor is the
// user the request authenticated, who renders as the author.
//
// Edits of one message are stored one at a time, on the locked row, and
// each publishes message_edited before its transaction commits, that is
// before the next edit can read the row: the events of one message leave
// in the order the edits were stored, and the broker keeps that order on
// every instance, so a subscriber's last message_edited is the stored
// text. If the commit itself then fails, the edit answers an error after
// its event went out; the message's next event or a reload corrects it.
//
// A call log shows its call, which the call store keeps, and the
// transaction must not wait on another connection to read it: an edit of
// a call log ends a first transaction unchanged, reads the call, and runs
// again. A message's call never changes, so what was read still holds.
func (s *Service) EditMessage(ctx context.Context, actor users.User, convID, id int64, content string) (MessageView, error) {
	if _, err := s.member(ctx, convID, actor.ID); err != nil {
		return MessageView{}, err
	}
	v, callID, err := s.editMessage(ctx, actor, convID, id, content, nil)
	if err != nil || callID == 0 {
		return v, err
	}
	calls, err := s.callSummaries(ctx, []int64{callID})
	if err != nil {
		return MessageView{}, err
	}
	v, _, err = s.editMessage(ctx, actor, convID, id, content, calls)
	return v, err
}

// editMessage is EditMessage's transaction. Given no calls, it stops
// before changing a call log and returns the id of the call to read.
func (s *Service) editMessage(ctx context.Context, actor users.User, convID, id int64, content string, calls map[int64]*CallSummary) (v MessageView, callID int64, err error) {
	err = s.store.InTx(ctx, func(tx Store) error {
		m, err := tx.LockMessage(ctx, convID, id)
		if core.Is(err, core.NotFound) || (err == nil && m.DeletedAt != nil) {
			return errNotFound
		} else if err != nil {
			return err
		}
		if !canEditMessage(&m, actor.ID) {
			return errForbidden
		}
		if problems := validateText("Content", content, MaxContent); len(problems) > 0 {
			return core.InvalidDetails(problems...)
		}
		if m.CallSessionID != nil && calls == nil {
			callID = *m.CallSessionID
			return nil
		}
		now := s.clock()
		m.Content, m.EditedAt, m.UpdatedAt = content, &now, now
		if m, err = tx.UpdateMessage(ctx, m); err != nil {
			return err
		}
		views, err := s.renderMessages(ctx, tx, []Message{m}, true, calls, actor)
		if err != nil {
			return err
		}
		v = views[0]
		s.publish(ctx, ConversationStream(convID), s.render(messageEvent{Type: "message_edited", Message: v}))
		return nil
	})
	if err != nil {
		return MessageView{}, 0, err
	}
	return v, callID, nil
}

// DeleteMessage soft-deletes a message; its author or a conversation admin.
func (s *Service) DeleteMessage(ctx context.Context, actorID, convID, id int64) error {
	actor, err := s.member(ctx, convID, actorID)
	if err != nil {
		return err
	}
	m, err := s.liveMessage(ctx, convID, id)
	if err != nil {
		return err
	}
	if !canDeleteMessage(&m, &actor) {
		return errForbidden
	}
	now := s.clock()
	m.DeletedAt, m.UpdatedAt = &now, now
	if _, err := s.store.UpdateMessage(ctx, m); err != nil {
		return err
	}
	s.publish(ctx, ConversationStream(convID), s.render(messageDeletedEvent{Type: "message_deleted", MessageID: id}))
	return nil
}

// A message just created has no reactions: not asking saves a round trip on
// the busiest path.
func (s *Service) publishMessage(ctx context.Context, event string, m Message, hasReactions bool, known ...users.User) (MessageView, error) {
	views, err := s.renderMessages(ctx, s.store, []Message{m}, hasReactions, nil, known...)
	if err != nil {
		return MessageView{}, err
	}
	s.publish(ctx, ConversationStream(m.ConversationID), s.render(messageEvent{Type: event, Message: views[0]}))
	return views[0], nil
}

type typingEvent struct {
	Type        string  `json:"type"`
	UserID      int64   `json:"user_id"`
	DisplayName *string `json:"display_name,omitempty"`
}

// Typing tells a conversation that u started or stopped typing. The caller
// holds u's live subscription to the conversation, which CanSubscribe
// allowed, so membership is not checked again for every keystroke burst.
func (s *Service) Typing(ctx context.Context, u *users.User, convID int64, started bool) {
	ev := typingEvent{Type: "typing_stop", UserID: u.ID}
	if started {
		name := u.Name()
		ev.Type, ev.DisplayName = "typing_start", &name
	}
	if err := s.pub.PublishTransient(ctx, ConversationStream(convID), s.render(ev)); err != nil {
		s.log.DebugContext(ctx, "publishing a typing notice failed", "conversation_id", convID, "err", err)
	}
}

// Announce publishes new_message for a message stored by another use case
// in its own transaction: a call's log.
func (s *Service) Announce(ctx context.Context, m Message) {
	if _, err := s.publishMessage(ctx, "new_message", m, false); err != nil {
		s.log.WarnContext(ctx, "announcing a message failed", "message_id", m.ID, "err", err)
	}
}

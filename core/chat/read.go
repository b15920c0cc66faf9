package chat

import (
	"context"
	"sync"
	"time"

	"github.com/chatterly/chatterly/core"
)

// UnreadCap is where unread counts stop: a count of UnreadCap means "at
// least that many", shown with UnreadCapped set (a client prints "99+").
// Counting stops there so that the count of a conversation costs a bounded
// index range, however far behind its reader is.
const UnreadCap = 100

// ReadEvery is the least time between two read events of one user in one
// conversation that an instance publishes: a burst of marks (a client
// marking as it scrolls) publishes its first mark at once and its latest
// one when the interval ends, and none in between.
const ReadEvery = time.Second

// ReadState is a member's read state in a conversation, as mark-read
// answers it and conversation_read carries it.
type ReadState struct {
	ConversationID    int64  `json:"conversation_id"`
	LastReadMessageID *int64 `json:"last_read_message_id"`
	UnreadCount       int    `json:"unread_count"`
	UnreadCapped      bool   `json:"unread_capped"`
}

type (
	// readEvent tells a conversation that a member read up to a message,
	// for read receipts.
	readEvent struct {
		Type      string `json:"type"`
		UserID    int64  `json:"user_id"`
		MessageID int64  `json:"message_id"`
	}
	// conversationReadEvent tells a user's other tabs and devices that they
	// read a conversation, so that its badge clears everywhere.
	conversationReadEvent struct {
		Type string `json:"type"`
		ReadState
	}
)

// Before reports whether c comes before o in history's (CreatedAt, ID) order.
func (c Cursor) Before(o Cursor) bool {
	if !c.CreatedAt.Equal(o.CreatedAt) {
		return c.CreatedAt.Before(o.CreatedAt)
	}
	return c.ID < o.ID
}

func readState(convID int64, lastRead *Cursor, unread int) ReadState {
	st := ReadState{ConversationID: convID, UnreadCount: min(unread, UnreadCap), UnreadCapped: unread >= UnreadCap}
	if lastRead != nil {
		id := lastRead.ID
		st.LastReadMessageID = &id
	}
	return st
}

// MarkRead moves the actor's read marker in a conversation forward to
// message messageID, or to the newest message when messageID is 0, and
// returns the actor's read state. A marker already there or later stays
// (no error): markers only move forward, so that a slow device cannot
// bring back a badge a faster one cleared. The message may be deleted, as
// history's after may; one that is not of the conversation is Invalid.
// NotFound for non-members. When the marker moves, read goes to the
// conversation and conversation_read to the actor's own stream.
func (s *Service) MarkRead(ctx context.Context, actorID, convID, messageID int64) (ReadState, error) {
	m, err := s.member(ctx, convID, actorID)
	if err != nil {
		return ReadState{}, err
	}
	var at Cursor
	if messageID != 0 {
		if at, err = s.cursorAt(ctx, convID, messageID, "Message id"); err != nil {
			return ReadState{}, err
		}
	} else {
		newest, err := s.store.History(ctx, convID, nil, 1)
		if err != nil {
			return ReadState{}, err
		}
		if len(newest) == 0 {
			return s.readStateOf(ctx, m)
		}
		at = Cursor{CreatedAt: newest[0].CreatedAt, ID: newest[0].ID}
	}
	// A member who marked nothing has read everything from before they
	// joined; a marker set there would make the messages between it and
	// the join unread.
	if at.Before(m.unreadFrom()) {
		return s.readStateOf(ctx, m)
	}
	m, moved, err := s.store.MarkRead(ctx, convID, actorID, at)
	if core.Is(err, core.NotFound) {
		return ReadState{}, errNotFound
	} else if err != nil {
		return ReadState{}, err
	}
	st, err := s.readStateOf(ctx, m)
	if err != nil || !moved {
		return st, err
	}
	s.reads.offer(ctx, readKey{ConversationStream(convID), actorID},
		s.render(readEvent{Type: "read", UserID: actorID, MessageID: at.ID}), s.publish)
	s.reads.offer(ctx, readKey{UserStream(actorID), convID},
		s.render(conversationReadEvent{Type: "conversation_read", ReadState: st}), s.publish)
	return st, nil
}

// readStateOf counts m's unread messages.
func (s *Service) readStateOf(ctx context.Context, m Membership) (ReadState, error) {
	n, err := s.store.UnreadCount(ctx, m, UnreadCap)
	if err != nil {
		return ReadState{}, err
	}
	return readState(m.ConversationID, m.LastRead, n), nil
}

// readKey names whose read events coalesce: one stream, and the user
// (on a conversation's stream) or the conversation (on a user's).
type readKey struct {
	stream string
	id     int64
}

// coalescer publishes at most one event per key per interval: the first
// of a burst at once, the latest of the rest when the interval ends. It is
// per instance: marks of one user through two instances coalesce on each.
type coalescer struct {
	every time.Duration
	now   func() time.Time
	after func(time.Duration, func())

	mu     sync.Mutex
	slots  map[readKey]*readSlot
	offers int
}

type readSlot struct {
	last    time.Time // when the slot's last event went out
	pending []byte    // the latest event held back, nil when none
}

func newCoalescer(every time.Duration, now func() time.Time, after func(time.Duration, func())) *coalescer {
	if after == nil {
		after = func(d time.Duration, f func()) { time.AfterFunc(d, f) }
	}
	return &coalescer{every: every, now: now, after: after, slots: map[readKey]*readSlot{}}
}

// offer publishes payload to k.stream through publish now, or holds it
// until the key's interval ends, replacing what was held.
func (c *coalescer) offer(ctx context.Context, k readKey, payload []byte, publish func(context.Context, string, []byte)) {
	now := c.now()
	c.mu.Lock()
	c.sweep(now)
	slot, ok := c.slots[k]
	if !ok || (slot.pending == nil && now.Sub(slot.last) >= c.every) {
		c.slots[k] = &readSlot{last: now}
		c.mu.Unlock()
		publish(ctx, k.stream, payload)
		return
	}
	held := slot.pending != nil
	slot.pending = payload
	c.mu.Unlock()
	if held {
		return // the flush already scheduled sends this one instead
	}
	ctx = context.WithoutCancel(ctx)
	c.after(slot.last.Add(c.every).Sub(now), func() {
		c.mu.Lock()
		p := slot.pending
		slot.pending, slot.last = nil, c.now()
		c.mu.Unlock()
		publish(ctx, k.stream, p)
	})
}

// sweep forgets, every 1024 offers, the keys idle for an interval, so
// that the map holds the recently active ones only.
func (c *coalescer) sweep(now time.Time) {
	c.offers++
	if c.offers%1024 != 0 {
		return
	}
	for k, slot := range c.slots {
		if slot.pending == nil && now.Sub(slot.last) >= c.every {
			delete(c.slots, k)
		}
	}
}

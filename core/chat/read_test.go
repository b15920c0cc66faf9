package chat_test

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/chatterly/chatterly/adapters/memory"
	"github.com/chatterly/chatterly/core/chat"
)

// fakeTimers is a clock and the timers that run on it, advanced by hand.
type fakeTimers struct {
	mu     sync.Mutex
	now    time.Time
	queued []func()
	delays []time.Duration
}

func (c *fakeTimers) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeTimers) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func (c *fakeTimers) After(d time.Duration, f func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.queued, c.delays = append(c.queued, f), append(c.delays, d)
}

// fire runs the timers queued so far, as if their time had come.
func (c *fakeTimers) fire() {
	c.mu.Lock()
	fs := c.queued
	c.queued = nil
	c.mu.Unlock()
	for _, f := range fs {
		f()
	}
}

func TestMarkReadCoalescesBursts(t *testing.T) {
	ctx := context.Background()
	clock := &fakeTimers{now: time.Date(2026, 3, 7, 18, 0, 0, 0, time.UTC)}
	f := &fixture{users: memory.NewUserStore(), chats: memory.NewChatStore(), events: &recorder{}}
	f.calls = memory.NewCallStore(f.chats)
	f.svc = chat.NewService(chat.Deps{Store: f.chats, Calls: f.calls, Users: f.users, Publisher: f.events, Now: clock.Now, After: clock.After})
	a, b := f.user(t, "alice"), f.user(t, "bob")
	conv := f.group(t, a, b)
	var ids []int64
	for range 4 {
		clock.advance(time.Millisecond)
		m, _, err := f.svc.SendMessage(ctx, f.as(t, b), conv, chat.MessageInput{Content: "hi"})
		require.NoError(t, err)
		ids = append(ids, m.ID)
	}
	f.events.take()
	reads := func() (out []int64) {
		for _, p := range f.events.take() {
			if p.stream != chat.ConversationStream(conv) {
				continue
			}
			var ev struct {
				Type      string `json:"type"`
				MessageID int64  `json:"message_id"`
			}
			require.NoError(t, json.Unmarshal([]byte(p.payload), &ev))
			require.Equal(t, "read", ev.Type)
			out = append(out, ev.MessageID)
		}
		return out
	}
	mark := func(id int64) chat.ReadState {
		t.Helper()
		st, err := f.svc.MarkRead(ctx, a, conv, id)
		require.NoError(t, err)
		return st
	}

	mark(ids[0])
	assert.Equal(t, []int64{ids[0]}, reads(), "the first of a burst goes at once")
	clock.advance(100 * time.Millisecond)
	mark(ids[1])
	clock.advance(100 * time.Millisecond)
	st := mark(ids[2])
	assert.Equal(t, 1, st.UnreadCount, "the answer is not held back")
	assert.Empty(t, reads(), "the rest wait for the interval")
	// One flush per stream (read, conversation_read), scheduled by the
	// first mark held back for when the interval ends.
	left := chat.ReadEvery - 100*time.Millisecond
	assert.Equal(t, []time.Duration{left, left}, clock.delays, "one flush per stream, when the interval ends")
	clock.advance(left - 100*time.Millisecond)
	clock.fire()
	assert.Equal(t, []int64{ids[2]}, reads(), "then only the latest")

	clock.advance(chat.ReadEvery)
	mark(ids[3])
	assert.Equal(t, []int64{ids[3]}, reads(), "after a quiet interval, at once again")
	mark(ids[3])
	clock.fire()
	assert.Empty(t, reads(), "a mark that moves nothing publishes nothing")
}

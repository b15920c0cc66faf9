package chat_test

import (
	"context"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/chatterly/chatterly/adapters/memory"
	"github.com/chatterly/chatterly/core"
	"github.com/chatterly/chatterly/core/calls"
	"github.com/chatterly/chatterly/core/chat"
	"github.com/chatterly/chatterly/core/users"
)

type fixture struct {
	svc    *chat.Service
	users  *memory.UserStore
	chats  *memory.ChatStore
	calls  *memory.CallStore
	count  *countingPorts
	events *recorder
}

// countingPorts counts the calls the service makes to its ports.
type countingPorts struct {
	chat.Store
	cs    *memory.CallStore
	us    *memory.UserStore
	pres  *memory.Presence
	calls atomic.Int64
}

func (c *countingPorts) tick() { c.calls.Add(1) }

func (c *countingPorts) ListConversations(ctx context.Context, id int64, unreadLimit int) ([]chat.MemberConversation, error) {
	c.tick()
	return c.Store.ListConversations(ctx, id, unreadLimit)
}
func (c *countingPorts) UnreadCount(ctx context.Context, m chat.Membership, limit int) (int, error) {
	c.tick()
	return c.Store.UnreadCount(ctx, m, limit)
}
func (c *countingPorts) ListMemberships(ctx context.Context, ids []int64) ([]chat.Membership, error) {
	c.tick()
	return c.Store.ListMemberships(ctx, ids)
}
func (c *countingPorts) GetMembership(ctx context.Context, conv, user int64) (chat.Membership, error) {
	c.tick()
	return c.Store.GetMembership(ctx, conv, user)
}
func (c *countingPorts) PostMessage(ctx context.Context, m chat.Message) (chat.Message, bool, error) {
	c.tick()
	return c.Store.PostMessage(ctx, m)
}
func (c *countingPorts) GetMessage(ctx context.Context, conv, id int64) (chat.Message, error) {
	c.tick()
	return c.Store.GetMessage(ctx, conv, id)
}
func (c *countingPorts) History(ctx context.Context, conv int64, before *chat.Cursor, limit int) ([]chat.Message, error) {
	c.tick()
	return c.Store.History(ctx, conv, before, limit)
}
func (c *countingPorts) ListReactions(ctx context.Context, ids []int64) ([]chat.Reaction, error) {
	c.tick()
	return c.Store.ListReactions(ctx, ids)
}

// countingCalls, countingUsers and countingPresence count call store
// reads, user loads and presence reads.
type countingCalls struct{ c *countingPorts }

func (cs countingCalls) CallSummaries(ctx context.Context, ids []int64) ([]chat.CallSummary, error) {
	cs.c.tick()
	return cs.c.cs.CallSummaries(ctx, ids)
}

type countingUsers struct{ c *countingPorts }

func (u countingUsers) Get(ctx context.Context, id int64) (users.User, error) {
	u.c.tick()
	return u.c.us.Get(ctx, id)
}
func (u countingUsers) GetMany(ctx context.Context, ids []int64) ([]users.User, error) {
	u.c.tick()
	return u.c.us.GetMany(ctx, ids)
}

type countingPresence struct{ c *countingPorts }

func (p countingPresence) Online(ctx context.Context, ids []int64) (map[int64]bool, error) {
	p.c.tick()
	return p.c.pres.Online(ctx, ids)
}

// recorder is a Publisher that keeps what was published.
type recorder struct {
	mu     sync.Mutex
	events []published
}

type published struct {
	stream  string
	payload string
	evict   chat.Eviction
}

func (r *recorder) PublishTransient(ctx context.Context, stream string, payload []byte) error {
	return r.Publish(ctx, stream, payload)
}

func (r *recorder) Publish(ctx context.Context, stream string, payload []byte) error {
	return r.PublishEvicting(ctx, stream, payload, chat.Eviction{})
}

func (r *recorder) PublishEvicting(_ context.Context, stream string, payload []byte, ev chat.Eviction) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, published{stream, string(payload), ev})
	return nil
}

func (r *recorder) take() []published {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.events
	r.events = nil
	return out
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	f := &fixture{users: memory.NewUserStore(), chats: memory.NewChatStore(), events: &recorder{}}
	f.calls = memory.NewCallStore(f.chats)
	f.count = &countingPorts{Store: f.chats, cs: f.calls, us: f.users, pres: memory.NewPresence()}
	f.svc = chat.NewService(chat.Deps{
		Store: f.count, Calls: countingCalls{f.count}, Users: countingUsers{f.count}, Presence: countingPresence{f.count}, Publisher: f.events,
		Now: func() time.Time { return time.Date(2026, 3, 7, 18, 11, 58, 123456789, time.UTC) },
	})
	return f
}

func (f *fixture) user(t testing.TB, name string) int64 {
	t.Helper()
	u, err := f.users.Create(context.Background(), users.NewUser{Email: name + "@x.io", Username: name, PasswordHash: "h", CreatedAt: time.Now()})
	require.NoError(t, err)
	return u.ID
}

// as returns the stored user id, as the HTTP port hands it to SendMessage.
func (f *fixture) as(t testing.TB, id int64) users.User {
	t.Helper()
	u, err := f.users.Get(context.Background(), id)
	require.NoError(t, err)
	return u
}

func (f *fixture) group(t testing.TB, owner int64, members ...int64) int64 {
	t.Helper()
	name := "team"
	v, created, err := f.svc.CreateConversation(context.Background(), owner, chat.ConversationInput{Name: &name, MemberIDs: members})
	require.NoError(t, err)
	require.True(t, created)
	return v.ID
}

// Rendering takes the same number of port calls whatever the page size: no N+1.
func TestRenderingCostIsConstant(t *testing.T) {
	ctx := context.Background()
	costOfHistory := func(n int) int64 {
		f := newFixture(t)
		a, b := f.user(t, "alice"), f.user(t, "bob")
		conv := f.group(t, a, b)
		for i := range n {
			author := a
			if i%2 == 1 {
				author = b
			}
			m, _, err := f.svc.SendMessage(ctx, f.as(t, author), conv, chat.MessageInput{Content: "m" + strconv.Itoa(i)})
			require.NoError(t, err)
			_, err = f.svc.AddReaction(ctx, a, m.ID, "👍")
			require.NoError(t, err)
		}
		f.count.calls.Store(0)
		page, err := f.svc.History(ctx, a, conv, 0, 100, true)
		require.NoError(t, err)
		require.Len(t, page.Messages, n)
		return f.count.calls.Load()
	}
	assert.Equal(t, costOfHistory(2), costOfHistory(60), "a history page")

	costOfList := func(n int) int64 {
		f := newFixture(t)
		a := f.user(t, "alice")
		var others []int64
		for i := range 5 {
			others = append(others, f.user(t, "user"+strconv.Itoa(i)))
		}
		for range n {
			f.group(t, a, others...)
		}
		f.count.calls.Store(0)
		views, err := f.svc.ListConversations(ctx, a)
		require.NoError(t, err)
		require.Len(t, views, n)
		return f.count.calls.Load()
	}
	assert.Equal(t, costOfList(1), costOfList(25), "the conversation list")
}

// A plain send is one store call (the insert, which checks membership) and
// one presence read: the author comes from the caller, not from the store.
// Sends that need more (a parent, or a body to refuse) check membership
// first, so a stranger gets 404 whatever the body says.
func TestSendMessagePortCalls(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	a, b, stranger := f.user(t, "alice"), f.user(t, "bob"), f.user(t, "mallory")
	conv := f.group(t, a, b)
	first, _, err := f.svc.SendMessage(ctx, f.as(t, a), conv, chat.MessageInput{Content: "first"})
	require.NoError(t, err)
	f.events.take()

	alice := f.as(t, a)
	alice.Username = "alice-as-authenticated"
	f.count.calls.Store(0)
	m, _, err := f.svc.SendMessage(ctx, alice, conv, chat.MessageInput{Content: "hi"})
	require.NoError(t, err)
	assert.Equal(t, int64(2), f.count.calls.Load(), "PostMessage and Online")
	assert.Equal(t, "alice-as-authenticated", m.User.Username, "rendered from the caller's user")
	require.Len(t, f.events.take(), 1)

	for _, tc := range []struct {
		name string
		in   chat.MessageInput
	}{
		{"valid", chat.MessageInput{Content: "intruder"}},
		{"blank", chat.MessageInput{Content: " "}},
		{"bad type", chat.MessageInput{Content: "x", Type: "call"}},
		{"reply to a message of the conversation", chat.MessageInput{Content: "x", ParentMessageID: &first.ID}},
		{"reply to a missing message", chat.MessageInput{Content: "x", ParentMessageID: new(int64(1 << 40))}},
	} {
		t.Run("stranger "+tc.name, func(t *testing.T) {
			_, _, err := f.svc.SendMessage(ctx, f.as(t, stranger), conv, tc.in)
			assert.Equal(t, core.NotFound, core.KindOf(err))
			_, _, err = f.svc.SendMessage(ctx, f.as(t, stranger), conv+1000, tc.in)
			assert.Equal(t, core.NotFound, core.KindOf(err), "a conversation that does not exist")
		})
	}
	assert.Empty(t, f.events.take(), "refused sends publish nothing")
	page, err := f.svc.History(ctx, a, conv, 0, 50, false)
	require.NoError(t, err)
	assert.Len(t, page.Messages, 2, "nothing stored for the stranger")
}

func TestEventsArePublishedOnceAfterSuccess(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	a, b, c := f.user(t, "alice"), f.user(t, "bob"), f.user(t, "carol")
	conv := f.group(t, a, b)
	got := f.events.take()
	require.Len(t, got, 1)
	assert.Equal(t, "user_"+strconv.FormatInt(b, 10), got[0].stream)
	assert.Contains(t, got[0].payload, `"type":"new_conversation"`)
	assert.Contains(t, got[0].payload, `"created_at":"2026-03-07T18:11:58.123Z"`)

	_, _, err := f.svc.SendMessage(ctx, f.as(t, c), conv, chat.MessageInput{Content: "intruder"})
	assert.Equal(t, core.NotFound, core.KindOf(err))
	_, _, err = f.svc.SendMessage(ctx, f.as(t, a), conv, chat.MessageInput{Content: "  "})
	assert.Equal(t, core.Invalid, core.KindOf(err))
	assert.Empty(t, f.events.take(), "failures publish nothing")

	m, _, err := f.svc.SendMessage(ctx, f.as(t, a), conv, chat.MessageInput{Content: "hi"})
	require.NoError(t, err)
	got = f.events.take()
	require.Len(t, got, 1)
	assert.Equal(t, chat.ConversationStream(conv), got[0].stream)
	assert.JSONEq(t, `{"type":"new_message","message":{"id":`+strconv.FormatInt(m.ID, 10)+`,"content":"hi","edited_at":null,
		"created_at":"2026-03-07T18:11:58.123Z","parent_message_id":null,"client_id":null,"message_type":"text","call_session":null,
		"user":{"id":`+strconv.FormatInt(a, 10)+`,"username":"alice","display_name":null,"avatar_url":null,"online":false},"reactions":[]}}`, got[0].payload)
}

// A call log shows its call as the call store has it, in history and in
// the event of an edit.
func TestCallLogRendering(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	a, b := f.user(t, "alice"), f.user(t, "bob")
	conv := f.group(t, a, b)
	start := time.Date(2026, 3, 7, 18, 0, 0, 0, time.UTC)
	end := start.Add(95*time.Second + 600*time.Millisecond)
	c, err := f.calls.Create(ctx, calls.Call{
		ConversationID: conv, InitiatorID: a, Type: calls.Video, Status: calls.Ended,
		StartedAt: &start, EndedAt: &end, CreatedAt: start, UpdatedAt: end,
	}, nil)
	require.NoError(t, err)
	logged, err := f.calls.AddLog(ctx, chat.Message{ConversationID: conv, UserID: a, Content: "Video call", Type: chat.Call, CallSessionID: &c.ID, CreatedAt: end, UpdatedAt: end})
	require.NoError(t, err)
	assertCall := func(t *testing.T, m chat.MessageView) {
		t.Helper()
		assert.Equal(t, "call", m.MessageType)
		require.NotNil(t, m.CallSession)
		assert.Equal(t, c.ID, m.CallSession.ID)
		assert.Equal(t, "video", m.CallSession.CallType)
		assert.Equal(t, "ended", m.CallSession.Status)
		require.NotNil(t, m.CallSession.Duration)
		assert.Equal(t, int64(95), *m.CallSession.Duration)
	}

	page, err := f.svc.History(ctx, b, conv, 0, 0, false)
	require.NoError(t, err)
	require.Len(t, page.Messages, 1)
	assertCall(t, page.Messages[0])
	assert.Nil(t, page.NextCursor)

	f.events.take()
	edited, err := f.svc.EditMessage(ctx, f.as(t, a), conv, logged.ID, "Video call, 1 min")
	require.NoError(t, err)
	assertCall(t, edited)
	got := f.events.take()
	require.Len(t, got, 1)
	assert.JSONEq(t, render(t, map[string]any{"type": "message_edited", "message": edited}), got[0].payload)
}

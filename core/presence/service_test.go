package presence_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/chatterly/chatterly/adapters/memory"
	"github.com/chatterly/chatterly/core/chat"
	"github.com/chatterly/chatterly/core/presence"
	"github.com/chatterly/chatterly/core/users"
)

type recorder struct {
	mu  sync.Mutex
	got map[string][]string
}

func (r *recorder) PublishTransient(ctx context.Context, stream string, payload []byte) error {
	return r.Publish(ctx, stream, payload)
}

func (r *recorder) Publish(_ context.Context, stream string, payload []byte) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got[stream] = append(r.got[stream], string(payload))
	return nil
}

func (r *recorder) take() map[string][]string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.got
	r.got = map[string][]string{}
	return out
}

type fixture struct {
	svc     *presence.Service
	tracker *memory.Presence
	users   *memory.UserStore
	chats   *memory.ChatStore
	pub     *recorder
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{tracker: memory.NewPresence(), users: memory.NewUserStore(), chats: memory.NewChatStore(), pub: &recorder{got: map[string][]string{}}}
	f.svc = presence.NewService(f.tracker, f.chats, f.users, f.pub, nil, nil)
	return f
}

func (f *fixture) user(t *testing.T, name string) int64 {
	t.Helper()
	u, err := f.users.Create(context.Background(), users.NewUser{Email: name + "@x.io", Username: name, PasswordHash: "h", CreatedAt: time.Now()})
	require.NoError(t, err)
	return u.ID
}

// share puts the users in one conversation, which makes them contacts.
func (f *fixture) share(t *testing.T, ids ...int64) {
	t.Helper()
	now := time.Now().UTC()
	var ms []chat.Membership
	for _, id := range ids {
		ms = append(ms, chat.Membership{UserID: id, CreatedAt: now})
	}
	name := "g"
	_, err := f.chats.CreateConversation(context.Background(), chat.Conversation{Type: chat.Group, Name: &name, CreatedByID: ids[0], CreatedAt: now, UpdatedAt: now}, ms)
	require.NoError(t, err)
}

// status is the exact frame payload, keys in the original's order.
func status(id int64, name, s string) string {
	return fmt.Sprintf(`{"user_id":%d,"username":%q,"status":%q}`, id, name, s)
}

func TestTwoTabsAndContactsOnly(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	alice, bob, stranger := f.user(t, "alice"), f.user(t, "bob"), f.user(t, "stranger")
	f.share(t, alice, bob)

	roster, err := f.svc.Connect(ctx, bob, "bob-1")
	require.NoError(t, err)
	assert.Equal(t, presence.Roster{Type: "initial_presence", OnlineUserIDs: []int64{}}, roster)
	f.pub.take()

	roster, err = f.svc.Connect(ctx, alice, "tab-1")
	require.NoError(t, err)
	assert.Equal(t, []int64{bob}, roster.OnlineUserIDs, "online contacts, not strangers, not self")
	assert.JSONEq(t, status(alice, "alice", "online"), f.pub.take()[presence.Stream(bob)][0])
	u, err := f.users.Get(ctx, alice)
	require.NoError(t, err)
	assert.NotNil(t, u.LastSeenAt, "coming online stamps last_seen_at")

	_, err = f.svc.Connect(ctx, alice, "tab-2")
	require.NoError(t, err)
	assert.Empty(t, f.pub.take(), "a second tab announces nothing")
	require.NoError(t, f.svc.Disconnect(ctx, alice, "tab-1"))
	assert.Empty(t, f.pub.take(), "closing one of two tabs keeps the user online")
	require.NoError(t, f.svc.Disconnect(ctx, alice, "tab-2"))
	got := f.pub.take()
	assert.Equal(t, map[string][]string{presence.Stream(bob): {status(alice, "alice", "offline")}}, got, "offline to contacts only")
	assert.NotContains(t, got, presence.Stream(stranger))
}

func TestIntroduce(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	alice, bob, carol := f.user(t, "alice"), f.user(t, "bob"), f.user(t, "carol")
	for _, id := range []int64{alice, bob} {
		_, err := f.svc.Connect(ctx, id, "c")
		require.NoError(t, err)
	}
	f.pub.take()
	f.svc.Introduce(ctx, []int64{carol}, []int64{alice, bob})
	got := f.pub.take()
	assert.Equal(t, []string{status(alice, "alice", "online"), status(bob, "bob", "online")}, got[presence.Stream(carol)], "the newcomer learns who is online")
	assert.Empty(t, got[presence.Stream(alice)], "carol is offline: nothing to tell")

	f.svc.Introduce(ctx, []int64{alice, bob, carol}, nil)
	got = f.pub.take()
	assert.Equal(t, []string{status(bob, "bob", "online")}, got[presence.Stream(alice)])
	assert.Equal(t, []string{status(alice, "alice", "online")}, got[presence.Stream(bob)])
}

func TestSweepAnnouncesLapsedUsers(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	now := time.Now()
	f.tracker.Now = func() time.Time { return now }
	alice, bob := f.user(t, "alice"), f.user(t, "bob")
	f.share(t, alice, bob)
	_, err := f.svc.Connect(ctx, alice, "c")
	require.NoError(t, err)
	f.pub.take()
	now = now.Add(presence.TTL + time.Second) // the instance died: no Disconnect, no ping
	require.NoError(t, f.svc.Sweep(ctx))
	assert.Equal(t, []string{status(alice, "alice", "offline")}, f.pub.take()[presence.Stream(bob)])
	require.NoError(t, f.svc.Sweep(ctx))
	assert.Empty(t, f.pub.take(), "announced once")
}

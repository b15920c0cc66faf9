package chat_test

import (
	"context"
	"encoding/json"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/chatterly/chatterly/core"
	"github.com/chatterly/chatterly/core/chat"
)

func TestAddMemberTellsTheNewMember(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	a, b, c := f.user(t, "alice"), f.user(t, "bob"), f.user(t, "carol")
	conv := f.group(t, a, b)
	f.events.take()

	require.NoError(t, f.svc.AddMember(ctx, a, conv, c))

	got := f.events.take()
	require.Len(t, got, 2)
	assert.Equal(t, chat.ConversationStream(conv), got[0].stream)
	assert.Contains(t, got[0].payload, `{"type":"member_joined"`)
	assert.Equal(t, chat.UserStream(c), got[1].stream)
	view, err := f.svc.GetConversation(ctx, c, conv)
	require.NoError(t, err)
	assert.JSONEq(t, render(t, map[string]any{"type": "new_conversation", "conversation": view}), got[1].payload,
		"the payload of a creation, with the new member")
}

func TestRemoveMemberHandsOver(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	// A clock that moves, so that seniority is not a tie broken by user id.
	at := time.Date(2026, 3, 7, 18, 0, 0, 0, time.UTC)
	f.svc = chat.NewService(chat.Deps{
		Store: f.count, Calls: countingCalls{f.count}, Users: countingUsers{f.count}, Presence: countingPresence{f.count}, Publisher: f.events,
		Now: func() time.Time { at = at.Add(time.Second); return at },
	})
	a, b, c := f.user(t, "alice"), f.user(t, "bob"), f.user(t, "carol")
	conv := f.group(t, a, c)
	require.NoError(t, f.svc.AddMember(ctx, a, conv, b))
	f.events.take()

	require.NoError(t, f.svc.RemoveMember(ctx, a, conv, a))

	id := strconv.FormatInt
	got := f.events.take()
	require.Len(t, got, 2)
	assert.Equal(t, []string{
		`{"type":"member_left","user_id":` + id(a, 10) + `}`,
		`{"type":"member_promoted","user_id":` + id(c, 10) + `,"role":"admin"}`,
	}, []string{got[0].payload, got[1].payload}, "carol joined first")
	m, err := f.chats.GetMembership(ctx, conv, c)
	require.NoError(t, err)
	assert.Equal(t, chat.RoleAdmin, m.Role)
	m, err = f.chats.GetMembership(ctx, conv, b)
	require.NoError(t, err)
	assert.Equal(t, chat.RoleMember, m.Role)

	assert.Equal(t, core.Forbidden, core.KindOf(f.svc.DeleteConversation(ctx, a, conv)), "the creator left")
	assert.Equal(t, core.Forbidden, core.KindOf(f.svc.DeleteConversation(ctx, b, conv)), "a member")
	require.NoError(t, f.svc.RemoveMember(ctx, b, conv, b))
	assert.Len(t, f.events.take(), 1, "an admin stays: no hand-over")
	require.NoError(t, f.svc.DeleteConversation(ctx, c, conv), "the new admin")
}

func render(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return string(b)
}

package memory_test

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/chatterly/chatterly/adapters/memory"
	"github.com/chatterly/chatterly/core/calls"
	"github.com/chatterly/chatterly/core/calls/callstest"
	"github.com/chatterly/chatterly/core/chat"
)

// newCallFixture gives the contract a CallStore on a ChatStore of its own.
// The memory stores keep no users, so any id will do for one.
func newCallFixture(t *testing.T) callstest.Fixture {
	t.Helper()
	chats := memory.NewChatStore()
	var lastUser atomic.Int64
	return callstest.Fixture{
		Store:   memory.NewCallStore(chats),
		NewUser: func(*testing.T) int64 { return lastUser.Add(1) },
		NewConversation: func(t *testing.T, members ...int64) int64 {
			t.Helper()
			return newGroup(t, chats, members...)
		},
		History: func(t *testing.T, conversationID int64) []chat.Message {
			t.Helper()
			ms, err := chats.History(t.Context(), conversationID, nil, 1<<20)
			require.NoError(t, err)
			return ms
		},
	}
}

func newGroup(t *testing.T, chats *memory.ChatStore, members ...int64) int64 {
	t.Helper()
	at := time.Now()
	ms := make([]chat.Membership, len(members))
	for i, id := range members {
		ms[i] = chat.Membership{UserID: id, CreatedAt: at}
	}
	c, err := chats.CreateConversation(t.Context(), chat.Conversation{
		Name: new("Call"), Type: chat.Group, CreatedByID: members[0], CreatedAt: at, UpdatedAt: at,
	}, ms)
	require.NoError(t, err)
	return c.ID
}

func TestCallStore(t *testing.T) {
	callstest.RunStore(t, newCallFixture)
}

// TestCallStoreSummaries checks that the chat side shows each call as it
// stands, so that call log messages render the call's current state.
func TestCallStoreSummaries(t *testing.T) {
	ctx := t.Context()
	chats := memory.NewChatStore()
	store := memory.NewCallStore(chats)
	conv := newGroup(t, chats, 1, 2)
	at := time.Now().UTC().Truncate(time.Microsecond)
	c, err := store.Create(ctx, calls.Call{ConversationID: conv, InitiatorID: 1, Type: calls.Video, Status: calls.Ringing, CreatedAt: at, UpdatedAt: at}, nil)
	require.NoError(t, err)
	summary := chat.CallSummary{ID: c.ID, CallType: int32(calls.Video), Status: int32(calls.Ringing), InitiatorID: 1}

	got, err := chats.CallSummaries(ctx, []int64{c.ID})
	require.NoError(t, err)
	assert.Equal(t, []chat.CallSummary{summary}, got, "after Create")

	c.Status, c.StartedAt, c.EndedAt = calls.Ended, &at, &at
	require.NoError(t, store.Save(ctx, c))
	summary.Status, summary.StartedAt, summary.EndedAt = int32(calls.Ended), &at, &at
	got, err = chats.CallSummaries(ctx, []int64{c.ID})
	require.NoError(t, err)
	assert.Equal(t, []chat.CallSummary{summary}, got, "after Save")

	// The call goes with its conversation, as the database's cascade has it.
	require.NoError(t, chats.DeleteConversation(ctx, conv))
	_, err = store.Get(ctx, c.ID)
	assert.Error(t, err)
}

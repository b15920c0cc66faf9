package memory_test

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chatterly/chatterly/adapters/memory"
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
		DeleteConversation: func(t *testing.T, id int64) {
			t.Helper()
			require.NoError(t, chats.DeleteConversation(t.Context(), id))
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

package postgres_test

import (
	"context"
	"crypto/rand"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/chatterly/chatterly/adapters/postgres"
	"github.com/chatterly/chatterly/adapters/postgres/pgtest"
	"github.com/chatterly/chatterly/core"
	"github.com/chatterly/chatterly/core/calls"
	"github.com/chatterly/chatterly/core/calls/callstest"
	"github.com/chatterly/chatterly/core/chat"
	"github.com/chatterly/chatterly/core/users"
)

// newCallFixture gives the contract a CallStore on a database of its own:
// Due sees every call in the database.
func newCallFixture(t *testing.T) callstest.Fixture {
	t.Helper()
	pdb := pgtest.New(t)
	parts := postgres.NewPartitions(pdb)
	userStore := postgres.NewUserStore(pdb)
	chats := postgres.NewChatStore(pdb, parts)
	return callstest.Fixture{
		Store: postgres.NewCallStore(pdb, parts),
		NewUser: func(t *testing.T) int64 {
			t.Helper()
			name := "u" + rand.Text()[:16]
			u, err := userStore.Create(t.Context(), users.NewUser{
				Email: name + "@example.com", Username: name, PasswordHash: "x", CreatedAt: time.Now(),
			})
			require.NoError(t, err)
			return u.ID
		},
		NewConversation: func(t *testing.T, members ...int64) int64 {
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

func TestCallStore(t *testing.T) {
	callstest.RunStore(t, newCallFixture)
}

// TestCallStoreDueSkipsLocked checks that a sweeper does not wait for the
// calls another sweeper's transaction holds, which the contract cannot:
// a store that serializes transactions passes it too.
func TestCallStoreDueSkipsLocked(t *testing.T) {
	pdb := pgtest.New(t)
	f := newFixture(t, pdb)
	store := postgres.NewCallStore(pdb, postgres.NewPartitions(pdb))
	ctx := t.Context()
	base := time.Now().Add(-time.Hour)
	var all []int64
	for i := range 4 {
		var conv int64
		require.NoError(t, postgres.Primary(pdb).QueryRow(ctx,
			`INSERT INTO conversations (name, conversation_type, created_by_id, created_at, updated_at) VALUES ('C', 1, $1, now(), now()) RETURNING id`,
			f.userID).Scan(&conv))
		at := base.Add(time.Duration(i) * time.Second)
		c, err := store.Create(ctx, calls.Call{ConversationID: conv, InitiatorID: f.userID, Status: calls.Ringing, CreatedAt: at, UpdatedAt: at}, nil)
		require.NoError(t, err)
		all = append(all, c.ID)
	}

	err := store.InTx(ctx, func(first calls.Store) error {
		held, err := first.Due(ctx, time.Now(), 2)
		require.NoError(t, err)
		require.Equal(t, all[:2], held)
		// The second sweeper runs while the first holds its calls; waiting
		// for them would end in this deadline.
		waitCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		return store.InTx(waitCtx, func(second calls.Store) error {
			got, err := second.Due(waitCtx, time.Now(), 10)
			require.NoError(t, err)
			assert.Equal(t, all[2:], got)
			return nil
		})
	})

	require.NoError(t, err)
}

func TestCallStoreMissingReferences(t *testing.T) {
	pdb := pgtest.New(t)
	f := newFixture(t, pdb)
	store := postgres.NewCallStore(pdb, postgres.NewPartitions(pdb))
	ctx := t.Context()
	const unknown = 1 << 62
	at := time.Now()

	_, err := store.Create(ctx, calls.Call{ConversationID: unknown, InitiatorID: f.userID, CreatedAt: at, UpdatedAt: at}, nil)
	assert.Equal(t, core.NotFound, core.KindOf(err), "call in an unknown conversation: %v", err)
	_, err = store.Create(ctx, calls.Call{ConversationID: f.conversationID, InitiatorID: f.userID, CreatedAt: at, UpdatedAt: at},
		[]calls.Participant{{UserID: unknown}})
	assert.Equal(t, core.NotFound, core.KindOf(err), "participant of an unknown user: %v", err)
	err = store.PutParticipant(ctx, calls.Participant{CallID: unknown, UserID: f.userID})
	assert.Equal(t, core.NotFound, core.KindOf(err), "participant of an unknown call: %v", err)
	_, err = store.AddLog(ctx, chat.Message{ConversationID: f.conversationID, UserID: f.userID, Type: chat.Call, CallSessionID: new(int64(unknown)), CreatedAt: at})
	assert.Equal(t, core.NotFound, core.KindOf(err), "log of an unknown call: %v", err)
	_, err = store.Ongoing(ctx, f.conversationID)
	assert.Equal(t, core.NotFound, core.KindOf(err), "nothing was left behind: %v", err)
}

package postgres_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/chatterly/chatterly/adapters/postgres"
	"github.com/chatterly/chatterly/adapters/postgres/pgtest"
	"github.com/chatterly/chatterly/core"
	"github.com/chatterly/chatterly/core/chat"
	"github.com/chatterly/chatterly/core/chat/chattest"
	"github.com/chatterly/chatterly/core/users"
)

// newChatFixture gives the contract a ChatStore on a database of its own.
// Subtests do not share one: creating a partition takes locks on messages
// and the tables it references, so parallel subtests that each add months
// would slow each other down or deadlock, which is not what they test.
func newChatFixture(t *testing.T) chattest.Fixture {
	t.Helper()
	pdb := pgtest.New(t)
	userStore := postgres.NewUserStore(pdb)
	return chattest.Fixture{
		Store: postgres.NewChatStore(pdb, postgres.NewPartitions(pdb)),
		NewUser: func(t *testing.T) int64 {
			t.Helper()
			name := "u" + rand.Text()[:16]
			u, err := userStore.Create(t.Context(), users.NewUser{
				Email: name + "@example.com", Username: name, PasswordHash: "x", CreatedAt: time.Now(),
			})
			require.NoError(t, err)
			return u.ID
		},
	}
}

func TestChatStore(t *testing.T) {
	chattest.RunStore(t, newChatFixture)
}

// TestChatStoreInTxNewMonth covers a transaction that needs a partition
// that does not exist yet. Partitions would create it on another
// connection, which would wait for the locks the transaction holds while
// the transaction waits for it; the store creates it in the transaction.
func TestChatStoreInTxNewMonth(t *testing.T) {
	tests := []struct {
		name     string
		fail     bool
		wantPart bool
	}{
		{"committed", false, true},
		{"rolled back", true, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			pdb := pgtest.New(t)
			f := newFixture(t, pdb)
			store := postgres.NewChatStore(pdb, postgres.NewPartitions(pdb))
			at := time.Date(2037, 3, 14, 15, 9, 26, 0, time.UTC)
			// A hang would be the bug; fail well before the test timeout.
			ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
			defer cancel()
			errRefused := fmt.Errorf("refused")

			err := store.InTx(ctx, func(tx chat.Store) error {
				// Rows in conversations and messages first, so the
				// transaction holds the locks that partition DDL needs.
				c, err := tx.CreateConversation(ctx, chat.Conversation{
					Name: new("Fresh"), Type: chat.Group, CreatedByID: f.userID, CreatedAt: at, UpdatedAt: at,
				}, []chat.Membership{{UserID: f.userID, Role: chat.RoleAdmin, CreatedAt: at}})
				if err != nil {
					return err
				}
				if _, err := tx.CreateMessage(ctx, chat.Message{ConversationID: f.conversationID, UserID: f.userID, Content: "x", CreatedAt: at.AddDate(0, 1, 0)}); err != nil {
					return err
				}
				// Two months, the second after the transaction wrote messages.
				if _, err := tx.CreateMessage(ctx, chat.Message{ConversationID: c.ID, UserID: f.userID, Content: "x", CreatedAt: at}); err != nil {
					return err
				}
				if tc.fail {
					return errRefused
				}
				return nil
			})

			if tc.fail {
				require.ErrorIs(t, err, errRefused)
			} else {
				require.NoError(t, err)
			}
			assert.Equal(t, tc.wantPart, partitionExists(t, pdb, "messages_y2037m03"))
			assert.Equal(t, tc.wantPart, partitionExists(t, pdb, "messages_y2037m04"))
			// Either way, a message of the month can be stored afterwards.
			_, err = store.CreateMessage(ctx, chat.Message{ConversationID: f.conversationID, UserID: f.userID, Content: "y", CreatedAt: at})
			require.NoError(t, err)
			err = store.InTx(ctx, func(tx chat.Store) error {
				_, err := tx.CreateMessage(ctx, chat.Message{ConversationID: f.conversationID, UserID: f.userID, Content: "z", CreatedAt: at.AddDate(0, 1, 0)})
				return err
			})
			require.NoError(t, err)
		})
	}
}

func TestChatStoreMissingReferences(t *testing.T) {
	pdb := pgtest.New(t)
	f := newFixture(t, pdb)
	store := postgres.NewChatStore(pdb, postgres.NewPartitions(pdb))
	ctx := t.Context()
	const unknown = 1 << 62

	_, err := store.CreateMessage(ctx, chat.Message{ConversationID: unknown, UserID: f.userID, Content: "x", CreatedAt: time.Now()})
	assert.Equal(t, core.NotFound, core.KindOf(err), "message in an unknown conversation: %v", err)
	err = store.AddMembership(ctx, chat.Membership{ConversationID: f.conversationID, UserID: unknown, CreatedAt: time.Now()})
	assert.Equal(t, core.NotFound, core.KindOf(err), "membership of an unknown user: %v", err)
	_, err = store.CreateConversation(ctx, chat.Conversation{Name: new("G"), Type: chat.Group, CreatedByID: unknown, CreatedAt: time.Now(), UpdatedAt: time.Now()}, nil)
	assert.Equal(t, core.NotFound, core.KindOf(err), "conversation by an unknown user: %v", err)
}

func TestChatStoreUnavailable(t *testing.T) {
	pdb := pgtest.New(t)
	store := postgres.NewChatStore(pdb, postgres.NewPartitions(pdb))
	pdb.Close()

	_, err := store.GetConversation(t.Context(), 1)
	assert.Equal(t, core.Unavailable, core.KindOf(err), "%v", err)
	err = store.InTx(t.Context(), func(chat.Store) error { return nil })
	assert.Equal(t, core.Unavailable, core.KindOf(err), "%v", err)
}

package postgres_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/chatterly/chatterly/adapters/memory"
	"github.com/chatterly/chatterly/adapters/postgres"
	"github.com/chatterly/chatterly/adapters/postgres/pgtest"
	"github.com/chatterly/chatterly/core/calls"
	"github.com/chatterly/chatterly/core/chat"
	"github.com/chatterly/chatterly/core/users"
)

// On PostgreSQL, 20 goroutines race accept, decline, end and the missed-call
// sweep on one call: exactly one terminal transition, exactly one log.
func TestCallServiceRaceOnPostgres(t *testing.T) {
	ctx := context.Background()
	db := pgtest.New(t)
	parts := postgres.NewPartitions(db)
	us, chats := postgres.NewUserStore(db), postgres.NewChatStore(db, parts)
	var clockMu sync.Mutex
	now := time.Now().UTC()
	clock := func() time.Time { clockMu.Lock(); defer clockMu.Unlock(); return now }
	pub := memory.NewBroker(func(string, []byte, chat.Eviction, chat.Position) {})
	t.Cleanup(pub.Close)
	callStore := postgres.NewCallStore(db, parts)
	chatSvc := chat.NewService(chat.Deps{Store: chats, Calls: callStore, Users: us, Presence: memory.NewPresence(), Publisher: pub, Now: clock})
	svc := calls.NewService(calls.Deps{
		Store: callStore, Members: chats, Users: us, Online: memory.NewPresence(),
		Publisher: pub, Messages: chatSvc, RingTimeout: 30 * time.Second, Now: clock,
	})
	user := func(name string) int64 {
		u, err := us.Create(ctx, users.NewUser{Email: name + "@x.io", Username: name, PasswordHash: "h", CreatedAt: now})
		require.NoError(t, err)
		return u.ID
	}
	a, b := user("alice"), user("bob")
	dm, _, err := chatSvc.CreateConversation(ctx, a, chat.ConversationInput{Type: "direct", MemberIDs: []int64{b}})
	require.NoError(t, err)

	for round := range 3 {
		v, err := svc.Initiate(ctx, a, dm.ID, "audio")
		require.NoError(t, err, "round %d", round)
		clockMu.Lock()
		now = now.Add(31 * time.Second) // due for the sweeper too
		clockMu.Unlock()
		var wg sync.WaitGroup
		for i := range 20 {
			wg.Go(func() {
				switch i % 4 {
				case 0:
					_, _ = svc.Accept(ctx, b, dm.ID, v.ID)
				case 1:
					_, _ = svc.Decline(ctx, b, dm.ID, v.ID)
				case 2:
					_ = svc.End(ctx, []int64{a, b}[i%8/4], dm.ID, v.ID)
				case 3:
					_ = svc.Sweep(ctx)
				}
			})
		}
		wg.Wait()
		require.NoError(t, svc.End(ctx, a, dm.ID, v.ID), "whatever it reached, end it")
		page, err := chatSvc.History(ctx, a, dm.ID, 0, 100, true)
		require.NoError(t, err)
		logs := 0
		for _, m := range page.Messages {
			if m.CallSession != nil && m.CallSession.ID == v.ID {
				logs++
			}
		}
		assert.Equal(t, 1, logs, "round %d: one log for call %d", round, v.ID)
	}
}

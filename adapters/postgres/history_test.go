package postgres_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/chatterly/chatterly/adapters/postgres"
	"github.com/chatterly/chatterly/adapters/postgres/pgtest"
	"github.com/chatterly/chatterly/core/chat"
)

// The newest page reads the recent months first and the older ones only
// when those fall short: pages must come out the same as one query over
// every partition would give, across that boundary.
func TestHistoryAcrossTheRecentBoundary(t *testing.T) {
	pdb := pgtest.New(t)
	ctx := t.Context()
	pool := postgres.Primary(pdb)
	f := newFixture(t, pdb)
	parts := postgres.NewPartitions(pdb)
	now := time.Now().UTC()
	insert := func(at time.Time, n int) {
		t.Helper()
		require.NoError(t, parts.EnsureFor(ctx, at))
		_, err := pool.Exec(ctx,
			`INSERT INTO messages (conversation_id, user_id, content, created_at, updated_at)
			 SELECT $1, $2, 'm', $3::timestamptz - make_interval(secs => i), now() FROM generate_series(1, $4::int) i`,
			f.conversationID, f.userID, at, n)
		require.NoError(t, err)
	}
	insert(now.Add(-time.Hour), 7)   // this month (or the last, early in a month)
	insert(now.AddDate(0, -3, 0), 6) // before the recent months
	insert(now.AddDate(0, -5, 0), 5) // further back
	store := postgres.NewChatStore(pdb, parts)

	for _, limit := range []int{1, 4, 7, 8, 12, 18, 50} {
		var all []chat.Message
		var before *chat.Cursor
		for range 30 {
			page, err := store.History(ctx, f.conversationID, before, limit)
			require.NoError(t, err)
			all = append(all, page...)
			if len(page) < limit {
				break
			}
			last := page[len(page)-1]
			before = &chat.Cursor{CreatedAt: last.CreatedAt, ID: last.ID}
		}
		require.Len(t, all, 18, "limit %d: every message once", limit)
		for i := 1; i < len(all); i++ {
			assert.True(t, all[i].CreatedAt.Before(all[i-1].CreatedAt), "limit %d: newest first, no repeats (at %d)", limit, i)
		}
	}
}

// Catch-up pages cross partitions forward the way history pages cross
// them backward: every message once, oldest first, whatever the limit.
func TestHistoryAfterAcrossPartitions(t *testing.T) {
	pdb := pgtest.New(t)
	ctx := t.Context()
	pool := postgres.Primary(pdb)
	f := newFixture(t, pdb)
	parts := postgres.NewPartitions(pdb)
	now := time.Now().UTC()
	for _, m := range []struct {
		at time.Time
		n  int
	}{{now.AddDate(0, -5, 0), 5}, {now.AddDate(0, -3, 0), 6}, {now.Add(-time.Hour), 7}} {
		require.NoError(t, parts.EnsureFor(ctx, m.at))
		_, err := pool.Exec(ctx,
			`INSERT INTO messages (conversation_id, user_id, content, created_at, updated_at)
			 SELECT $1, $2, 'm', $3::timestamptz + make_interval(secs => i), now() FROM generate_series(1, $4::int) i`,
			f.conversationID, f.userID, m.at, m.n)
		require.NoError(t, err)
	}
	store := postgres.NewChatStore(pdb, parts)

	for _, limit := range []int{1, 4, 5, 6, 11, 18, 50} {
		var all []chat.Message
		after := chat.Cursor{CreatedAt: now.AddDate(-1, 0, 0)}
		for range 30 {
			page, err := store.HistoryAfter(ctx, f.conversationID, after, limit)
			require.NoError(t, err)
			all = append(all, page...)
			if len(page) < limit {
				break
			}
			last := page[len(page)-1]
			after = chat.Cursor{CreatedAt: last.CreatedAt, ID: last.ID}
		}
		require.Len(t, all, 18, "limit %d: every message once", limit)
		for i := 1; i < len(all); i++ {
			assert.True(t, all[i].CreatedAt.After(all[i-1].CreatedAt), "limit %d: oldest first, no repeats (at %d)", limit, i)
		}
	}
}

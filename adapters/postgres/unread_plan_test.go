package postgres_test

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/chatterly/chatterly/adapters/postgres"
	"github.com/chatterly/chatterly/adapters/postgres/pgtest"
	"github.com/chatterly/chatterly/core/chat"
)

// TestListConversationsPlan proves that the conversation list, unread
// counts included, is one statement whose count per conversation reads a
// bounded range of index_messages_history: never a sequential scan of a
// messages partition, never a partition older than the reader's marker
// (pruned each time the count runs), and no partition after the one where
// the count reaches the cap, however many messages the conversations hold.
//
// The reader is in twenty conversations over two years of monthly
// partitions, two hundred messages a month in each (and a noisy
// conversation with far more besides). Ten are read but for their last
// thirty messages, all in the last partition; the other ten were never
// marked since the reader joined at the start, so the count runs from the
// oldest partition and stops at the cap within it. No count opens the
// twenty-two partitions in between.
//
// The run logs the plan. Its shape on PostgreSQL 15 (custom plan; the
// generic one differs only in the join of the two small tables):
//
//	Sort (actual rows=20 loops=1)
//	  ->  Nested Loop (actual rows=20 loops=1)
//	        ->  Hash Join (conversation_members of the reader, conversations)
//	        ->  Memoize (loops=20)
//	              ->  Aggregate (actual rows=1 loops=20)
//	                    ->  Limit (actual rows=65 loops=20)
//	                          ->  Append (actual rows=65 loops=20)
//	                                ->  Bitmap Heap Scan on messages_y2040m01 msg_1 (actual rows=100 loops=10)
//	                                      ->  Bitmap Index Scan on messages_y2040m01_conversation_id_created_at_id_idx (actual rows=200 loops=10)
//	                                ->  Bitmap Heap Scan on messages_y2040m02 msg_2 (never executed)
//	                                ... (never executed, to messages_y2041m11)
//	                                ->  Bitmap Heap Scan on messages_y2041m12 msg_24 (actual rows=30 loops=10)
//
// The marked counts' loops prune the older partitions (loops=10 where 20
// ran); the unmarked ones stop at the cap in their first partition.
func TestListConversationsPlan(t *testing.T) {
	pdb := pgtest.New(t)
	ctx := t.Context()
	pool := postgres.Primary(pdb)
	f := newFixture(t, pdb)
	sender := f.userID
	var reader int64
	require.NoError(t, pool.QueryRow(ctx,
		`INSERT INTO users (email, username, created_at, updated_at) VALUES ('reader@example.com', 'reader', now(), now()) RETURNING id`).Scan(&reader))

	first := time.Date(2040, 1, 1, 0, 0, 0, 0, time.UTC)
	parts := postgres.NewPartitions(pdb)
	var months []time.Time
	for i := range 24 {
		month := first.AddDate(0, i, 0)
		require.NoError(t, parts.EnsureFor(ctx, month))
		months = append(months, month)
	}
	const conversations, perMonth, unreadMarked = 20, 200, 30
	for i := range conversations {
		var conv int64
		require.NoError(t, pool.QueryRow(ctx,
			`INSERT INTO conversations (name, conversation_type, created_by_id, created_at, updated_at) VALUES ('c', 1, $1, $2, $2) RETURNING id`,
			sender, first).Scan(&conv))
		_, err := pool.Exec(ctx,
			`INSERT INTO conversation_members (conversation_id, user_id, role, created_at, updated_at) VALUES ($1, $2, 0, $3, $3), ($1, $4, 1, $3, $3)`,
			conv, reader, first, sender)
		require.NoError(t, err)
		_, err = pool.Exec(ctx,
			`INSERT INTO messages (conversation_id, user_id, content, created_at, updated_at)
			 SELECT $1, $2, 'hello', m + make_interval(mins => i * 7), now()
			 FROM generate_series($3::timestamptz, $3::timestamptz + interval '23 months', interval '1 month') m,
			      generate_series(1, $4::int) i`,
			conv, sender, first, perMonth)
		require.NoError(t, err)
		if i%2 == 0 {
			// Read all but the last unreadMarked messages.
			_, err = pool.Exec(ctx,
				`UPDATE conversation_members cm SET last_read_message_id = last.id, last_read_message_created_at = last.created_at
				 FROM (SELECT id, created_at FROM messages WHERE conversation_id = $1
				       ORDER BY created_at DESC, id DESC OFFSET $3 LIMIT 1) last
				 WHERE cm.conversation_id = $1 AND cm.user_id = $2`,
				conv, reader, unreadMarked)
			require.NoError(t, err)
		}
	}
	_, err := pool.Exec(ctx,
		`INSERT INTO messages (conversation_id, user_id, content, created_at, updated_at)
		 SELECT $1, $2, 'noise', m + make_interval(secs => i * 60), now()
		 FROM generate_series($3::timestamptz, $3::timestamptz + interval '23 months', interval '1 month') m,
		      generate_series(1, 2000) i`,
		f.conversationID, sender, first)
	require.NoError(t, err)
	_, err = pool.Exec(ctx, `ANALYZE messages; ANALYZE conversation_members; ANALYZE conversations`)
	require.NoError(t, err)
	historyIndexes := historyIndexPartitions(t, pool)

	sql := generatedSQL(t, "chat.sql.go", "listConversations")
	for _, generic := range []bool{false, true} {
		name := "custom plan"
		if generic {
			name = "generic plan"
		}
		t.Run(name, func(t *testing.T) {
			top := explainPrepared(t, pool, sql, []any{chat.UnreadCap, reader} /* $1 is the limit, in the order sqlc numbers them */, generic)

			assert.EqualValues(t, conversations, top.ActualRows, "one row per conversation")
			loops := map[string]float64{}
			entriesRead := 0.0
			top.walk(func(n planNode) {
				// Seq scans of the two small tables here are the planner's
				// choice for a few rows; messages is what must be bounded.
				onMessages := strings.HasPrefix(n.RelationName, "messages_") || strings.HasPrefix(n.IndexName, "messages_")
				if !onMessages {
					return
				}
				switch n.NodeType {
				case "Index Scan", "Index Only Scan", "Bitmap Index Scan":
					assert.Contains(t, historyIndexes, n.IndexName, "on %s", n.RelationName)
					entriesRead += n.ActualRows * n.ActualLoops
				case "Bitmap Heap Scan":
					// Reads what its Bitmap Index Scan found, no more.
				default:
					assert.Fail(t, "a scan that is not of index_messages_history", "%s on %s", n.NodeType, n.RelationName)
				}
				if n.RelationName != "" {
					loops[n.RelationName] += n.ActualLoops
				}
			})
			require.NotEmpty(t, loops, "the count reads messages")
			for i, month := range months {
				p := month.Format("messages_y2006m01")
				// The unmarked counts reach the cap in the first month; the
				// marked counts' unread messages are in the last.
				switch i {
				case 0, len(months) - 1:
					assert.Positive(t, loops[p], "%s was not read", p)
				default:
					assert.Zero(t, loops[p], "%s holds nothing a count needs but was read", p)
				}
			}
			// A count reads index entries of its own conversation only, from
			// its marker on, and at most one partition's worth beyond the
			// cap: an index scan stops at the cap itself, a bitmap scan
			// (which the planner picks when a partition holds few enough of
			// the conversation's messages) at the end of that partition.
			bound := float64(conversations/2*max(chat.UnreadCap, perMonth) + conversations/2*unreadMarked)
			assert.LessOrEqual(t, entriesRead, bound, "index entries read")
		})
	}

	t.Run("the counts", func(t *testing.T) {
		listed, err := postgres.NewChatStore(pdb, parts).ListConversations(ctx, reader, chat.UnreadCap)
		require.NoError(t, err)
		require.Len(t, listed, conversations)
		capped := 0
		for _, c := range listed {
			if c.LastRead == nil {
				assert.Equal(t, chat.UnreadCap, c.Unread)
				capped++
			} else {
				assert.Equal(t, unreadMarked, c.Unread)
			}
		}
		assert.Equal(t, conversations/2, capped)
	})
}

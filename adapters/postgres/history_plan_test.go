package postgres_test

import (
	"encoding/json"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/chatterly/chatterly/adapters/postgres"
	"github.com/chatterly/chatterly/adapters/postgres/pgtest"
)

// generatedSQL returns the text of a query constant in gen/db, which is
// what the store sends, so that the plans below are of that very text.
func generatedSQL(t *testing.T, file, name string) string {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), "../../gen/db/"+file, nil, 0)
	require.NoError(t, err)
	for _, decl := range f.Decls {
		gen, ok := decl.(*ast.GenDecl)
		if !ok || gen.Tok != token.CONST {
			continue
		}
		for _, spec := range gen.Specs {
			vs := spec.(*ast.ValueSpec)
			if len(vs.Names) == 1 && vs.Names[0].Name == name {
				sql, err := strconv.Unquote(vs.Values[0].(*ast.BasicLit).Value)
				require.NoError(t, err)
				return sql
			}
		}
	}
	require.FailNow(t, "no such query", "%s in %s", name, file)
	return ""
}

// planNode is the part of an EXPLAIN (FORMAT JSON) node that the checks read.
type planNode struct {
	NodeType        string     `json:"Node Type"`
	RelationName    string     `json:"Relation Name"`
	IndexName       string     `json:"Index Name"`
	ActualRows      float64    `json:"Actual Rows"`
	ActualLoops     float64    `json:"Actual Loops"`
	SubplansRemoved int        `json:"Subplans Removed"`
	Plans           []planNode `json:"Plans"`
}

func (n planNode) walk(visit func(planNode)) {
	visit(n)
	for _, c := range n.Plans {
		c.walk(visit)
	}
}

// TestHistoryPlan proves that History reads only what a page needs from
// two years of monthly partitions: partitions newer than the cursor are
// pruned, each partition is read through index_messages_history in order,
// and the Limit stops the ordered Append before the older partitions are
// opened ("never executed"). It checks both the plan that a parameterized
// statement gets on its first executions (pruned at planning) and the
// generic plan that a cached prepared statement may switch to (pruned at
// executor start, "Subplans Removed"). The cursor query's separate
// "created_at <= cursor" bound is what prunes: partition pruning does not
// understand the row comparison, which alone opens every newer partition.
// A catch-up page (HistoryAfter) is the same the other way: partitions
// older than the cursor are pruned, the newer ones are read oldest first
// (the same index, backwards) and those past the page are never executed.
// It also checks that GetMessage, which has only an id, probes the
// partitions' primary keys newest first and stops at the one holding it.
//
// A plan captured on PostgreSQL 15 for the cursor page (custom plan):
//
//	Limit (actual rows=50 loops=1)
//	  ->  Append (actual rows=50 loops=1)
//	        ->  Index Scan using messages_y2041m01_conversation_id_created_at_id_idx on messages_y2041m01 messages_13 (actual rows=30 loops=1)
//	              Index Cond: ((conversation_id = '1'::bigint) AND (ROW(created_at, id) < ROW('2041-01-10 00:00:00+00'::timestamp with time zone, '9223372036854775807'::bigint)) AND (created_at <= '2041-01-10 00:00:00+00'::timestamp with time zone))
//	        ->  Index Scan using messages_y2040m12_conversation_id_created_at_id_idx on messages_y2040m12 messages_12 (actual rows=0 loops=1)
//	              Index Cond: (...)
//	        ->  Index Scan using messages_y2040m11_conversation_id_created_at_id_idx on messages_y2040m11 messages_11 (actual rows=0 loops=1)
//	              Index Cond: (...)
//	        ->  Index Scan using messages_y2040m10_conversation_id_created_at_id_idx on messages_y2040m10 messages_10 (actual rows=20 loops=1)
//	              Index Cond: (...)
//	        ->  Index Scan using messages_y2040m09_conversation_id_created_at_id_idx on messages_y2040m09 messages_9 (never executed)
//	              Index Cond: (...)
//	        ... (the same, never executed, down to messages_y2040m01)
//
// The run logs the full plans.
func TestHistoryPlan(t *testing.T) {
	pdb := pgtest.New(t)
	ctx := t.Context()
	pool := postgres.Primary(pdb)
	f := newFixture(t, pdb)
	var noise int64
	require.NoError(t, pool.QueryRow(ctx,
		`INSERT INTO conversations (name, conversation_type, created_by_id, created_at, updated_at) VALUES ('Noise', 1, $1, now(), now()) RETURNING id`,
		f.userID).Scan(&noise))

	// Two years of partitions. The conversation under test has thirty
	// messages in every third month; the other one stands for the rest of
	// the conversations, with far more in every month, which is what makes
	// an index worth using at all.
	first := time.Date(2040, 1, 1, 0, 0, 0, 0, time.UTC)
	parts := postgres.NewPartitions(pdb)
	var months []time.Time
	insert := func(conv int64, month time.Time, n int) {
		t.Helper()
		_, err := pool.Exec(ctx,
			`INSERT INTO messages (conversation_id, user_id, content, created_at, updated_at)
			 SELECT $1, $2, 'hello', $3::timestamptz + make_interval(mins => i * 7), now() FROM generate_series(1, $4::int) i`,
			conv, f.userID, month, n)
		require.NoError(t, err)
	}
	for i := range 24 {
		month := first.AddDate(0, i, 0)
		require.NoError(t, parts.EnsureFor(ctx, month))
		months = append(months, month)
		insert(noise, month, 2000)
		if i%3 == 0 {
			insert(f.conversationID, month, 30)
		}
	}
	// Statistics as autovacuum would have gathered them.
	_, err := pool.Exec(ctx, `ANALYZE messages`)
	require.NoError(t, err)
	historyIndexes := historyIndexPartitions(t, pool)

	partition := func(month time.Time) string { return month.Format("messages_y2006m01") }
	// The cursor is in 2041-01, after that month's 30 messages, so the page
	// of 50 takes those and 20 of 2040-10, looking into 2040-12 and 2040-11
	// on the way; the first page takes 30 of 2041-10 and 20 of 2041-07.
	cursorMonth := time.Date(2041, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		sql  string
		args []any
		// The month the page starts in, which a cursor prunes beyond, and
		// the last month it needs: the newest and the oldest, or, oldest
		// first, the oldest and the newest.
		from, to time.Time
		// since, when set, is the lower bound that prunes older months.
		since time.Time
		// oldestFirst is the order of catch-up pages (HistoryAfter).
		oldestFirst bool
	}{
		{
			// ChatStore asks for the last months first (the previous one,
			// the current one and those ahead); here the page is found in
			// the months since 2041-07.
			name: "first page",
			sql:  generatedSQL(t, "messages.sql.go", "historySince"),
			args: []any{f.conversationID, time.Date(2041, 7, 1, 0, 0, 0, 0, time.UTC), 50},
			from: months[23], to: time.Date(2041, 7, 1, 0, 0, 0, 0, time.UTC),
			since: time.Date(2041, 7, 1, 0, 0, 0, 0, time.UTC),
		},
		{
			name: "page before a cursor",
			sql:  generatedSQL(t, "messages.sql.go", "historyBefore"),
			args: []any{f.conversationID, time.Date(2041, 1, 10, 0, 0, 0, 0, time.UTC), int64(1<<63 - 1), 50},
			from: cursorMonth, to: time.Date(2040, 10, 1, 0, 0, 0, 0, time.UTC),
		},
		{
			// After the 15th message of 2040-04: its last 15, none in the
			// two empty months, 30 of 2040-07 and 5 of 2040-10. The months
			// before the cursor are pruned, those after 2040-10 never read.
			name:        "page after a cursor",
			sql:         generatedSQL(t, "messages.sql.go", "historyAfter"),
			args:        []any{f.conversationID, time.Date(2040, 4, 1, 1, 45, 0, 0, time.UTC), int64(1<<63 - 1), 50},
			from:        time.Date(2040, 4, 1, 0, 0, 0, 0, time.UTC),
			to:          time.Date(2040, 10, 1, 0, 0, 0, 0, time.UTC),
			oldestFirst: true,
		},
	}
	for _, tc := range tests {
		for _, generic := range []bool{false, true} {
			name := tc.name + ", custom plan"
			if generic {
				name = tc.name + ", generic plan"
			}
			t.Run(name, func(t *testing.T) {
				top := explainPrepared(t, pool, tc.sql, tc.args, generic)

				require.Equal(t, "Limit", top.NodeType)
				assert.EqualValues(t, 50, top.ActualRows)
				require.Len(t, top.Plans, 1)
				appendNode := top.Plans[0]
				// With a lower bound, few enough rows may qualify that the
				// planner reads them all and sorts: the bound, checked by the
				// pruning below, is what keeps that small.
				sorted := appendNode.NodeType == "Sort" && !tc.since.IsZero()
				if sorted {
					require.Len(t, appendNode.Plans, 1)
					appendNode = appendNode.Plans[0]
				}
				require.Equal(t, "Append", appendNode.NodeType, "an ordered Append, not a Merge Append or a Sort")
				top.walk(func(n planNode) {
					if !sorted {
						assert.NotEqual(t, "Sort", n.NodeType)
						assert.NotEqual(t, "Bitmap Heap Scan", n.NodeType, "on %s", n.RelationName)
					}
					assert.NotEqual(t, "Seq Scan", n.NodeType, "on %s", n.RelationName)
				})
				scanned := map[string]planNode{}
				var order []string
				for _, n := range appendNode.Plans {
					if !sorted {
						assert.Equal(t, "Index Scan", n.NodeType, "on %s", n.RelationName)
						assert.Contains(t, historyIndexes, n.IndexName, "on %s", n.RelationName)
					}
					scanned[n.RelationName] = n
					order = append(order, n.RelationName)
				}
				if !sorted {
					newestFirst := func(a, b string) int { return strings.Compare(b, a) }
					if tc.oldestFirst {
						assert.True(t, slices.IsSorted(order), "partitions oldest first: %v", order)
					} else {
						assert.True(t, slices.IsSortedFunc(order, newestFirst), "partitions newest first: %v", order)
					}
				}
				// beyond and past are the months on either side of the page,
				// in its order: before it starts and after it ends.
				beyond, past := time.Time.After, time.Time.Before
				if tc.oldestFirst {
					beyond, past = past, beyond
				}
				removed := 0
				for _, month := range months {
					name := partition(month)
					n, present := scanned[name]
					switch {
					case beyond(month, tc.from):
						assert.False(t, present, "%s is beyond the cursor but was not pruned", name)
						removed++
					case month.Before(tc.since):
						assert.False(t, present, "%s is older than since but was not pruned", name)
						removed++
					case past(month, tc.to):
						require.True(t, present, "%s is missing from the plan", name)
						assert.Zero(t, n.ActualLoops, "%s is past what the page needs but was read", name)
					default:
						require.True(t, present, "%s is missing from the plan", name)
						assert.EqualValues(t, 1, n.ActualLoops, "%s was not read", name)
					}
				}
				if generic && removed > 0 {
					assert.Equal(t, removed, appendNode.SubplansRemoved, "runtime pruning at executor start")
				}
			})
		}
	}

	t.Run("GetMessage probes each partition's primary key", func(t *testing.T) {
		var id int64
		require.NoError(t, pool.QueryRow(ctx,
			`SELECT id FROM messages WHERE conversation_id = $1 AND created_at >= $2 ORDER BY created_at LIMIT 1`,
			f.conversationID, cursorMonth).Scan(&id))

		top := explainPrepared(t, pool, generatedSQL(t, "messages.sql.go", "getMessage"), []any{id, 0}, false)

		assert.EqualValues(t, 1, top.ActualRows)
		require.Len(t, top.Plans, 1)
		require.Equal(t, "Append", top.Plans[0].NodeType)
		var order []string
		for _, n := range top.Plans[0].Plans {
			assert.Equal(t, "Index Scan", n.NodeType, "on %s", n.RelationName)
			assert.Equal(t, n.RelationName+"_pkey", n.IndexName)
			order = append(order, n.RelationName)
			// Newest first: the ones after the message's month are not read.
			if n.RelationName < partition(cursorMonth) {
				assert.Zero(t, n.ActualLoops, "%s was read after the message was found", n.RelationName)
			}
		}
		assert.Len(t, order, len(months))
		assert.True(t, slices.IsSortedFunc(order, func(a, b string) int { return strings.Compare(b, a) }),
			"partitions newest first: %v", order)
	})
}

// explainPrepared prepares sql as pgx's statement cache does and returns
// the plan of its execution with args, logging it as text. PostgreSQL
// plans the first executions of a prepared statement with the values
// (custom plans) and may then switch to a generic plan; generic forces the
// latter.
func explainPrepared(t *testing.T, pool *pgxpool.Pool, sql string, args []any, generic bool) planNode {
	t.Helper()
	ctx := t.Context()
	conn, err := pool.Acquire(ctx)
	require.NoError(t, err)
	defer conn.Release()
	mode := "force_custom_plan"
	if generic {
		mode = "force_generic_plan"
	}
	_, err = conn.Exec(ctx, "SET plan_cache_mode = "+mode)
	require.NoError(t, err)
	defer func() { _, _ = conn.Exec(ctx, "RESET plan_cache_mode") }()
	_, err = conn.Exec(ctx, "PREPARE explained AS "+sql)
	require.NoError(t, err)
	defer func() { _, _ = conn.Exec(ctx, "DEALLOCATE explained") }()
	literals := make([]string, len(args))
	for i, arg := range args {
		switch v := arg.(type) {
		case time.Time:
			literals[i] = "'" + v.Format(time.RFC3339Nano) + "'"
		default:
			literals[i] = fmt.Sprint(v)
		}
	}
	explain := func(format string) string {
		t.Helper()
		rows, err := conn.Query(ctx, "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF, FORMAT "+format+") "+
			"EXECUTE explained("+strings.Join(literals, ", ")+")")
		require.NoError(t, err)
		var out strings.Builder
		for rows.Next() {
			var line string
			require.NoError(t, rows.Scan(&line))
			out.WriteString(line + "\n")
		}
		require.NoError(t, rows.Err())
		return out.String()
	}
	t.Logf("EXPLAIN ANALYZE (plan_cache_mode = %s):\n%s", mode, explain("TEXT"))
	var plans []struct {
		Plan planNode `json:"Plan"`
	}
	require.NoError(t, json.Unmarshal([]byte(explain("JSON")), &plans))
	require.Len(t, plans, 1)
	return plans[0].Plan
}

// historyIndexPartitions returns the names of the partitions' indexes that
// are part of index_messages_history.
func historyIndexPartitions(t *testing.T, pool *pgxpool.Pool) []string {
	t.Helper()
	rows, err := pool.Query(t.Context(),
		`SELECT relid::regclass::text FROM pg_partition_tree('index_messages_history') WHERE isleaf`)
	require.NoError(t, err)
	var names []string
	for rows.Next() {
		var name string
		require.NoError(t, rows.Scan(&name))
		names = append(names, name)
	}
	require.NoError(t, rows.Err())
	require.NotEmpty(t, names, "index_messages_history has no partitions")
	return names
}

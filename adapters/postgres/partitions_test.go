package postgres_test

import (
	"bytes"
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/chatterly/chatterly/adapters/postgres"
	"github.com/chatterly/chatterly/adapters/postgres/pgtest"
	"github.com/chatterly/chatterly/gen/db"
)

// insertMessage inserts a message at the time at through the generated
// query, as the chat store does, and returns the partition it landed in.
func insertMessage(t *testing.T, pdb *postgres.DB, f fixture, at time.Time) (string, error) {
	t.Helper()
	ctx := context.Background()
	m, err := db.New(postgres.Primary(pdb)).CreateMessage(ctx, db.CreateMessageParams{
		ConversationID: f.conversationID,
		UserID:         f.userID,
		Content:        "hello",
		CreatedAt:      at,
	})
	if err != nil {
		return "", err
	}
	var partition string
	require.NoError(t, postgres.Primary(pdb).QueryRow(ctx,
		`SELECT tableoid::regclass::text FROM messages WHERE id = $1 AND created_at = $2`, m.ID, m.CreatedAt).Scan(&partition))
	return partition, nil
}

func partitionExists(t *testing.T, pdb *postgres.DB, name string) bool {
	t.Helper()
	var exists bool
	require.NoError(t, postgres.Primary(pdb).QueryRow(context.Background(),
		`SELECT to_regclass($1) IS NOT NULL`, name).Scan(&exists))
	return exists
}

func TestInsertWithoutPartitionFails(t *testing.T) {
	// This is why every insert ensures its partition first.
	pdb := pgtest.New(t)
	f := newFixture(t, pdb)

	_, err := insertMessage(t, pdb, f, time.Now())

	require.Error(t, err)
	assert.Equal(t, "23514", sqlState(err))
	assert.Contains(t, err.Error(), `no partition of relation "messages" found for row`)
}

func TestEnsureForFutureMonth(t *testing.T) {
	pdb := pgtest.New(t)
	f := newFixture(t, pdb)
	parts := postgres.NewPartitions(pdb)
	future := time.Now().UTC().AddDate(0, 14, 0)

	require.NoError(t, parts.EnsureFor(context.Background(), future))
	partition, err := insertMessage(t, pdb, f, future)

	require.NoError(t, err)
	assert.Equal(t, future.Format("messages_y2006m01"), partition)
}

func TestEnsureAheadAcrossTheYear(t *testing.T) {
	pdb := pgtest.New(t)
	f := newFixture(t, pdb)
	parts := postgres.NewPartitions(pdb)
	now := time.Date(2030, 12, 20, 15, 0, 0, 0, time.UTC)

	require.NoError(t, parts.EnsureAhead(context.Background(), now, 1))

	assert.True(t, partitionExists(t, pdb, "messages_y2030m12"))
	assert.True(t, partitionExists(t, pdb, "messages_y2031m01"))
	assert.False(t, partitionExists(t, pdb, "messages_y2031m02"))
	partition, err := insertMessage(t, pdb, f, time.Date(2031, 1, 10, 0, 0, 0, 0, time.UTC))
	require.NoError(t, err)
	assert.Equal(t, "messages_y2031m01", partition)
	_, err = insertMessage(t, pdb, f, time.Date(2031, 2, 1, 0, 0, 0, 0, time.UTC))
	assert.Equal(t, "23514", sqlState(err), "February was not ensured")
}

func TestPartitionBounds(t *testing.T) {
	pdb := pgtest.New(t)
	f := newFixture(t, pdb)
	parts := postgres.NewPartitions(pdb)
	tests := []struct {
		name string
		at   time.Time
		want string
	}{
		{"first instant of a month", time.Date(2031, 4, 1, 0, 0, 0, 0, time.UTC), "messages_y2031m04"},
		{"last millisecond of a month", time.Date(2031, 3, 31, 23, 59, 59, 999_000_000, time.UTC), "messages_y2031m03"},
		{"last microsecond of a month", time.Date(2031, 3, 31, 23, 59, 59, 999_999_000, time.UTC), "messages_y2031m03"},
		{"first instant of a year", time.Date(2032, 1, 1, 0, 0, 0, 0, time.UTC), "messages_y2032m01"},
		{"last day of a year", time.Date(2031, 12, 31, 23, 59, 59, 999_000_000, time.UTC), "messages_y2031m12"},
		{"leap day", time.Date(2032, 2, 29, 12, 0, 0, 0, time.UTC), "messages_y2032m02"},
		{"months are UTC months", time.Date(2031, 6, 1, 1, 30, 0, 0, time.FixedZone("UTC+2", 2*3600)), "messages_y2031m05"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			require.NoError(t, parts.EnsureFor(context.Background(), tc.at))

			partition, err := insertMessage(t, pdb, f, tc.at)

			require.NoError(t, err)
			assert.Equal(t, tc.want, partition)
		})
	}
}

func TestEnsureForConcurrently(t *testing.T) {
	// Ten instances creating the same new month at once.
	pdb := pgtest.New(t)
	month := time.Date(2033, 7, 1, 0, 0, 0, 0, time.UTC)
	const n = 10

	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			errs[i] = postgres.NewPartitions(pdb).EnsureFor(context.Background(), month.Add(time.Duration(i)*time.Hour))
		})
	}
	wg.Wait()

	for i, err := range errs {
		assert.NoError(t, err, "caller %d", i)
	}
	assert.True(t, partitionExists(t, pdb, "messages_y2033m07"))
}

func TestEnsureForRemembersMonths(t *testing.T) {
	pdb := pgtest.New(t)
	parts := postgres.NewPartitions(pdb)
	at := time.Date(2034, 2, 3, 0, 0, 0, 0, time.UTC)
	require.NoError(t, parts.EnsureFor(context.Background(), at))
	canceled, cancel := context.WithCancel(context.Background())
	cancel()

	// A known month needs no database round trip, so even a dead context works.
	assert.NoError(t, parts.EnsureFor(canceled, at.AddDate(0, 0, 20)))
	assert.Error(t, parts.EnsureFor(canceled, at.AddDate(0, 1, 0)), "an unknown month needs the database")
}

// clock is a settable time for Maintain.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}

// syncBuffer is a log destination that Maintain's goroutine and the test
// can use at once.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func TestMaintain(t *testing.T) {
	pdb := pgtest.New(t)
	clk := &clock{now: time.Date(2035, 11, 5, 0, 0, 0, 0, time.UTC)}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		postgres.NewPartitions(pdb).Maintain(ctx, clk.Now, 5*time.Millisecond, slog.New(slog.DiscardHandler))
	}()

	for _, name := range []string{"messages_y2035m11", "messages_y2035m12", "messages_y2036m01", "messages_y2036m02"} {
		require.Eventually(t, func() bool { return partitionExists(t, pdb, name) }, 5*time.Second, 5*time.Millisecond, name)
	}
	assert.False(t, partitionExists(t, pdb, "messages_y2036m03"), "three months ahead, no more")

	clk.Set(time.Date(2035, 12, 1, 0, 0, 0, 0, time.UTC))
	require.Eventually(t, func() bool { return partitionExists(t, pdb, "messages_y2036m03") }, 5*time.Second, 5*time.Millisecond,
		"a new month brings a new month ahead")

	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Maintain did not return when its context ended")
	}
}

func TestMaintainLogsFailures(t *testing.T) {
	pdb := pgtest.New(t)
	pdb.Close() // every attempt fails from here on
	var logs syncBuffer
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go postgres.NewPartitions(pdb).Maintain(ctx, time.Now, time.Hour, slog.New(slog.NewJSONHandler(&logs, nil)))

	require.Eventually(t, func() bool {
		return bytes.Contains([]byte(logs.String()), []byte("cannot create message partitions"))
	}, 5*time.Second, 5*time.Millisecond)
}

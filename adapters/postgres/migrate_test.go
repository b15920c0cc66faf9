package postgres_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/chatterly/chatterly/adapters/postgres"
	"github.com/chatterly/chatterly/adapters/postgres/pgtest"
	"github.com/chatterly/chatterly/sql/migrations"
)

var tables = []string{
	"users", "conversations", "conversation_members", "messages",
	"reactions", "call_sessions", "call_participants",
}

func open(t *testing.T, url string) *postgres.DB {
	t.Helper()
	db, err := postgres.Open(context.Background(), url, "")
	require.NoError(t, err)
	t.Cleanup(db.Close)
	return db
}

func TestMigrateConcurrently(t *testing.T) {
	// Two instances starting together against a fresh database.
	url := pgtest.NewURL(t)
	instances := []*postgres.DB{open(t, url), open(t, url)}
	ctx := context.Background()

	var wg sync.WaitGroup
	errs := make([]error, len(instances))
	for i, db := range instances {
		wg.Go(func() { errs[i] = db.Migrate(ctx) })
	}
	wg.Wait()

	for i, err := range errs {
		require.NoError(t, err, "instance %d", i)
	}
	var applied int
	require.NoError(t, postgres.Primary(instances[0]).QueryRow(ctx,
		`SELECT count(*) FROM goose_db_version WHERE version_id = 1`).Scan(&applied))
	assert.Equal(t, 1, applied, "the migration ran once")
	for _, table := range tables {
		var exists bool
		require.NoError(t, postgres.Primary(instances[0]).QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, table).Scan(&exists))
		assert.True(t, exists, "table %s", table)
	}
}

func TestMigrationStatus(t *testing.T) {
	db := open(t, pgtest.NewURL(t))
	ctx := context.Background()

	ok, err := db.MigrationsApplied(ctx)
	require.NoError(t, err)
	assert.False(t, ok, "a fresh database is not migrated")
	var out strings.Builder
	require.NoError(t, db.MigrationStatus(ctx, &out))
	assert.Regexp(t, `(?m)^1\s+pending\s+-\s+00001_init\.sql$`, out.String())
	assert.Regexp(t, `(?m)^2\s+pending\s+-\s+00002_post_message_function\.sql$`, out.String())

	require.NoError(t, db.Migrate(ctx))
	require.NoError(t, db.Migrate(ctx), "migrating a migrated database is a no-op")

	ok, err = db.MigrationsApplied(ctx)
	require.NoError(t, err)
	assert.True(t, ok)
	out.Reset()
	require.NoError(t, db.MigrationStatus(ctx, &out))
	assert.Regexp(t, `(?m)^VERSION\s+STATE\s+APPLIED AT\s+FILE$`, out.String())
	assert.Regexp(t, `(?m)^1\s+applied\s+\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\s+00001_init\.sql$`, out.String())
	assert.Regexp(t, `(?m)^2\s+applied\s+\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\s+00002_post_message_function\.sql$`, out.String())
}

func TestMigrationsAppliedUnreachable(t *testing.T) {
	db := open(t, "postgres://postgres@127.0.0.1:1/none?connect_timeout=2")

	_, err := db.MigrationsApplied(context.Background())

	assert.Error(t, err)
}

func TestMigrateDownAndUpAgain(t *testing.T) {
	db := pgtest.New(t)
	ctx := context.Background()
	sqlDB := stdlib.OpenDBFromPool(postgres.Primary(db))
	defer sqlDB.Close()
	p, err := goose.NewProvider(goose.DialectPostgres, sqlDB, migrations.FS, goose.WithDisableGlobalRegistry(true))
	require.NoError(t, err)
	// A partition, as the application would have made, goes down with its table.
	require.NoError(t, postgres.NewPartitions(db).EnsureFor(ctx, time.Now()))

	_, err = p.DownTo(ctx, 0)
	require.NoError(t, err)

	var left int
	require.NoError(t, postgres.Primary(db).QueryRow(ctx,
		`SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		 WHERE n.nspname = 'public' AND c.relname <> 'goose_db_version' AND c.relname NOT LIKE 'goose_db_version_%'`).Scan(&left))
	assert.Zero(t, left, "down leaves no relations behind")
	ok, err := db.MigrationsApplied(ctx)
	require.NoError(t, err)
	assert.False(t, ok)

	require.NoError(t, db.Migrate(ctx))
	ok, err = db.MigrationsApplied(ctx)
	require.NoError(t, err)
	assert.True(t, ok)
}

// TestSchemaConstraints checks that the schema itself refuses what the
// application must never store, whatever the code above it does.
func TestSchemaConstraints(t *testing.T) {
	db := pgtest.New(t)
	ctx := context.Background()
	pool := postgres.Primary(db)
	msgAt := time.Date(2030, 6, 15, 12, 0, 0, 0, time.UTC)
	require.NoError(t, postgres.NewPartitions(db).EnsureFor(ctx, msgAt))

	insert := func(sql string, args ...any) int64 {
		t.Helper()
		var id int64
		require.NoError(t, pool.QueryRow(ctx, sql+" RETURNING id", args...).Scan(&id), sql)
		return id
	}
	u1 := insert(`INSERT INTO users (email, username, created_at, updated_at) VALUES ('one@example.com', 'one', now(), now())`)
	u2 := insert(`INSERT INTO users (email, username, created_at, updated_at) VALUES ('two@example.com', 'two', now(), now())`)
	group := insert(`INSERT INTO conversations (name, conversation_type, created_by_id, created_at, updated_at) VALUES ('Team', 1, $1, now(), now())`, u1)
	insert(`INSERT INTO conversations (conversation_type, created_by_id, direct_key, created_at, updated_at) VALUES (2, $1, $2, now(), now())`,
		u1, fmt.Sprintf("%d:%d", u1, u2))
	insert(`INSERT INTO conversation_members (conversation_id, user_id, role, created_at, updated_at) VALUES ($1, $2, 1, now(), now())`, group, u1)
	insert(`INSERT INTO call_sessions (conversation_id, initiator_id, call_type, status, created_at, updated_at) VALUES ($1, $2, 0, 1, now(), now())`, group, u1)
	msg := insert(`INSERT INTO messages (conversation_id, user_id, content, created_at, updated_at) VALUES ($1, $2, 'hi', $3, $3)`, group, u1, msgAt)
	insert(`INSERT INTO reactions (message_id, message_created_at, user_id, emoji, created_at, updated_at) VALUES ($1, $2, $3, '👍', now(), now())`, msg, msgAt, u1)

	const (
		ok             = ""
		uniqueViolated = "23505"
		checkViolated  = "23514"
		fkViolated     = "23503"
	)
	tests := []struct {
		name string
		sql  string
		want string
	}{
		{"second DM for the same pair", fmt.Sprintf(
			`INSERT INTO conversations (conversation_type, created_by_id, direct_key, created_at, updated_at) VALUES (2, %d, '%d:%d', now(), now())`, u2, u1, u2), uniqueViolated},
		{"DM without a direct key", fmt.Sprintf(
			`INSERT INTO conversations (conversation_type, created_by_id, created_at, updated_at) VALUES (2, %d, now(), now())`, u1), checkViolated},
		{"group with a direct key", fmt.Sprintf(
			`INSERT INTO conversations (name, conversation_type, created_by_id, direct_key, created_at, updated_at) VALUES ('G', 1, %d, '1:2', now(), now())`, u1), checkViolated},
		{"unknown conversation type", fmt.Sprintf(
			`INSERT INTO conversations (name, conversation_type, created_by_id, created_at, updated_at) VALUES ('G', 3, %d, now(), now())`, u1), checkViolated},
		{"second ongoing call in a conversation", fmt.Sprintf(
			`INSERT INTO call_sessions (conversation_id, initiator_id, call_type, status, created_at, updated_at) VALUES (%d, %d, 1, 0, now(), now())`, group, u2), uniqueViolated},
		{"ended call beside an ongoing one", fmt.Sprintf(
			`INSERT INTO call_sessions (conversation_id, initiator_id, call_type, status, created_at, updated_at) VALUES (%d, %d, 1, 3, now(), now())`, group, u2), ok},
		{"unknown call status", fmt.Sprintf(
			`INSERT INTO call_sessions (conversation_id, initiator_id, call_type, status, created_at, updated_at) VALUES (%d, %d, 0, 6, now(), now())`, group, u2), checkViolated},
		{"unknown call type", fmt.Sprintf(
			`INSERT INTO call_sessions (conversation_id, initiator_id, call_type, status, created_at, updated_at) VALUES (%d, %d, 2, 3, now(), now())`, group, u2), checkViolated},
		{"second membership", fmt.Sprintf(
			`INSERT INTO conversation_members (conversation_id, user_id, created_at, updated_at) VALUES (%d, %d, now(), now())`, group, u1), uniqueViolated},
		{"unknown role", fmt.Sprintf(
			`INSERT INTO conversation_members (conversation_id, user_id, role, created_at, updated_at) VALUES (%d, %d, 2, now(), now())`, group, u2), checkViolated},
		{"unknown message type", fmt.Sprintf(
			`INSERT INTO messages (conversation_id, user_id, content, message_type, created_at, updated_at) VALUES (%d, %d, 'x', 4, '2030-06-02', '2030-06-02')`, group, u1), checkViolated},
		{"reaction to a missing message", fmt.Sprintf(
			`INSERT INTO reactions (message_id, message_created_at, user_id, emoji, created_at, updated_at) VALUES (%d, '2030-06-15 12:00:00+00', %d, '👍', now(), now())`, msg+1000, u2), fkViolated},
		{"reaction with the wrong message time", fmt.Sprintf(
			`INSERT INTO reactions (message_id, message_created_at, user_id, emoji, created_at, updated_at) VALUES (%d, '2030-06-15 12:00:01+00', %d, '👍', now(), now())`, msg, u2), fkViolated},
		{"second identical reaction", fmt.Sprintf(
			`INSERT INTO reactions (message_id, message_created_at, user_id, emoji, created_at, updated_at) VALUES (%d, '2030-06-15 12:00:00+00', %d, '👍', now(), now())`, msg, u1), uniqueViolated},
		{"another emoji on the same message", fmt.Sprintf(
			`INSERT INTO reactions (message_id, message_created_at, user_id, emoji, created_at, updated_at) VALUES (%d, '2030-06-15 12:00:00+00', %d, '🎉', now(), now())`, msg, u1), ok},
		{"empty emoji", fmt.Sprintf(
			`INSERT INTO reactions (message_id, message_created_at, user_id, emoji, created_at, updated_at) VALUES (%d, '2030-06-15 12:00:00+00', %d, '', now(), now())`, msg, u2), checkViolated},
		{"emoji of 11 characters", fmt.Sprintf(
			`INSERT INTO reactions (message_id, message_created_at, user_id, emoji, created_at, updated_at) VALUES (%d, '2030-06-15 12:00:00+00', %d, 'abcdefghijk', now(), now())`, msg, u2), checkViolated},
		{"emoji of 10 multi-byte characters", fmt.Sprintf(
			`INSERT INTO reactions (message_id, message_created_at, user_id, emoji, created_at, updated_at) VALUES (%d, '2030-06-15 12:00:00+00', %d, '👍👍👍👍👍👍👍👍👍👍', now(), now())`, msg, u2), ok},
		{"email taken", `INSERT INTO users (email, username, created_at, updated_at) VALUES ('one@example.com', 'three', now(), now())`, uniqueViolated},
		{"upper-case email", `INSERT INTO users (email, username, created_at, updated_at) VALUES ('Four@example.com', 'four', now(), now())`, checkViolated},
		{"username taken", `INSERT INTO users (email, username, created_at, updated_at) VALUES ('five@example.com', 'one', now(), now())`, uniqueViolated},
		{"username with capitals", `INSERT INTO users (email, username, created_at, updated_at) VALUES ('six@example.com', 'Six', now(), now())`, checkViolated},
		{"username too short", `INSERT INTO users (email, username, created_at, updated_at) VALUES ('seven@example.com', 'se', now(), now())`, checkViolated},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := pool.Exec(ctx, tc.sql)

			if tc.want == ok {
				assert.NoError(t, err)
				return
			}
			assert.Equal(t, tc.want, sqlState(err), "got %v", err)
		})
	}
}

func TestDeletingAConversationDeletesItsRows(t *testing.T) {
	db := pgtest.New(t)
	ctx := context.Background()
	pool := postgres.Primary(db)
	f := newFixture(t, db)
	at := time.Now()
	require.NoError(t, postgres.NewPartitions(db).EnsureFor(ctx, at))
	var msg int64
	require.NoError(t, pool.QueryRow(ctx,
		`INSERT INTO messages (conversation_id, user_id, content, created_at, updated_at) VALUES ($1, $2, 'hi', $3, $3) RETURNING id`,
		f.conversationID, f.userID, at).Scan(&msg))
	_, err := pool.Exec(ctx,
		`INSERT INTO reactions (message_id, message_created_at, user_id, emoji, created_at, updated_at) VALUES ($1, $2, $3, 'x', now(), now())`,
		msg, at, f.userID)
	require.NoError(t, err)

	_, err = pool.Exec(ctx, `DELETE FROM conversations WHERE id = $1`, f.conversationID)
	require.NoError(t, err)

	var messages, reactions int
	require.NoError(t, pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM messages), (SELECT count(*) FROM reactions)`).Scan(&messages, &reactions))
	assert.Zero(t, messages)
	assert.Zero(t, reactions)
}

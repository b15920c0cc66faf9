package postgres_test

import (
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/chatterly/chatterly/adapters/postgres"
	"github.com/chatterly/chatterly/adapters/postgres/pgtest"
	"github.com/chatterly/chatterly/core/chat"
)

// Nothing but keyed sends deletes the keys of idempotent sends: each one
// deletes up to ten expired keys, so the table stays about a day long.
func TestPostMessagePrunesExpiredClientIDs(t *testing.T) {
	ctx := t.Context()
	pdb := pgtest.New(t)
	f := newFixture(t, pdb)
	store := postgres.NewChatStore(pdb, postgres.NewPartitions(pdb))
	require.NoError(t, store.AddMembership(ctx, chat.Membership{ConversationID: f.conversationID, UserID: f.userID, CreatedAt: time.Now()}))
	at := time.Now().UTC().Truncate(time.Microsecond)
	send := func(t *testing.T, key string, at time.Time) {
		t.Helper()
		_, created, err := store.PostMessage(ctx, chat.Message{
			ConversationID: f.conversationID, UserID: f.userID, Content: "x", ClientID: &key, CreatedAt: at, UpdatedAt: at,
		})
		require.NoError(t, err)
		require.True(t, created)
	}
	keys := func(t *testing.T) (expired, live int) {
		t.Helper()
		require.NoError(t, postgres.Primary(pdb).QueryRow(ctx, `
			SELECT count(*) FILTER (WHERE created_at <= $1::timestamptz - interval '24 hours'),
			       count(*) FILTER (WHERE created_at > $1::timestamptz - interval '24 hours')
			FROM message_client_ids`, at).Scan(&expired, &live))
		return expired, live
	}
	for i := range 25 {
		send(t, "old-"+strconv.Itoa(i), at.Add(-48*time.Hour+time.Duration(i)*time.Second))
	}
	expired, live := keys(t)
	require.Equal(t, 25, expired)
	require.Zero(t, live)

	for i, want := range []int{15, 5, 0, 0} {
		send(t, "new-"+strconv.Itoa(i), at)

		expired, live := keys(t)
		assert.Equal(t, want, expired, "after send %d", i+1)
		assert.Equal(t, i+1, live, "after send %d", i+1)
	}
}

// Instances of the release before 00003 call chatterly_post_message until
// they are replaced: it must keep storing messages, without a client id.
func TestPostMessageOldFunctionStillWorks(t *testing.T) {
	ctx := t.Context()
	pdb := pgtest.New(t)
	f := newFixture(t, pdb)
	store := postgres.NewChatStore(pdb, postgres.NewPartitions(pdb))
	require.NoError(t, store.AddMembership(ctx, chat.Membership{ConversationID: f.conversationID, UserID: f.userID, CreatedAt: time.Now()}))
	at := time.Now().UTC().Truncate(time.Microsecond)
	require.NoError(t, postgres.NewPartitions(pdb).EnsureFor(ctx, at))

	var id int64
	require.NoError(t, postgres.Primary(pdb).QueryRow(ctx, `
		SELECT id, conversation_id, user_id, content, message_type, parent_message_id, call_session_id, edited_at, deleted_at, created_at, updated_at
		FROM chatterly_post_message($1::bigint, $2::bigint, 'old', 0, NULL, NULL, $3::timestamptz)`,
		f.conversationID, f.userID, at).Scan(&id, new(int64), new(int64), new(string), new(int32), new(*int64), new(*int64), new(*time.Time), new(*time.Time), new(time.Time), new(time.Time)))

	m, err := store.GetMessage(ctx, f.conversationID, id)
	require.NoError(t, err)
	assert.Equal(t, "old", m.Content)
	assert.Nil(t, m.ClientID)
}

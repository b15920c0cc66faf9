package chattest

import (
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/chatterly/chatterly/core"
	"github.com/chatterly/chatterly/core/chat"
)

// readCases are the contract of read markers and unread counts.
var readCases = []struct {
	name string
	run  func(t *testing.T, f Fixture)
}{
	{"MarkRead moves the marker forward only; back or in place is a no-op", testMarkReadMonotonic},
	{"MarkRead of a non-member is NotFound", testMarkReadNonMember},
	{"MarkRead from two devices at once ends at the later message", testMarkReadConcurrent},
	{"UnreadCount counts others' live messages after the marker, up to the limit", testUnreadCount},
	{"Unread counts follow edits and deletes", testUnreadEditsDeletes},
	{"A member who joins has read everything before; rejoining starts again", testUnreadJoinLeave},
	{"PostMessage moves its author's marker; a retry moves nothing", testPostMessageMarksRead},
	{"ListConversations carries each conversation's marker and count", testListConversationsUnread},
}

// postAt sends a message as userID at at, through PostMessage.
func (f Fixture) postAt(t *testing.T, convID, userID int64, at time.Time, clientID *string) chat.Message {
	t.Helper()
	m, _, err := f.Store.PostMessage(t.Context(), chat.Message{
		ConversationID: convID, UserID: userID, Content: "hi", Type: chat.Text, ClientID: clientID, CreatedAt: at, UpdatedAt: at,
	})
	require.NoError(t, err)
	return m
}

func (f Fixture) membership(t *testing.T, convID, userID int64) chat.Membership {
	t.Helper()
	m, err := f.Store.GetMembership(t.Context(), convID, userID)
	require.NoError(t, err)
	return m
}

func (f Fixture) unread(t *testing.T, convID, userID int64, limit int) int {
	t.Helper()
	n, err := f.Store.UnreadCount(t.Context(), f.membership(t, convID, userID), limit)
	require.NoError(t, err)
	return n
}

func lastReadID(m chat.Membership) int64 {
	if m.LastRead == nil {
		return 0
	}
	return m.LastRead.ID
}

func testMarkReadMonotonic(t *testing.T, f Fixture) {
	ctx := t.Context()
	a, b := f.NewUser(t), f.NewUser(t)
	base := now().Add(-time.Hour)
	c := f.group(t, base, a, b)
	var msgs []chat.Message
	for i := range 3 {
		msgs = append(msgs, f.message(t, c.ID, b, base.Add(time.Duration(i+1)*time.Second)))
	}
	steps := []struct {
		name      string
		to        chat.Message
		wantMoved bool
		wantAt    chat.Message
	}{
		{"forward from nothing", msgs[1], true, msgs[1]},
		{"back is a no-op", msgs[0], false, msgs[1]},
		{"in place is a no-op", msgs[1], false, msgs[1]},
		{"forward again", msgs[2], true, msgs[2]},
	}
	for _, s := range steps {
		m, moved, err := f.Store.MarkRead(ctx, c.ID, a, *cursorOf(s.to))
		require.NoError(t, err, s.name)
		assert.Equal(t, s.wantMoved, moved, s.name)
		require.NotNil(t, m.LastRead, s.name)
		assert.Equal(t, *cursorOf(s.wantAt), *m.LastRead, s.name)
		assert.Equal(t, m, f.membership(t, c.ID, a), s.name)
	}
	assert.Nil(t, f.membership(t, c.ID, b).LastRead, "another member's marker moved")
}

func testMarkReadNonMember(t *testing.T, f Fixture) {
	a, b := f.NewUser(t), f.NewUser(t)
	c := f.group(t, now(), a)
	m := f.message(t, c.ID, a, now())
	_, _, err := f.Store.MarkRead(t.Context(), c.ID, b, *cursorOf(m))
	requireKind(t, core.NotFound, err)
}

func testMarkReadConcurrent(t *testing.T, f Fixture) {
	ctx := t.Context()
	a, b := f.NewUser(t), f.NewUser(t)
	base := now().Add(-time.Hour)
	c := f.group(t, base, a, b)
	var msgs []chat.Message
	for i := range 20 {
		msgs = append(msgs, f.message(t, c.ID, b, base.Add(time.Duration(i+1)*time.Second)))
	}
	// Two devices marking the same pair over and over, in both orders.
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			_, _, err := f.Store.MarkRead(ctx, c.ID, a, *cursorOf(msgs[(i%2)*10+9-i/2]))
			assert.NoError(t, err)
		})
	}
	wg.Wait()
	assert.Equal(t, msgs[19].ID, lastReadID(f.membership(t, c.ID, a)))
	assert.Zero(t, f.unread(t, c.ID, a, chat.UnreadCap))
}

func testUnreadCount(t *testing.T, f Fixture) {
	ctx := t.Context()
	a, b, d := f.NewUser(t), f.NewUser(t), f.NewUser(t)
	base := now().Add(-time.Hour)
	c := f.group(t, base, a, b, d)
	other := f.group(t, base, a, b)
	var byB []chat.Message
	for i := range 5 {
		byB = append(byB, f.message(t, c.ID, b, base.Add(time.Duration(i+1)*time.Second)))
	}
	f.message(t, c.ID, a, base.Add(10*time.Second))
	f.message(t, c.ID, d, base.Add(11*time.Second))
	f.message(t, other.ID, b, base.Add(12*time.Second))

	assert.Equal(t, 6, f.unread(t, c.ID, a, chat.UnreadCap), "b's five and d's one, not a's own")
	assert.Equal(t, 3, f.unread(t, c.ID, a, 3), "stops at the limit")
	_, _, err := f.Store.MarkRead(ctx, c.ID, a, *cursorOf(byB[2]))
	require.NoError(t, err)
	assert.Equal(t, 3, f.unread(t, c.ID, a, chat.UnreadCap), "two of b's and d's one after the marker")
	assert.Equal(t, 2, f.unread(t, c.ID, b, chat.UnreadCap), "b has read nothing: a's and d's")
	assert.Equal(t, 1, f.unread(t, other.ID, a, chat.UnreadCap), "counts stay in their conversation")
}

func testUnreadEditsDeletes(t *testing.T, f Fixture) {
	ctx := t.Context()
	a, b := f.NewUser(t), f.NewUser(t)
	base := now().Add(-time.Hour)
	c := f.group(t, base, a, b)
	first := f.message(t, c.ID, b, base.Add(time.Second))
	second := f.message(t, c.ID, b, base.Add(2*time.Second))
	require.Equal(t, 2, f.unread(t, c.ID, a, chat.UnreadCap))

	edited := first
	edited.Content, edited.EditedAt, edited.UpdatedAt = "edited", new(now()), now()
	_, err := f.Store.UpdateMessage(ctx, edited)
	require.NoError(t, err)
	assert.Equal(t, 2, f.unread(t, c.ID, a, chat.UnreadCap), "an edit is not a new message")

	deleted := second
	deleted.DeletedAt, deleted.UpdatedAt = new(now()), now()
	_, err = f.Store.UpdateMessage(ctx, deleted)
	require.NoError(t, err)
	assert.Equal(t, 1, f.unread(t, c.ID, a, chat.UnreadCap), "a deleted message is not unread")

	// A deleted message can still be the marker (a client saw it first).
	_, moved, err := f.Store.MarkRead(ctx, c.ID, a, *cursorOf(second))
	require.NoError(t, err)
	assert.True(t, moved)
	assert.Zero(t, f.unread(t, c.ID, a, chat.UnreadCap))
}

func testUnreadJoinLeave(t *testing.T, f Fixture) {
	ctx := t.Context()
	a, b, j := f.NewUser(t), f.NewUser(t), f.NewUser(t)
	base := now().Add(-time.Hour)
	c := f.group(t, base, a, b)
	f.message(t, c.ID, b, base.Add(time.Second))
	f.message(t, c.ID, b, base.Add(2*time.Second))

	join := func(at time.Time) {
		t.Helper()
		require.NoError(t, f.Store.AddMembership(ctx, chat.Membership{ConversationID: c.ID, UserID: j, Role: chat.RoleMember, CreatedAt: at}))
	}
	join(base.Add(3 * time.Second))
	assert.Zero(t, f.unread(t, c.ID, j, chat.UnreadCap), "what came before the join is read")
	assert.Nil(t, f.membership(t, c.ID, j).LastRead)
	later := f.message(t, c.ID, b, base.Add(4*time.Second))
	assert.Equal(t, 1, f.unread(t, c.ID, j, chat.UnreadCap))
	assert.Equal(t, 3, f.unread(t, c.ID, a, chat.UnreadCap), "a join changes nobody else's count")

	_, _, err := f.Store.MarkRead(ctx, c.ID, j, *cursorOf(later))
	require.NoError(t, err)
	require.NoError(t, f.Store.RemoveMembership(ctx, c.ID, j))
	assert.Equal(t, 3, f.unread(t, c.ID, a, chat.UnreadCap), "a leave changes nobody else's count")
	f.message(t, c.ID, b, base.Add(5*time.Second))
	join(base.Add(6 * time.Second))
	assert.Nil(t, f.membership(t, c.ID, j).LastRead, "a rejoin keeps no marker of the last membership")
	assert.Zero(t, f.unread(t, c.ID, j, chat.UnreadCap), "what came while away is read on rejoining")
}

func testPostMessageMarksRead(t *testing.T, f Fixture) {
	a, b := f.NewUser(t), f.NewUser(t)
	base := now().Add(-time.Hour)
	c := f.group(t, base, a, b)
	f.message(t, c.ID, b, base.Add(time.Second))
	require.Equal(t, 1, f.unread(t, c.ID, a, chat.UnreadCap))

	mine := f.postAt(t, c.ID, a, base.Add(2*time.Second), new("key-1"))
	assert.Equal(t, mine.ID, lastReadID(f.membership(t, c.ID, a)), "a keyed send marks")
	assert.Zero(t, f.unread(t, c.ID, a, chat.UnreadCap), "sending reads what came before")
	assert.Nil(t, f.membership(t, c.ID, b).LastRead, "only the author's marker moves")

	theirs := f.message(t, c.ID, b, base.Add(3*time.Second))
	retry := f.postAt(t, c.ID, a, base.Add(4*time.Second), new("key-1"))
	assert.Equal(t, mine.ID, retry.ID)
	assert.Equal(t, mine.ID, lastReadID(f.membership(t, c.ID, a)), "a retry marks nothing")
	assert.Equal(t, 1, f.unread(t, c.ID, a, chat.UnreadCap))

	plain := f.postAt(t, c.ID, a, base.Add(5*time.Second), nil)
	assert.Equal(t, plain.ID, lastReadID(f.membership(t, c.ID, a)), "a plain send marks")
	assert.Less(t, theirs.ID, plain.ID)
	assert.Zero(t, f.unread(t, c.ID, a, chat.UnreadCap))
}

func testListConversationsUnread(t *testing.T, f Fixture) {
	ctx := t.Context()
	a, b := f.NewUser(t), f.NewUser(t)
	base := now().Add(-time.Hour)
	quiet := f.group(t, base, a, b)
	busy := f.group(t, base, a, b)
	read := f.group(t, base, a, b)
	for i := range 7 {
		f.message(t, busy.ID, b, base.Add(time.Duration(i+1)*time.Second))
	}
	last := f.message(t, read.ID, b, base.Add(10*time.Second))
	_, _, err := f.Store.MarkRead(ctx, read.ID, a, *cursorOf(last))
	require.NoError(t, err)

	listed, err := f.Store.ListConversations(ctx, a, 5)
	require.NoError(t, err)
	got := map[int64]chat.MemberConversation{}
	for _, c := range listed {
		got[c.ID] = c
	}
	require.Len(t, got, 3)
	assert.Zero(t, got[quiet.ID].Unread)
	assert.Nil(t, got[quiet.ID].LastRead)
	assert.Equal(t, 5, got[busy.ID].Unread, "stops at the limit")
	assert.Zero(t, got[read.ID].Unread)
	assert.Equal(t, cursorOf(last), got[read.ID].LastRead)
}

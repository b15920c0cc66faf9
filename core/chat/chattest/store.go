// Package chattest is the contract that every chat.Store and chat.Publisher
// implementation passes: run RunStore and RunPublisher from the
// implementation's tests.
package chattest

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/chatterly/chatterly/core"
	"github.com/chatterly/chatterly/core/chat"
)

// Fixture is a store under test with the means to create what it refers
// to but does not keep itself.
type Fixture struct {
	Store chat.Store
	// NewUser creates a user and returns its id; a database store needs
	// real users for its foreign keys.
	NewUser func(t *testing.T) int64
}

// RunStore runs the contract against the fixtures that newStore returns,
// one per subtest. The subtests run in parallel and create their own users
// and conversations, so a store may be shared between them or hold other
// data already.
func RunStore(t *testing.T, newStore func(t *testing.T) Fixture) {
	t.Helper()
	tests := []struct {
		name string
		run  func(t *testing.T, f Fixture)
	}{
		{"CreateConversation assigns an id and stores the members", testCreateConversation},
		{"CreateConversation of a taken direct key is Conflict and stores nothing", testCreateConversationConflict},
		{"GetConversation and GetDirect of unknown ones are NotFound", testGetConversationUnknown},
		{"LockConversation finds what GetConversation finds, in a transaction or not", testLockConversation},
		{"LockConversation makes concurrent membership changes take turns", testLockConversationSerializes},
		{"ListConversations orders by activity, then id, and lists only the user's", testListConversations},
		{"DeleteConversation removes members, messages and reactions", testDeleteConversation},
		{"DeleteConversation of an unknown one is NotFound", testDeleteConversationUnknown},
		{"GetMembership of a non-member is NotFound", testGetMembership},
		{"ListMemberships orders by conversation, CreatedAt, user", testListMemberships},
		{"AddMembership of a member is Conflict", testAddMembershipConflict},
		{"RemoveMembership of a non-member is NotFound", testRemoveMembership},
		{"SetRole changes one member's role, rolls back, and of a non-member is NotFound", testSetRole},
		{"CreateMessage assigns an id and keeps what it is given", testCreateMessage},
		{"CreateMessage moves LastMessageAt forward, never back", testCreateMessageLastMessageAt},
		{"CreateMessage works in any month", testCreateMessageAnyMonth},
		{"PostMessage stores a member's message as CreateMessage does, and nothing from a non-member", testPostMessage},
		{"PostMessage with a client id stores it, and CreateMessage none", testPostMessageClientID},
		{"PostMessage again with a client id returns the first message and stores nothing", testPostMessageRetry},
		{"PostMessage keys client ids by user", testPostMessageClientIDPerUser},
		{"PostMessage with a client id from 20 goroutines stores one message", testPostMessageClientIDConcurrently},
		{"PostMessage forgets a client id after ClientIDWindow", testPostMessageClientIDExpires},
		{"PostMessage with a client id of another conversation is Conflict", testPostMessageClientIDOtherConversation},
		{"PostMessage with a client id from a non-member is NotFound and takes no key", testPostMessageClientIDNonMember},
		{"PostMessage with a client id racing the author's removal stores, or is NotFound and takes no key", testPostMessageClientIDRacingRemoval},
		{"GetMessage finds deleted messages, in their conversation only", testGetMessage},
		{"LockMessage finds what GetMessage finds, in a transaction or not", testLockMessage},
		{"LockMessage makes concurrent read-modify-writes of a message take turns", testLockMessageSerializes},
		{"UpdateMessage writes content, edit and deletion, then never again", testUpdateMessage},
		{"UpdateMessage of an unknown message is NotFound", testUpdateMessageUnknown},
		{"History is newest first and skips deleted messages", testHistory},
		{"History after a cursor is strictly older", testHistoryCursor},
		{"History breaks CreatedAt ties by ID", testHistoryTies},
		{"History pages through every message exactly once", testHistoryPaging},
		{"HistoryAfter is oldest first and skips deleted messages", testHistoryAfter},
		{"HistoryAfter a cursor is strictly newer, ties broken by ID", testHistoryAfterCursor},
		{"HistoryAfter pages forward through every message exactly once", testHistoryAfterPaging},
		{"CreateReaction assigns an id; a repeat is Conflict", testCreateReaction},
		{"CreateReaction to a missing message is NotFound", testCreateReactionMissingMessage},
		{"ListReactions orders by ID", testListReactions},
		{"DeleteReaction of an unknown reaction is NotFound", testDeleteReaction},
		{"ContactIDs lists everyone sharing a conversation once, in order, without the user", testContactIDs},
		{"ContactIDs drops a contact with the last conversation shared", testContactIDsAfterLeaving},
		{"InTx commits what fn did", testInTxCommit},
		{"InTx rolls back what fn created when fn fails", testInTxRollback},
		{"InTx rolls back changes to existing rows", testInTxRollbackChanges},
		{"InTx rolls back when fn panics", testInTxPanic},
		{"InTx inside InTx joins the outer transaction", testInTxNested},
		{"InTx goes on after a Conflict or NotFound", testInTxAfterConflict},
		{"Concurrent creates of one DM: exactly one wins", testCreateDirectConcurrently},
	}
	tests = append(tests, readCases...)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.run(t, newStore(t))
		})
	}
}

// unknownID is an id that no store hands out in a test run.
const unknownID int64 = 1 << 62

// now is the present as stores keep it: UTC, to the microsecond.
func now() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }

func directKey(a, b int64) string { return fmt.Sprintf("%d:%d", min(a, b), max(a, b)) }

func requireKind(t *testing.T, want core.Kind, err error, msgAndArgs ...any) {
	t.Helper()
	require.Error(t, err, msgAndArgs...)
	require.Equal(t, want, core.KindOf(err), "got %v", err)
}

// group creates a group made by creator (an admin) with the others as
// members, all created at at.
func (f Fixture) group(t *testing.T, at time.Time, creator int64, others ...int64) chat.Conversation {
	t.Helper()
	c, err := f.Store.CreateConversation(t.Context(), chat.Conversation{
		Name: new("Team"), Type: chat.Group, CreatedByID: creator, CreatedAt: at, UpdatedAt: at,
	}, members(at, creator, others...))
	require.NoError(t, err)
	return c
}

// direct creates the DM of a and b.
func (f Fixture) direct(t *testing.T, a, b int64) chat.Conversation {
	t.Helper()
	c, err := f.Store.CreateConversation(t.Context(), directOf(a, b), members(now(), a, b))
	require.NoError(t, err)
	return c
}

func directOf(a, b int64) chat.Conversation {
	at := now()
	return chat.Conversation{Type: chat.Direct, CreatedByID: a, DirectKey: new(directKey(a, b)), CreatedAt: at, UpdatedAt: at}
}

func members(at time.Time, admin int64, others ...int64) []chat.Membership {
	ms := []chat.Membership{{UserID: admin, Role: chat.RoleAdmin, CreatedAt: at}}
	for _, id := range others {
		ms = append(ms, chat.Membership{UserID: id, Role: chat.RoleMember, CreatedAt: at})
	}
	return ms
}

// message creates a text message by userID at at.
func (f Fixture) message(t *testing.T, conversationID, userID int64, at time.Time) chat.Message {
	t.Helper()
	m, err := f.Store.CreateMessage(t.Context(), chat.Message{
		ConversationID: conversationID, UserID: userID, Content: "hello", Type: chat.Text, CreatedAt: at, UpdatedAt: at,
	})
	require.NoError(t, err)
	return m
}

func (f Fixture) history(t *testing.T, conversationID int64, before *chat.Cursor, limit int) []chat.Message {
	t.Helper()
	ms, err := f.Store.History(t.Context(), conversationID, before, limit)
	require.NoError(t, err)
	return ms
}

func ids[T any](items []T, id func(T) int64) []int64 {
	out := make([]int64, len(items))
	for i, v := range items {
		out[i] = id(v)
	}
	return out
}

func messageIDs(ms []chat.Message) []int64 {
	return ids(ms, func(m chat.Message) int64 { return m.ID })
}

func conversationIDs(cs []chat.MemberConversation) []int64 {
	return ids(cs, func(c chat.MemberConversation) int64 { return c.ID })
}

func cursorOf(m chat.Message) *chat.Cursor { return &chat.Cursor{CreatedAt: m.CreatedAt, ID: m.ID} }

func testCreateConversation(t *testing.T, f Fixture) {
	ctx := t.Context()
	a, b, c := f.NewUser(t), f.NewUser(t), f.NewUser(t)
	// Stores return UTC whatever zone they were given.
	at := now().In(time.FixedZone("UTC+3", 3*3600))
	in := chat.Conversation{
		Name: new("Team"), Description: new("Where the team talks"), Type: chat.Channel,
		CreatedByID: a, CreatedAt: at, UpdatedAt: at.Add(time.Second),
	}

	got, err := f.Store.CreateConversation(ctx, in, members(at, a, b, c))

	require.NoError(t, err)
	assert.NotZero(t, got.ID)
	want := in
	want.ID = got.ID
	want.CreatedAt = at.UTC()
	want.UpdatedAt = at.Add(time.Second).UTC()
	assert.Equal(t, want, got)
	stored, err := f.Store.GetConversation(ctx, got.ID)
	require.NoError(t, err)
	assert.Equal(t, want, stored)
	ms, err := f.Store.ListMemberships(ctx, []int64{got.ID})
	require.NoError(t, err)
	assert.Equal(t, []chat.Membership{
		{ConversationID: got.ID, UserID: a, Role: chat.RoleAdmin, CreatedAt: at.UTC()},
		{ConversationID: got.ID, UserID: b, Role: chat.RoleMember, CreatedAt: at.UTC()},
		{ConversationID: got.ID, UserID: c, Role: chat.RoleMember, CreatedAt: at.UTC()},
	}, ms)

	dm := f.direct(t, a, b)
	assert.NotEqual(t, got.ID, dm.ID)
	assert.Equal(t, chat.Direct, dm.Type)
	assert.Nil(t, dm.Name)
	byKey, err := f.Store.GetDirect(ctx, directKey(a, b))
	require.NoError(t, err)
	assert.Equal(t, dm, byKey)
}

func testCreateConversationConflict(t *testing.T, f Fixture) {
	ctx := t.Context()
	a, b, c := f.NewUser(t), f.NewUser(t), f.NewUser(t)
	first := f.direct(t, a, b)
	// The same pair, created by the other user, with a third member that
	// must not be left behind.
	second := directOf(b, a)

	_, err := f.Store.CreateConversation(ctx, second, members(now(), b, a, c))

	requireKind(t, core.Conflict, err)
	got, err := f.Store.GetDirect(ctx, directKey(a, b))
	require.NoError(t, err)
	assert.Equal(t, first, got)
	listed, err := f.Store.ListConversations(ctx, c, chat.UnreadCap)
	require.NoError(t, err)
	assert.Empty(t, listed, "a membership of the refused conversation was stored")
	for _, user := range []int64{a, b} {
		listed, err := f.Store.ListConversations(ctx, user, chat.UnreadCap)
		require.NoError(t, err)
		assert.Equal(t, []int64{first.ID}, conversationIDs(listed))
	}
}

func testGetConversationUnknown(t *testing.T, f Fixture) {
	ctx := t.Context()
	a, b := f.NewUser(t), f.NewUser(t)
	f.group(t, now(), a, b)

	_, err := f.Store.GetConversation(ctx, unknownID)
	requireKind(t, core.NotFound, err)
	_, err = f.Store.GetDirect(ctx, directKey(a, b))
	requireKind(t, core.NotFound, err, "a group has no direct key")
}

func testLockConversation(t *testing.T, f Fixture) {
	ctx := t.Context()
	a, b := f.NewUser(t), f.NewUser(t)
	c := f.group(t, now(), a, b)

	got, err := f.Store.LockConversation(ctx, c.ID)
	require.NoError(t, err)
	assert.Equal(t, c, got)
	_, err = f.Store.LockConversation(ctx, unknownID)
	requireKind(t, core.NotFound, err)
	err = f.Store.InTx(ctx, func(tx chat.Store) error {
		got, err := tx.LockConversation(ctx, c.ID)
		require.NoError(t, err)
		assert.Equal(t, c, got)
		_, err = tx.LockConversation(ctx, unknownID)
		requireKind(t, core.NotFound, err, "in a transaction")
		return nil
	})
	require.NoError(t, err)
}

// testLockConversationSerializes has n admins leave at once, each only
// while another admin stays, as chat.Service's hand-over decides: without
// the lock two of them can each count on the other, and nobody stays.
func testLockConversationSerializes(t *testing.T, f Fixture) {
	const n = 10
	ctx := t.Context()
	admins := make([]int64, n)
	for i := range admins {
		admins[i] = f.NewUser(t)
	}
	at := now()
	ms := make([]chat.Membership, n)
	for i, id := range admins {
		ms[i] = chat.Membership{UserID: id, Role: chat.RoleAdmin, CreatedAt: at}
	}
	c, err := f.Store.CreateConversation(ctx, chat.Conversation{Name: new("Admins"), Type: chat.Group, CreatedByID: admins[0], CreatedAt: at, UpdatedAt: at}, ms)
	require.NoError(t, err)

	var wg sync.WaitGroup
	errs := make([]error, n)
	for i, id := range admins {
		wg.Go(func() {
			errs[i] = f.Store.InTx(ctx, func(tx chat.Store) error {
				if _, err := tx.LockConversation(ctx, c.ID); err != nil {
					return err
				}
				ms, err := tx.ListMemberships(ctx, []int64{c.ID})
				if err != nil || len(ms) < 2 {
					return err
				}
				return tx.RemoveMembership(ctx, c.ID, id)
			})
		})
	}
	wg.Wait()
	for i, err := range errs {
		assert.NoError(t, err, "admin %d", i)
	}
	left, err := f.Store.ListMemberships(ctx, []int64{c.ID})
	require.NoError(t, err)
	assert.Len(t, left, 1, "exactly one admin stays")
}

func testListConversations(t *testing.T, f Fixture) {
	ctx := t.Context()
	u, other := f.NewUser(t), f.NewUser(t)
	base := now().Add(-time.Hour)
	// Created at the same instant, so only their ids order them.
	first := f.group(t, base, u)
	second := f.group(t, base, other, u)
	third := f.group(t, base, u, other)
	f.group(t, base.Add(time.Minute), other) // not u's
	list := func() []int64 {
		t.Helper()
		cs, err := f.Store.ListConversations(ctx, u, chat.UnreadCap)
		require.NoError(t, err)
		return conversationIDs(cs)
	}

	assert.Equal(t, []int64{third.ID, second.ID, first.ID}, list(), "ties by id, newest first")

	f.message(t, first.ID, u, base.Add(2*time.Minute))
	assert.Equal(t, []int64{first.ID, third.ID, second.ID}, list(), "a message moves its conversation first")

	f.message(t, second.ID, other, base.Add(time.Minute))
	assert.Equal(t, []int64{first.ID, second.ID, third.ID}, list())

	later := f.group(t, base.Add(3*time.Minute), u)
	assert.Equal(t, []int64{later.ID, first.ID, second.ID, third.ID}, list(), "creation counts when no message was sent")

	none, err := f.Store.ListConversations(ctx, f.NewUser(t), chat.UnreadCap)
	require.NoError(t, err)
	assert.Empty(t, none)
}

func testDeleteConversation(t *testing.T, f Fixture) {
	ctx := t.Context()
	a, b := f.NewUser(t), f.NewUser(t)
	dm := f.direct(t, a, b)
	kept := f.group(t, now(), a, b)
	// Messages in two months, so in two partitions where there are some.
	old := f.message(t, dm.ID, a, now().AddDate(0, -2, 0))
	recent := f.message(t, dm.ID, b, now())
	keptMessage := f.message(t, kept.ID, a, now())
	reaction, err := f.Store.CreateReaction(ctx, chat.Reaction{
		MessageID: old.ID, MessageCreatedAt: old.CreatedAt, UserID: b, Emoji: "👍", CreatedAt: now(),
	})
	require.NoError(t, err)

	require.NoError(t, f.Store.DeleteConversation(ctx, dm.ID))

	_, err = f.Store.GetConversation(ctx, dm.ID)
	requireKind(t, core.NotFound, err, "conversation")
	_, err = f.Store.GetDirect(ctx, directKey(a, b))
	requireKind(t, core.NotFound, err, "direct key")
	for _, m := range []chat.Message{old, recent} {
		_, err = f.Store.GetMessage(ctx, 0, m.ID)
		requireKind(t, core.NotFound, err, "message %d", m.ID)
	}
	_, err = f.Store.GetReaction(ctx, reaction.ID)
	requireKind(t, core.NotFound, err, "reaction")
	ms, err := f.Store.ListMemberships(ctx, []int64{dm.ID})
	require.NoError(t, err)
	assert.Empty(t, ms)
	rs, err := f.Store.ListReactions(ctx, []int64{old.ID})
	require.NoError(t, err)
	assert.Empty(t, rs)
	assert.Empty(t, f.history(t, dm.ID, nil, 10))
	listed, err := f.Store.ListConversations(ctx, a, chat.UnreadCap)
	require.NoError(t, err)
	assert.Equal(t, []int64{kept.ID}, conversationIDs(listed))

	// The rest is untouched, and the pair may start a new DM.
	_, err = f.Store.GetMessage(ctx, kept.ID, keptMessage.ID)
	assert.NoError(t, err)
	again := f.direct(t, b, a)
	assert.NotEqual(t, dm.ID, again.ID)
}

func testDeleteConversationUnknown(t *testing.T, f Fixture) {
	requireKind(t, core.NotFound, f.Store.DeleteConversation(t.Context(), unknownID))
}

func testGetMembership(t *testing.T, f Fixture) {
	ctx := t.Context()
	a, b, stranger := f.NewUser(t), f.NewUser(t), f.NewUser(t)
	at := now()
	c := f.group(t, at, a, b)

	m, err := f.Store.GetMembership(ctx, c.ID, a)
	require.NoError(t, err)
	assert.Equal(t, chat.Membership{ConversationID: c.ID, UserID: a, Role: chat.RoleAdmin, CreatedAt: at}, m)
	m, err = f.Store.GetMembership(ctx, c.ID, b)
	require.NoError(t, err)
	assert.Equal(t, chat.RoleMember, m.Role)

	_, err = f.Store.GetMembership(ctx, c.ID, stranger)
	requireKind(t, core.NotFound, err, "stranger")
	_, err = f.Store.GetMembership(ctx, unknownID, a)
	requireKind(t, core.NotFound, err, "unknown conversation")
}

func testListMemberships(t *testing.T, f Fixture) {
	ctx := t.Context()
	a, b, c, d := f.NewUser(t), f.NewUser(t), f.NewUser(t), f.NewUser(t)
	base := now().Add(-time.Hour)
	first := f.group(t, base, d, c)
	second := f.group(t, base, a)
	for _, m := range []chat.Membership{
		{ConversationID: first.ID, UserID: a, CreatedAt: base.Add(2 * time.Second)},
		{ConversationID: first.ID, UserID: b, CreatedAt: base.Add(time.Second)},
		{ConversationID: second.ID, UserID: d, Role: chat.RoleAdmin, CreatedAt: base},
	} {
		require.NoError(t, f.Store.AddMembership(ctx, m))
	}

	got, err := f.Store.ListMemberships(ctx, []int64{second.ID, unknownID, first.ID})

	require.NoError(t, err)
	byUser := func(x, y chat.Membership) int { return cmp.Compare(x.UserID, y.UserID) }
	// Members who joined at the same instant come by user id.
	firstFounders := []chat.Membership{
		{ConversationID: first.ID, UserID: d, Role: chat.RoleAdmin, CreatedAt: base},
		{ConversationID: first.ID, UserID: c, Role: chat.RoleMember, CreatedAt: base},
	}
	slices.SortFunc(firstFounders, byUser)
	secondFounders := []chat.Membership{
		{ConversationID: second.ID, UserID: a, Role: chat.RoleAdmin, CreatedAt: base},
		{ConversationID: second.ID, UserID: d, Role: chat.RoleAdmin, CreatedAt: base},
	}
	slices.SortFunc(secondFounders, byUser)
	want := slices.Concat(firstFounders, []chat.Membership{
		{ConversationID: first.ID, UserID: b, Role: chat.RoleMember, CreatedAt: base.Add(time.Second)},
		{ConversationID: first.ID, UserID: a, Role: chat.RoleMember, CreatedAt: base.Add(2 * time.Second)},
	}, secondFounders)
	assert.Equal(t, want, got)

	none, err := f.Store.ListMemberships(ctx, nil)
	require.NoError(t, err)
	assert.Empty(t, none)
}

func testAddMembershipConflict(t *testing.T, f Fixture) {
	ctx := t.Context()
	a, b := f.NewUser(t), f.NewUser(t)
	c := f.group(t, now(), a)
	require.NoError(t, f.Store.AddMembership(ctx, chat.Membership{ConversationID: c.ID, UserID: b, CreatedAt: now()}))

	err := f.Store.AddMembership(ctx, chat.Membership{ConversationID: c.ID, UserID: b, Role: chat.RoleAdmin, CreatedAt: now()})

	requireKind(t, core.Conflict, err)
	m, err := f.Store.GetMembership(ctx, c.ID, b)
	require.NoError(t, err)
	assert.Equal(t, chat.RoleMember, m.Role, "the first membership stays as it was")
}

func testRemoveMembership(t *testing.T, f Fixture) {
	ctx := t.Context()
	a, b := f.NewUser(t), f.NewUser(t)
	c := f.group(t, now(), a, b)

	require.NoError(t, f.Store.RemoveMembership(ctx, c.ID, b))

	_, err := f.Store.GetMembership(ctx, c.ID, b)
	requireKind(t, core.NotFound, err, "after removal")
	requireKind(t, core.NotFound, f.Store.RemoveMembership(ctx, c.ID, b), "a second time")
	requireKind(t, core.NotFound, f.Store.RemoveMembership(ctx, unknownID, a), "unknown conversation")
	_, err = f.Store.GetMembership(ctx, c.ID, a)
	assert.NoError(t, err, "the other member stays")
}

func testSetRole(t *testing.T, f Fixture) {
	ctx := t.Context()
	a, b, c, stranger := f.NewUser(t), f.NewUser(t), f.NewUser(t), f.NewUser(t)
	at := now()
	g := f.group(t, at, a, b, c)
	other := f.group(t, at, b)

	require.NoError(t, f.Store.SetRole(ctx, g.ID, b, chat.RoleAdmin, now()))
	got, err := f.Store.ListMemberships(ctx, []int64{g.ID, other.ID})
	require.NoError(t, err)
	roles := map[[2]int64]chat.Role{}
	for _, m := range got {
		roles[[2]int64{m.ConversationID, m.UserID}] = m.Role
		assert.Equal(t, at, m.CreatedAt, "CreatedAt stays")
	}
	assert.Equal(t, map[[2]int64]chat.Role{
		{g.ID, a}: chat.RoleAdmin, {g.ID, b}: chat.RoleAdmin, {g.ID, c}: chat.RoleMember, {other.ID, b}: chat.RoleAdmin,
	}, roles, "only b in g changed")

	require.NoError(t, f.Store.SetRole(ctx, g.ID, a, chat.RoleMember, now()))
	m, err := f.Store.GetMembership(ctx, g.ID, a)
	require.NoError(t, err)
	assert.Equal(t, chat.RoleMember, m.Role, "and back")

	errRollback := errors.New("roll back")
	err = f.Store.InTx(ctx, func(tx chat.Store) error {
		require.NoError(t, tx.SetRole(ctx, g.ID, c, chat.RoleAdmin, now()))
		return errRollback
	})
	require.ErrorIs(t, err, errRollback)
	m, err = f.Store.GetMembership(ctx, g.ID, c)
	require.NoError(t, err)
	assert.Equal(t, chat.RoleMember, m.Role, "rolled back")

	requireKind(t, core.NotFound, f.Store.SetRole(ctx, g.ID, stranger, chat.RoleAdmin, now()), "a non-member")
	requireKind(t, core.NotFound, f.Store.SetRole(ctx, unknownID, a, chat.RoleAdmin, now()), "an unknown conversation")
	_, err = f.Store.GetMembership(ctx, g.ID, stranger)
	requireKind(t, core.NotFound, err, "SetRole adds nobody")
}

func testCreateMessage(t *testing.T, f Fixture) {
	ctx := t.Context()
	a := f.NewUser(t)
	c := f.group(t, now(), a)
	parent := f.message(t, c.ID, a, now().Add(-time.Minute))
	at := now().In(time.FixedZone("UTC-5", -5*3600))
	in := chat.Message{
		ConversationID: c.ID, UserID: a, Content: "look", Type: chat.Image,
		ParentMessageID: &parent.ID, CreatedAt: at, UpdatedAt: at,
	}

	got, err := f.Store.CreateMessage(ctx, in)

	require.NoError(t, err)
	assert.NotZero(t, got.ID)
	assert.NotEqual(t, parent.ID, got.ID)
	want := in
	want.ID = got.ID
	want.CreatedAt = at.UTC()
	want.UpdatedAt = at.UTC()
	assert.Equal(t, want, got)
	stored, err := f.Store.GetMessage(ctx, c.ID, got.ID)
	require.NoError(t, err)
	assert.Equal(t, want, stored)
}

func testCreateMessageLastMessageAt(t *testing.T, f Fixture) {
	ctx := t.Context()
	a := f.NewUser(t)
	c := f.group(t, now().Add(-time.Hour), a)
	require.Nil(t, c.LastMessageAt)
	last := func() *time.Time {
		t.Helper()
		got, err := f.Store.GetConversation(ctx, c.ID)
		require.NoError(t, err)
		return got.LastMessageAt
	}
	at := now()

	f.message(t, c.ID, a, at)
	assert.Equal(t, &at, last())

	f.message(t, c.ID, a, at.Add(-time.Minute))
	assert.Equal(t, &at, last(), "an older message does not move it back")

	later := at.Add(time.Minute)
	f.message(t, c.ID, a, later)
	assert.Equal(t, &later, last())
}

func testPostMessage(t *testing.T, f Fixture) {
	ctx := t.Context()
	a, b, stranger := f.NewUser(t), f.NewUser(t), f.NewUser(t)
	c := f.group(t, now().Add(-time.Hour), a, b)
	parent := f.message(t, c.ID, b, now().Add(-time.Minute))
	at := now().AddDate(0, 14, 0).In(time.FixedZone("UTC-5", -5*3600)) // a month with no partition yet
	in := chat.Message{
		ConversationID: c.ID, UserID: a, Content: "look", Type: chat.Image,
		ParentMessageID: &parent.ID, CreatedAt: at, UpdatedAt: at,
	}

	got, created, err := f.Store.PostMessage(ctx, in)

	require.NoError(t, err)
	assert.True(t, created)
	want := in
	want.ID = got.ID
	want.CreatedAt, want.UpdatedAt = at.UTC(), at.UTC()
	assert.Equal(t, want, got)
	stored, err := f.Store.GetMessage(ctx, c.ID, got.ID)
	require.NoError(t, err)
	assert.Equal(t, want, stored)
	conv, err := f.Store.GetConversation(ctx, c.ID)
	require.NoError(t, err)
	assert.Equal(t, at.UTC(), conv.LastMessageAt.UTC())

	require.NoError(t, f.Store.RemoveMembership(ctx, c.ID, b))
	for _, tc := range []struct {
		name string
		m    chat.Message
	}{
		{"never a member", chat.Message{ConversationID: c.ID, UserID: stranger}},
		{"a member who left", chat.Message{ConversationID: c.ID, UserID: b}},
		{"a conversation that does not exist", chat.Message{ConversationID: c.ID + 1000, UserID: a}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.m.Content, tc.m.Type = "intruder", chat.Text
			tc.m.CreatedAt, tc.m.UpdatedAt = at.Add(time.Minute), at.Add(time.Minute)
			_, _, err := f.Store.PostMessage(ctx, tc.m)
			assert.Equal(t, core.NotFound, core.KindOf(err), "%v", err)
		})
	}
	assert.Len(t, f.history(t, c.ID, nil, 50), 2, "nothing stored for the refused ones")
	conv, err = f.Store.GetConversation(ctx, c.ID)
	require.NoError(t, err)
	assert.Equal(t, at.UTC(), conv.LastMessageAt.UTC(), "LastMessageAt unmoved by refused ones")
}

// aClientID is the client id the tests send with. Keys are per user and
// each test has users of its own, so one id for all keeps them apart too.
const aClientID = "6f1c9e2a-3b7d-4c55-9a0e-client:1"

// post sends a text message with a client id at at.
func (f Fixture) post(t *testing.T, conversationID, userID int64, id *string, content string, at time.Time) (chat.Message, bool, error) {
	t.Helper()
	return f.Store.PostMessage(t.Context(), chat.Message{
		ConversationID: conversationID, UserID: userID, Content: content, Type: chat.Text,
		ClientID: id, CreatedAt: at, UpdatedAt: at,
	})
}

func testPostMessageClientID(t *testing.T, f Fixture) {
	ctx := t.Context()
	a := f.NewUser(t)
	c := f.group(t, now().Add(-time.Hour), a)
	id := new(aClientID)

	got, created, err := f.post(t, c.ID, a, id, "hi", now())

	require.NoError(t, err)
	assert.True(t, created)
	require.NotNil(t, got.ClientID)
	assert.Equal(t, *id, *got.ClientID)
	stored, err := f.Store.GetMessage(ctx, c.ID, got.ID)
	require.NoError(t, err)
	assert.Equal(t, got, stored)
	assert.Equal(t, []chat.Message{got}, f.history(t, c.ID, nil, 50))

	at := now()
	plain, err := f.Store.CreateMessage(ctx, chat.Message{
		ConversationID: c.ID, UserID: a, Content: "log", Type: chat.Text, ClientID: new(aClientID), CreatedAt: at, UpdatedAt: at,
	})
	require.NoError(t, err)
	assert.Nil(t, plain.ClientID)
	stored, err = f.Store.GetMessage(ctx, c.ID, plain.ID)
	require.NoError(t, err)
	assert.Nil(t, stored.ClientID)
}

func testPostMessageRetry(t *testing.T, f Fixture) {
	ctx := t.Context()
	a := f.NewUser(t)
	c := f.group(t, now().Add(-time.Hour), a)
	id := new(aClientID)
	at := now()
	first, created, err := f.post(t, c.ID, a, id, "once", at)
	require.NoError(t, err)
	require.True(t, created)

	tests := []struct {
		name    string
		content string
		at      time.Time
	}{
		{"at once", "once", at.Add(time.Second)},
		{"with other content", "twice", at.Add(time.Minute)},
		{"just within the window", "once", at.Add(chat.ClientIDWindow - time.Microsecond)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, created, err := f.post(t, c.ID, a, id, tc.content, tc.at)

			require.NoError(t, err)
			assert.False(t, created)
			assert.Equal(t, first, got)
		})
	}
	assert.Equal(t, []chat.Message{first}, f.history(t, c.ID, nil, 50), "no second message")
	conv, err := f.Store.GetConversation(ctx, c.ID)
	require.NoError(t, err)
	assert.Equal(t, at, conv.LastMessageAt.UTC(), "LastMessageAt unmoved by retries")
}

func testPostMessageClientIDPerUser(t *testing.T, f Fixture) {
	a, b := f.NewUser(t), f.NewUser(t)
	c := f.group(t, now().Add(-time.Hour), a, b)
	id := new(aClientID)

	fromA, createdA, errA := f.post(t, c.ID, a, id, "from a", now())
	fromB, createdB, errB := f.post(t, c.ID, b, id, "from b", now())

	require.NoError(t, errA)
	require.NoError(t, errB)
	assert.True(t, createdA)
	assert.True(t, createdB)
	assert.NotEqual(t, fromA.ID, fromB.ID)
	assert.Len(t, f.history(t, c.ID, nil, 50), 2)
}

func testPostMessageClientIDConcurrently(t *testing.T, f Fixture) {
	const n = 20
	a := f.NewUser(t)
	c := f.group(t, now().Add(-time.Hour), a)
	id := new(aClientID)
	at := now()

	var wg sync.WaitGroup
	got := make([]chat.Message, n)
	created := make([]bool, n)
	errs := make([]error, n)
	for i := range n {
		// One clock reading for all, as retries on a stopped clock would
		// have: nothing but the key tells them apart.
		wg.Go(func() { got[i], created[i], errs[i] = f.post(t, c.ID, a, id, "race", at) })
	}
	wg.Wait()

	wins := 0
	for i := range n {
		require.NoError(t, errs[i], "sender %d", i)
		if created[i] {
			wins++
		}
		assert.Equal(t, got[0], got[i], "sender %d", i)
	}
	assert.Equal(t, 1, wins, "exactly one created it")
	assert.Equal(t, []chat.Message{got[0]}, f.history(t, c.ID, nil, 50))
}

func testPostMessageClientIDExpires(t *testing.T, f Fixture) {
	a := f.NewUser(t)
	c := f.group(t, now().Add(-time.Hour), a)
	id := new(aClientID)
	at := now()
	first, _, err := f.post(t, c.ID, a, id, "day one", at)
	require.NoError(t, err)

	second, created, err := f.post(t, c.ID, a, id, "day two", at.Add(chat.ClientIDWindow))

	require.NoError(t, err)
	assert.True(t, created)
	assert.NotEqual(t, first.ID, second.ID)
	assert.Equal(t, "day two", second.Content)
	again, created, err := f.post(t, c.ID, a, id, "day two, again", at.Add(chat.ClientIDWindow+time.Minute))
	require.NoError(t, err)
	assert.False(t, created, "the key names the new message now")
	assert.Equal(t, second, again)
	assert.Len(t, f.history(t, c.ID, nil, 50), 2)
}

func testPostMessageClientIDOtherConversation(t *testing.T, f Fixture) {
	a := f.NewUser(t)
	c1 := f.group(t, now().Add(-time.Hour), a)
	c2 := f.group(t, now().Add(-time.Hour), a)
	id := new(aClientID)
	_, _, err := f.post(t, c1.ID, a, id, "here", now())
	require.NoError(t, err)

	_, _, err = f.post(t, c2.ID, a, id, "there", now())

	requireKind(t, core.Conflict, err)
	assert.Empty(t, f.history(t, c2.ID, nil, 50), "nothing stored")
	assert.Len(t, f.history(t, c1.ID, nil, 50), 1)
}

func testPostMessageClientIDNonMember(t *testing.T, f Fixture) {
	a, stranger := f.NewUser(t), f.NewUser(t)
	c := f.group(t, now().Add(-time.Hour), a)
	mine := f.group(t, now().Add(-time.Hour), stranger)
	id := new(aClientID)

	_, _, err := f.post(t, c.ID, stranger, id, "intruder", now())

	requireKind(t, core.NotFound, err)
	assert.Empty(t, f.history(t, c.ID, nil, 50))
	_, created, err := f.post(t, mine.ID, stranger, id, "mine", now())
	require.NoError(t, err)
	assert.True(t, created, "the refused send took no key")
}

func testPostMessageClientIDRacingRemoval(t *testing.T, f Fixture) {
	ctx := t.Context()
	for i := range 10 {
		a := f.NewUser(t)
		c := f.group(t, now(), a)
		other := f.group(t, now(), a)
		var wg sync.WaitGroup
		var created bool
		var postErr, removeErr error
		wg.Go(func() { _, created, postErr = f.post(t, c.ID, a, new(aClientID), "racing", now()) })
		// As Service removes a member: the conversation's lock first.
		wg.Go(func() {
			removeErr = f.Store.InTx(ctx, func(tx chat.Store) error {
				if _, err := tx.LockConversation(ctx, c.ID); err != nil {
					return err
				}
				return tx.RemoveMembership(ctx, c.ID, a)
			})
		})
		wg.Wait()

		require.NoError(t, removeErr, "round %d", i)
		if postErr == nil {
			assert.True(t, created, "round %d", i)
			assert.Len(t, f.history(t, c.ID, nil, 50), 1, "round %d", i)
			continue
		}
		requireKind(t, core.NotFound, postErr, "round %d", i)
		assert.Empty(t, f.history(t, c.ID, nil, 50), "round %d", i)
		_, created, err := f.post(t, other.ID, a, new(aClientID), "elsewhere", now())
		require.NoError(t, err, "round %d: the refused send left no key", i)
		assert.True(t, created, "round %d", i)
	}
}

func testCreateMessageAnyMonth(t *testing.T, f Fixture) {
	a := f.NewUser(t)
	c := f.group(t, now(), a)
	tests := []struct {
		name string
		at   time.Time
	}{
		{"this month", now()},
		{"14 months ahead", now().AddDate(0, 14, 0)},
		{"3 years ago", now().AddDate(-3, 0, 0)},
	}
	var created []chat.Message
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := f.message(t, c.ID, a, tc.at)

			assert.Equal(t, tc.at, m.CreatedAt)
			got, err := f.Store.GetMessage(t.Context(), c.ID, m.ID)
			require.NoError(t, err)
			assert.Equal(t, m, got)
			created = append(created, m)
		})
	}
	slices.SortFunc(created, func(x, y chat.Message) int { return y.CreatedAt.Compare(x.CreatedAt) })
	assert.Equal(t, messageIDs(created), messageIDs(f.history(t, c.ID, nil, 10)))
}

func testGetMessage(t *testing.T, f Fixture) {
	ctx := t.Context()
	a := f.NewUser(t)
	c, other := f.group(t, now(), a), f.group(t, now(), a)
	m := f.message(t, c.ID, a, now())
	deleted := f.message(t, c.ID, a, now())
	deleted.DeletedAt = new(now())
	deleted, err := f.Store.UpdateMessage(ctx, deleted)
	require.NoError(t, err)

	tests := []struct {
		name           string
		conversationID int64
		id             int64
		want           *chat.Message // nil for NotFound
	}{
		{"in its conversation", c.ID, m.ID, &m},
		{"in any conversation", 0, m.ID, &m},
		{"deleted", c.ID, deleted.ID, &deleted},
		{"in another conversation", other.ID, m.ID, nil},
		{"in an unknown conversation", unknownID, m.ID, nil},
		{"unknown", 0, unknownID, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := f.Store.GetMessage(ctx, tc.conversationID, tc.id)

			if tc.want == nil {
				requireKind(t, core.NotFound, err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, *tc.want, got)
		})
	}
}

func testLockMessage(t *testing.T, f Fixture) {
	ctx := t.Context()
	a := f.NewUser(t)
	c, other := f.group(t, now(), a), f.group(t, now(), a)
	m := f.message(t, c.ID, a, now())
	deleted := f.message(t, c.ID, a, now().Add(-40*24*time.Hour)) // another month's partition
	deleted.DeletedAt = new(now())
	deleted, err := f.Store.UpdateMessage(ctx, deleted)
	require.NoError(t, err)

	tests := []struct {
		name           string
		conversationID int64
		id             int64
		want           *chat.Message // nil for NotFound
	}{
		{"in its conversation", c.ID, m.ID, &m},
		{"in any conversation", 0, m.ID, &m},
		{"deleted, of another month", c.ID, deleted.ID, &deleted},
		{"in another conversation", other.ID, m.ID, nil},
		{"unknown", 0, unknownID, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			check := func(got chat.Message, err error) {
				t.Helper()
				if tc.want == nil {
					requireKind(t, core.NotFound, err)
					return
				}
				require.NoError(t, err)
				assert.Equal(t, *tc.want, got)
			}
			check(f.Store.LockMessage(ctx, tc.conversationID, tc.id))
			require.NoError(t, f.Store.InTx(ctx, func(tx chat.Store) error {
				check(tx.LockMessage(ctx, tc.conversationID, tc.id))
				return nil
			}))
		})
	}
}

// testLockMessageSerializes has n transactions each add one to a counter
// kept in a message's content, as edits of one message do: with the lock
// none of them reads a value that another is about to replace.
func testLockMessageSerializes(t *testing.T, f Fixture) {
	const n = 20
	ctx := t.Context()
	a := f.NewUser(t)
	c := f.group(t, now(), a)
	m := f.message(t, c.ID, a, now())
	m.Content = "0"
	_, err := f.Store.UpdateMessage(ctx, m)
	require.NoError(t, err)

	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			errs[i] = f.Store.InTx(ctx, func(tx chat.Store) error {
				got, err := tx.LockMessage(ctx, c.ID, m.ID)
				if err != nil {
					return err
				}
				count, err := strconv.Atoi(got.Content)
				if err != nil {
					return err
				}
				got.Content = strconv.Itoa(count + 1)
				_, err = tx.UpdateMessage(ctx, got)
				return err
			})
		})
	}
	wg.Wait()
	for i, err := range errs {
		assert.NoError(t, err, "transaction %d", i)
	}
	stored, err := f.Store.GetMessage(ctx, c.ID, m.ID)
	require.NoError(t, err)
	assert.Equal(t, strconv.Itoa(n), stored.Content, "no increment lost")
}

func testUpdateMessage(t *testing.T, f Fixture) {
	ctx := t.Context()
	a := f.NewUser(t)
	c := f.group(t, now(), a)
	m := f.message(t, c.ID, a, now().Add(-time.Hour))

	edited := m
	edited.Content = "edited"
	edited.EditedAt = new(now())
	edited.UpdatedAt = *edited.EditedAt
	got, err := f.Store.UpdateMessage(ctx, edited)
	require.NoError(t, err)
	assert.Equal(t, edited, got)

	// Fields other than the four are not written.
	sneaky := got
	sneaky.UserID, sneaky.ConversationID, sneaky.Type = unknownID, unknownID, chat.File
	got, err = f.Store.UpdateMessage(ctx, sneaky)
	require.NoError(t, err)
	assert.Equal(t, edited, got)

	deleted := got
	deleted.DeletedAt = new(now().Add(time.Second))
	deleted.UpdatedAt = *deleted.DeletedAt
	got, err = f.Store.UpdateMessage(ctx, deleted)
	require.NoError(t, err)
	assert.Equal(t, deleted, got)
	stored, err := f.Store.GetMessage(ctx, c.ID, m.ID)
	require.NoError(t, err)
	assert.Equal(t, deleted, stored)

	// A deleted message never changes again: a second delete or a late
	// edit finds nothing, so concurrent deletes cannot both succeed.
	again := deleted
	again.Content, again.DeletedAt = "resurrected", new(now().Add(2*time.Second))
	_, err = f.Store.UpdateMessage(ctx, again)
	requireKind(t, core.NotFound, err, "update of a deleted message")
	stored, err = f.Store.GetMessage(ctx, c.ID, m.ID)
	require.NoError(t, err)
	assert.Equal(t, deleted, stored)
}

func testUpdateMessageUnknown(t *testing.T, f Fixture) {
	ctx := t.Context()
	a := f.NewUser(t)
	c := f.group(t, now(), a)
	m := f.message(t, c.ID, a, now())

	unknown := m
	unknown.ID = unknownID
	_, err := f.Store.UpdateMessage(ctx, unknown)
	requireKind(t, core.NotFound, err, "unknown id")

	elsewhen := m
	elsewhen.CreatedAt = m.CreatedAt.Add(-time.Second)
	elsewhen.Content = "changed"
	_, err = f.Store.UpdateMessage(ctx, elsewhen)
	requireKind(t, core.NotFound, err, "another CreatedAt")
	stored, err := f.Store.GetMessage(ctx, c.ID, m.ID)
	require.NoError(t, err)
	assert.Equal(t, m, stored)
}

// historyFixture makes n messages a minute apart in a conversation, and as
// many in another of the same member, the fourth of the first deleted.
func historyFixture(t *testing.T, f Fixture, n int) (c chat.Conversation, ms []chat.Message) {
	a := f.NewUser(t)
	c, other := f.group(t, now(), a), f.group(t, now(), a)
	base := now().Add(-time.Hour)
	for i := range n {
		ms = append(ms, f.message(t, c.ID, a, base.Add(time.Duration(i)*time.Minute)))
		f.message(t, other.ID, a, base.Add(time.Duration(i)*time.Minute))
	}
	deleted := ms[3]
	deleted.DeletedAt = new(now())
	_, err := f.Store.UpdateMessage(t.Context(), deleted)
	require.NoError(t, err)
	return c, ms
}

func testHistory(t *testing.T, f Fixture) {
	c, ms := historyFixture(t, f, 5)
	want := []int64{ms[4].ID, ms[2].ID, ms[1].ID, ms[0].ID}

	tests := []struct {
		name  string
		limit int
		want  []int64
	}{
		{"all", 10, want},
		{"exactly all", 4, want},
		{"a page", 2, want[:2]},
		{"none", 0, []int64{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := f.history(t, c.ID, nil, tc.limit)

			assert.Equal(t, tc.want, messageIDs(got))
		})
	}
	got := f.history(t, c.ID, nil, 1)
	require.Len(t, got, 1)
	assert.Equal(t, ms[4], got[0], "History returns whole messages")
	assert.Empty(t, f.history(t, unknownID, nil, 10))
}

func testHistoryCursor(t *testing.T, f Fixture) {
	a := f.NewUser(t)
	c := f.group(t, now(), a)
	base := now().Add(-time.Hour)
	var ms []chat.Message
	for i := range 5 {
		ms = append(ms, f.message(t, c.ID, a, base.Add(time.Duration(i)*time.Minute)))
	}

	tests := []struct {
		name   string
		cursor *chat.Cursor
		want   []int64
	}{
		{"at a message", cursorOf(ms[3]), []int64{ms[2].ID, ms[1].ID, ms[0].ID}},
		{"at the oldest", cursorOf(ms[0]), []int64{}},
		{"between messages", &chat.Cursor{CreatedAt: ms[2].CreatedAt.Add(time.Second), ID: unknownID}, []int64{ms[2].ID, ms[1].ID, ms[0].ID}},
		{"after the newest", &chat.Cursor{CreatedAt: now().Add(time.Hour), ID: 0}, []int64{ms[4].ID, ms[3].ID, ms[2].ID, ms[1].ID, ms[0].ID}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, messageIDs(f.history(t, c.ID, tc.cursor, 10)))
		})
	}
}

func testHistoryTies(t *testing.T, f Fixture) {
	a := f.NewUser(t)
	c := f.group(t, now(), a)
	at := now().Add(-time.Minute)
	older := f.message(t, c.ID, a, at.Add(-time.Microsecond))
	var tied []chat.Message
	for range 5 {
		tied = append(tied, f.message(t, c.ID, a, at))
	}
	newer := f.message(t, c.ID, a, at.Add(time.Microsecond))

	assert.Equal(t,
		[]int64{newer.ID, tied[4].ID, tied[3].ID, tied[2].ID, tied[1].ID, tied[0].ID, older.ID},
		messageIDs(f.history(t, c.ID, nil, 10)))
	assert.Equal(t,
		[]int64{tied[1].ID, tied[0].ID, older.ID},
		messageIDs(f.history(t, c.ID, cursorOf(tied[2]), 10)),
		"a cursor inside a tie continues by ID")
}

func testHistoryPaging(t *testing.T, f Fixture) {
	const n, limit = 120, 50
	a := f.NewUser(t)
	c, other := f.group(t, now(), a), f.group(t, now(), a)
	base := now().Add(-time.Hour)
	want := make(map[int64]bool, n)
	for i := range n {
		// Three messages a second, so that pages can end inside a tie.
		at := base.Add(time.Duration(i/3) * time.Second)
		want[f.message(t, c.ID, a, at).ID] = true
		if i%10 == 0 {
			f.message(t, other.ID, a, at)
		}
	}

	var all []chat.Message
	var cursor *chat.Cursor
	var sizes []int
	for len(sizes) < n {
		page := f.history(t, c.ID, cursor, limit)
		sizes = append(sizes, len(page))
		all = append(all, page...)
		if len(page) < limit {
			break
		}
		cursor = cursorOf(page[len(page)-1])
	}

	assert.Equal(t, []int{50, 50, 20}, sizes)
	seen := make(map[int64]bool, n)
	for i, m := range all {
		assert.True(t, want[m.ID], "message %d is not the conversation's", m.ID)
		assert.False(t, seen[m.ID], "message %d came twice", m.ID)
		seen[m.ID] = true
		if i > 0 {
			prev := all[i-1]
			assert.True(t, prev.CreatedAt.After(m.CreatedAt) || (prev.CreatedAt.Equal(m.CreatedAt) && prev.ID > m.ID),
				"message %d is not older than message %d", m.ID, prev.ID)
		}
	}
	assert.Len(t, seen, n)
}

func (f Fixture) historyAfter(t *testing.T, conversationID int64, after chat.Cursor, limit int) []chat.Message {
	t.Helper()
	ms, err := f.Store.HistoryAfter(t.Context(), conversationID, after, limit)
	require.NoError(t, err)
	return ms
}

func testHistoryAfter(t *testing.T, f Fixture) {
	c, ms := historyFixture(t, f, 6)

	tests := []struct {
		name  string
		after chat.Message
		limit int
		want  []int64
	}{
		{"all newer", ms[0], 10, []int64{ms[1].ID, ms[2].ID, ms[4].ID, ms[5].ID}},
		{"exactly all", ms[0], 4, []int64{ms[1].ID, ms[2].ID, ms[4].ID, ms[5].ID}},
		{"a page, the oldest first", ms[0], 2, []int64{ms[1].ID, ms[2].ID}},
		{"the cursor is excluded", ms[1], 1, []int64{ms[2].ID}},
		{"after a deleted message", ms[3], 10, []int64{ms[4].ID, ms[5].ID}},
		{"none newer", ms[5], 10, []int64{}},
		{"none", ms[0], 0, []int64{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := f.historyAfter(t, c.ID, *cursorOf(tc.after), tc.limit)

			assert.Equal(t, tc.want, messageIDs(got))
		})
	}
	got := f.historyAfter(t, c.ID, *cursorOf(ms[4]), 1)
	require.Len(t, got, 1)
	assert.Equal(t, ms[5], got[0], "HistoryAfter returns whole messages")
	assert.Empty(t, f.historyAfter(t, unknownID, *cursorOf(ms[0]), 10))
}

func testHistoryAfterCursor(t *testing.T, f Fixture) {
	a := f.NewUser(t)
	c := f.group(t, now(), a)
	at := now().Add(-time.Minute)
	older := f.message(t, c.ID, a, at.Add(-2*time.Microsecond))
	var tied []chat.Message
	for range 4 {
		tied = append(tied, f.message(t, c.ID, a, at))
	}
	newer := f.message(t, c.ID, a, at.Add(time.Microsecond))

	tests := []struct {
		name   string
		cursor chat.Cursor
		want   []int64
	}{
		{"before the oldest", chat.Cursor{CreatedAt: older.CreatedAt.Add(-time.Hour)},
			[]int64{older.ID, tied[0].ID, tied[1].ID, tied[2].ID, tied[3].ID, newer.ID}},
		{"inside a tie, continues by ID", *cursorOf(tied[1]), []int64{tied[2].ID, tied[3].ID, newer.ID}},
		{"between messages", chat.Cursor{CreatedAt: at.Add(-time.Microsecond), ID: unknownID},
			[]int64{tied[0].ID, tied[1].ID, tied[2].ID, tied[3].ID, newer.ID}},
		{"at the newest", *cursorOf(newer), []int64{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, messageIDs(f.historyAfter(t, c.ID, tc.cursor, 10)))
		})
	}
}

func testHistoryAfterPaging(t *testing.T, f Fixture) {
	const n, limit = 120, 50
	a := f.NewUser(t)
	c, other := f.group(t, now(), a), f.group(t, now(), a)
	base := now().Add(-time.Hour)
	var first chat.Message
	want := make(map[int64]bool, n)
	for i := range n + 1 {
		// Three messages a second, so that pages can end inside a tie.
		m := f.message(t, c.ID, a, base.Add(time.Duration(i/3)*time.Second))
		if i == 0 {
			first = m
		} else {
			want[m.ID] = true
		}
		if i%10 == 0 {
			f.message(t, other.ID, a, m.CreatedAt)
		}
	}

	var all []chat.Message
	cursor := *cursorOf(first)
	var sizes []int
	for len(sizes) < n {
		page := f.historyAfter(t, c.ID, cursor, limit)
		sizes = append(sizes, len(page))
		all = append(all, page...)
		if len(page) < limit {
			break
		}
		cursor = *cursorOf(page[len(page)-1])
	}

	assert.Equal(t, []int{50, 50, 20}, sizes)
	seen := make(map[int64]bool, n)
	for i, m := range all {
		assert.True(t, want[m.ID], "message %d is not one after the cursor in the conversation", m.ID)
		assert.False(t, seen[m.ID], "message %d came twice", m.ID)
		seen[m.ID] = true
		if i > 0 {
			prev := all[i-1]
			assert.True(t, prev.CreatedAt.Before(m.CreatedAt) || (prev.CreatedAt.Equal(m.CreatedAt) && prev.ID < m.ID),
				"message %d is not newer than message %d", m.ID, prev.ID)
		}
	}
	assert.Len(t, seen, n)
}

func testCreateReaction(t *testing.T, f Fixture) {
	ctx := t.Context()
	a, b := f.NewUser(t), f.NewUser(t)
	c := f.group(t, now(), a, b)
	m := f.message(t, c.ID, a, now().Add(-time.Minute))
	at := now().In(time.FixedZone("UTC+1", 3600))
	in := chat.Reaction{MessageID: m.ID, MessageCreatedAt: m.CreatedAt, UserID: b, Emoji: "👍", CreatedAt: at}

	got, err := f.Store.CreateReaction(ctx, in)

	require.NoError(t, err)
	assert.NotZero(t, got.ID)
	want := in
	want.ID = got.ID
	want.CreatedAt = at.UTC()
	assert.Equal(t, want, got)
	stored, err := f.Store.GetReaction(ctx, got.ID)
	require.NoError(t, err)
	assert.Equal(t, want, stored)

	_, err = f.Store.CreateReaction(ctx, in)
	requireKind(t, core.Conflict, err, "the same emoji again")

	for _, r := range []chat.Reaction{
		{MessageID: m.ID, MessageCreatedAt: m.CreatedAt, UserID: b, Emoji: "🎉", CreatedAt: now()},
		{MessageID: m.ID, MessageCreatedAt: m.CreatedAt, UserID: a, Emoji: "👍", CreatedAt: now()},
	} {
		other, err := f.Store.CreateReaction(ctx, r)
		require.NoError(t, err, "another emoji or another user")
		assert.NotEqual(t, got.ID, other.ID)
	}
}

func testCreateReactionMissingMessage(t *testing.T, f Fixture) {
	ctx := t.Context()
	a := f.NewUser(t)
	c := f.group(t, now(), a)
	m := f.message(t, c.ID, a, now())

	tests := []struct {
		name      string
		messageID int64
		createdAt time.Time
	}{
		{"unknown id", unknownID, m.CreatedAt},
		{"another CreatedAt", m.ID, m.CreatedAt.Add(time.Second)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := f.Store.CreateReaction(ctx, chat.Reaction{
				MessageID: tc.messageID, MessageCreatedAt: tc.createdAt, UserID: a, Emoji: "👍", CreatedAt: now(),
			})

			requireKind(t, core.NotFound, err)
		})
	}
}

func testListReactions(t *testing.T, f Fixture) {
	ctx := t.Context()
	a, b := f.NewUser(t), f.NewUser(t)
	c := f.group(t, now(), a, b)
	m1, m2, m3 := f.message(t, c.ID, a, now()), f.message(t, c.ID, a, now()), f.message(t, c.ID, b, now())
	var want []chat.Reaction
	for _, r := range []chat.Reaction{
		{MessageID: m2.ID, MessageCreatedAt: m2.CreatedAt, UserID: a, Emoji: "🎉"},
		{MessageID: m1.ID, MessageCreatedAt: m1.CreatedAt, UserID: b, Emoji: "👍"},
		{MessageID: m3.ID, MessageCreatedAt: m3.CreatedAt, UserID: a, Emoji: "👍"},
		{MessageID: m2.ID, MessageCreatedAt: m2.CreatedAt, UserID: b, Emoji: "🎉"},
	} {
		r.CreatedAt = now()
		got, err := f.Store.CreateReaction(ctx, r)
		require.NoError(t, err)
		if r.MessageID != m3.ID {
			want = append(want, got)
		}
	}
	slices.SortFunc(want, func(x, y chat.Reaction) int { return cmp.Compare(x.ID, y.ID) })

	got, err := f.Store.ListReactions(ctx, []int64{m2.ID, m1.ID, unknownID})

	require.NoError(t, err)
	assert.Equal(t, want, got)
	none, err := f.Store.ListReactions(ctx, []int64{unknownID})
	require.NoError(t, err)
	assert.Empty(t, none)
}

func testDeleteReaction(t *testing.T, f Fixture) {
	ctx := t.Context()
	a := f.NewUser(t)
	c := f.group(t, now(), a)
	m := f.message(t, c.ID, a, now())
	r, err := f.Store.CreateReaction(ctx, chat.Reaction{MessageID: m.ID, MessageCreatedAt: m.CreatedAt, UserID: a, Emoji: "👍", CreatedAt: now()})
	require.NoError(t, err)

	require.NoError(t, f.Store.DeleteReaction(ctx, r.ID))

	_, err = f.Store.GetReaction(ctx, r.ID)
	requireKind(t, core.NotFound, err, "after deletion")
	requireKind(t, core.NotFound, f.Store.DeleteReaction(ctx, r.ID), "a second time")
	_, err = f.Store.CreateReaction(ctx, r)
	assert.NoError(t, err, "the same reaction may be made again")
}

var errRefused = errors.New("refused")

// assertContacts checks ContactIDs(userID); no contacts may come as nil or empty.
func (f Fixture) assertContacts(t *testing.T, userID int64, want ...int64) {
	t.Helper()
	got, err := f.Store.ContactIDs(t.Context(), userID)
	require.NoError(t, err, "ContactIDs(%d)", userID)
	if len(want) == 0 {
		assert.Empty(t, got, "ContactIDs(%d)", userID)
		return
	}
	slices.Sort(want)
	assert.Equal(t, want, got, "ContactIDs(%d)", userID)
}

func testContactIDs(t *testing.T, f Fixture) {
	a, b, c, d, e, loner := f.NewUser(t), f.NewUser(t), f.NewUser(t), f.NewUser(t), f.NewUser(t), f.NewUser(t)
	// a and b share two groups and a DM, yet each is the other's contact once.
	f.group(t, now(), a, b, c)
	f.group(t, now(), b, a)
	f.direct(t, a, b)
	f.direct(t, d, a)
	f.group(t, now(), c, e)
	f.group(t, now(), loner)

	f.assertContacts(t, a, b, c, d)
	f.assertContacts(t, b, a, c)
	f.assertContacts(t, c, a, b, e)
	f.assertContacts(t, d, a)
	f.assertContacts(t, e, c)
	f.assertContacts(t, loner)
	f.assertContacts(t, f.NewUser(t))
	f.assertContacts(t, unknownID)
}

func testContactIDsAfterLeaving(t *testing.T, f Fixture) {
	ctx := t.Context()
	a, b, c, d := f.NewUser(t), f.NewUser(t), f.NewUser(t), f.NewUser(t)
	g := f.group(t, now(), a, b, c)
	other := f.group(t, now(), b, a)
	dm := f.direct(t, a, d)
	f.assertContacts(t, a, b, c, d)

	require.NoError(t, f.Store.RemoveMembership(ctx, g.ID, c))
	f.assertContacts(t, a, b, d)
	f.assertContacts(t, c)

	require.NoError(t, f.Store.RemoveMembership(ctx, g.ID, b))
	f.assertContacts(t, a, b, d) // they still share other
	f.assertContacts(t, b, a)

	require.NoError(t, f.Store.DeleteConversation(ctx, other.ID))
	f.assertContacts(t, a, d)
	f.assertContacts(t, b)

	require.NoError(t, f.Store.DeleteConversation(ctx, dm.ID))
	f.assertContacts(t, a)
	f.assertContacts(t, d)
}

func testInTxCommit(t *testing.T, f Fixture) {
	ctx := t.Context()
	a, b := f.NewUser(t), f.NewUser(t)
	var c chat.Conversation
	var m chat.Message

	err := f.Store.InTx(ctx, func(tx chat.Store) error {
		var err error
		if c, err = tx.CreateConversation(ctx, directOf(a, b), members(now(), a)); err != nil {
			return err
		}
		if err = tx.AddMembership(ctx, chat.Membership{ConversationID: c.ID, UserID: b, CreatedAt: now()}); err != nil {
			return err
		}
		m, err = tx.CreateMessage(ctx, chat.Message{ConversationID: c.ID, UserID: a, Content: "hi", CreatedAt: now(), UpdatedAt: now()})
		return err
	})

	require.NoError(t, err)
	got, err := f.Store.GetDirect(ctx, directKey(a, b))
	require.NoError(t, err)
	assert.Equal(t, c.ID, got.ID)
	assert.Equal(t, &m.CreatedAt, got.LastMessageAt)
	_, err = f.Store.GetMembership(ctx, c.ID, b)
	assert.NoError(t, err)
	stored, err := f.Store.GetMessage(ctx, c.ID, m.ID)
	require.NoError(t, err)
	assert.Equal(t, m, stored)
}

func testInTxRollback(t *testing.T, f Fixture) {
	ctx := t.Context()
	a, b := f.NewUser(t), f.NewUser(t)
	var c chat.Conversation
	var m chat.Message
	var r chat.Reaction

	err := f.Store.InTx(ctx, func(tx chat.Store) error {
		var err error
		if c, err = tx.CreateConversation(ctx, directOf(a, b), members(now(), a)); err != nil {
			return err
		}
		if err = tx.AddMembership(ctx, chat.Membership{ConversationID: c.ID, UserID: b, CreatedAt: now()}); err != nil {
			return err
		}
		if m, err = tx.CreateMessage(ctx, chat.Message{ConversationID: c.ID, UserID: a, Content: "hi", CreatedAt: now(), UpdatedAt: now()}); err != nil {
			return err
		}
		if r, err = tx.CreateReaction(ctx, chat.Reaction{MessageID: m.ID, MessageCreatedAt: m.CreatedAt, UserID: b, Emoji: "👍", CreatedAt: now()}); err != nil {
			return err
		}
		// The transaction sees its own changes.
		if _, err := tx.GetMessage(ctx, c.ID, m.ID); err != nil {
			return err
		}
		if ms, err := tx.ListMemberships(ctx, []int64{c.ID}); err != nil || len(ms) != 2 {
			return fmt.Errorf("memberships in the transaction: %v, %w", ms, err)
		}
		return errRefused
	})

	require.ErrorIs(t, err, errRefused, "InTx returns fn's error")
	_, err = f.Store.GetConversation(ctx, c.ID)
	requireKind(t, core.NotFound, err, "conversation")
	_, err = f.Store.GetDirect(ctx, directKey(a, b))
	requireKind(t, core.NotFound, err, "direct key")
	_, err = f.Store.GetMembership(ctx, c.ID, b)
	requireKind(t, core.NotFound, err, "membership")
	_, err = f.Store.GetMessage(ctx, 0, m.ID)
	requireKind(t, core.NotFound, err, "message")
	_, err = f.Store.GetReaction(ctx, r.ID)
	requireKind(t, core.NotFound, err, "reaction")
	for _, user := range []int64{a, b} {
		listed, err := f.Store.ListConversations(ctx, user, chat.UnreadCap)
		require.NoError(t, err)
		assert.Empty(t, listed)
	}
	again := f.direct(t, a, b)
	assert.NotEqual(t, c.ID, again.ID, "ids are not handed out twice")
}

func testInTxRollbackChanges(t *testing.T, f Fixture) {
	ctx := t.Context()
	a, b := f.NewUser(t), f.NewUser(t)
	dm := f.direct(t, a, b)
	g := f.group(t, now().Add(-time.Hour), a, b)
	m := f.message(t, g.ID, a, now().Add(-time.Minute))
	r, err := f.Store.CreateReaction(ctx, chat.Reaction{MessageID: m.ID, MessageCreatedAt: m.CreatedAt, UserID: b, Emoji: "👍", CreatedAt: now()})
	require.NoError(t, err)
	before, err := f.Store.GetConversation(ctx, g.ID)
	require.NoError(t, err)

	err = f.Store.InTx(ctx, func(tx chat.Store) error {
		edited := m
		edited.Content, edited.EditedAt, edited.UpdatedAt = "edited", new(now()), now()
		if _, err := tx.UpdateMessage(ctx, edited); err != nil {
			return err
		}
		if _, err := tx.CreateMessage(ctx, chat.Message{ConversationID: g.ID, UserID: b, Content: "later", CreatedAt: now(), UpdatedAt: now()}); err != nil {
			return err
		}
		if err := tx.RemoveMembership(ctx, g.ID, b); err != nil {
			return err
		}
		if err := tx.DeleteReaction(ctx, r.ID); err != nil {
			return err
		}
		if err := tx.DeleteConversation(ctx, dm.ID); err != nil {
			return err
		}
		return errRefused
	})

	require.ErrorIs(t, err, errRefused)
	got, err := f.Store.GetMessage(ctx, g.ID, m.ID)
	require.NoError(t, err)
	assert.Equal(t, m, got, "message edit undone")
	after, err := f.Store.GetConversation(ctx, g.ID)
	require.NoError(t, err)
	assert.Equal(t, before, after, "LastMessageAt bump undone")
	assert.Equal(t, []int64{m.ID}, messageIDs(f.history(t, g.ID, nil, 10)), "new message undone")
	_, err = f.Store.GetMembership(ctx, g.ID, b)
	assert.NoError(t, err, "membership removal undone")
	gotReaction, err := f.Store.GetReaction(ctx, r.ID)
	require.NoError(t, err, "reaction deletion undone")
	assert.Equal(t, r, gotReaction)
	gotDM, err := f.Store.GetDirect(ctx, directKey(a, b))
	require.NoError(t, err, "conversation deletion undone")
	assert.Equal(t, dm, gotDM)
	ms, err := f.Store.ListMemberships(ctx, []int64{dm.ID})
	require.NoError(t, err)
	assert.Len(t, ms, 2, "memberships of the deleted conversation restored")
}

func testInTxPanic(t *testing.T, f Fixture) {
	ctx := t.Context()
	a := f.NewUser(t)
	var c chat.Conversation

	require.Panics(t, func() {
		_ = f.Store.InTx(ctx, func(tx chat.Store) error {
			var err error
			c, err = tx.CreateConversation(ctx, chat.Conversation{
				Name: new("Doomed"), Type: chat.Group, CreatedByID: a, CreatedAt: now(), UpdatedAt: now(),
			}, members(now(), a))
			require.NoError(t, err)
			panic("boom")
		})
	})

	_, err := f.Store.GetConversation(ctx, c.ID)
	requireKind(t, core.NotFound, err)
	// The store is usable afterwards.
	f.group(t, now(), a)
}

func testInTxNested(t *testing.T, f Fixture) {
	ctx := t.Context()
	a := f.NewUser(t)
	var inner chat.Conversation

	err := f.Store.InTx(ctx, func(tx chat.Store) error {
		err := tx.InTx(ctx, func(tx chat.Store) error {
			var err error
			inner, err = tx.CreateConversation(ctx, chat.Conversation{
				Name: new("Inner"), Type: chat.Group, CreatedByID: a, CreatedAt: now(), UpdatedAt: now(),
			}, members(now(), a))
			return err
		})
		if err != nil {
			return err
		}
		if _, err := tx.GetConversation(ctx, inner.ID); err != nil {
			return err
		}
		return errRefused
	})

	require.ErrorIs(t, err, errRefused)
	_, err = f.Store.GetConversation(ctx, inner.ID)
	requireKind(t, core.NotFound, err, "the inner call committed on its own")
}

func testInTxAfterConflict(t *testing.T, f Fixture) {
	// A service may meet an expected Conflict or NotFound inside a
	// transaction, handle it, and carry on.
	ctx := t.Context()
	a, b, c := f.NewUser(t), f.NewUser(t), f.NewUser(t)
	dm := f.direct(t, a, b)
	m := f.message(t, dm.ID, a, now())
	r, err := f.Store.CreateReaction(ctx, chat.Reaction{MessageID: m.ID, MessageCreatedAt: m.CreatedAt, UserID: b, Emoji: "👍", CreatedAt: now()})
	require.NoError(t, err)
	var g chat.Conversation

	err = f.Store.InTx(ctx, func(tx chat.Store) error {
		_, err := tx.CreateConversation(ctx, directOf(b, a), members(now(), b, a))
		if !core.Is(err, core.Conflict) {
			return fmt.Errorf("duplicate DM: %w", err)
		}
		err = tx.AddMembership(ctx, chat.Membership{ConversationID: dm.ID, UserID: a, CreatedAt: now()})
		if !core.Is(err, core.Conflict) {
			return fmt.Errorf("duplicate membership: %w", err)
		}
		_, err = tx.CreateReaction(ctx, r)
		if !core.Is(err, core.Conflict) {
			return fmt.Errorf("duplicate reaction: %w", err)
		}
		_, err = tx.CreateReaction(ctx, chat.Reaction{MessageID: unknownID, MessageCreatedAt: now(), UserID: b, Emoji: "👍", CreatedAt: now()})
		if !core.Is(err, core.NotFound) {
			return fmt.Errorf("reaction to a missing message: %w", err)
		}
		if _, err := tx.GetDirect(ctx, directKey(a, b)); err != nil {
			return err
		}
		g, err = tx.CreateConversation(ctx, chat.Conversation{
			Name: new("After"), Type: chat.Group, CreatedByID: c, CreatedAt: now(), UpdatedAt: now(),
		}, members(now(), c))
		return err
	})

	require.NoError(t, err)
	_, err = f.Store.GetMembership(ctx, g.ID, c)
	assert.NoError(t, err, "the transaction committed what followed the failures")
}

func testCreateDirectConcurrently(t *testing.T, f Fixture) {
	const n = 20
	ctx := t.Context()
	a, b := f.NewUser(t), f.NewUser(t)

	var wg sync.WaitGroup
	created := make([]chat.Conversation, n)
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			// Half of them from each side of the pair.
			x, y := a, b
			if i%2 == 1 {
				x, y = b, a
			}
			created[i], errs[i] = f.Store.CreateConversation(ctx, directOf(x, y), members(now(), x, y))
		})
	}
	wg.Wait()

	var winner chat.Conversation
	wins := 0
	for i, err := range errs {
		if err == nil {
			wins++
			winner = created[i]
			continue
		}
		assert.Equal(t, core.Conflict, core.KindOf(err), "creator %d: %v", i, err)
	}
	require.Equal(t, 1, wins)
	got, err := f.Store.GetDirect(ctx, directKey(a, b))
	require.NoError(t, err)
	assert.Equal(t, winner, got)
	ms, err := f.Store.ListMemberships(ctx, []int64{winner.ID})
	require.NoError(t, err)
	assert.Len(t, ms, 2)
	for _, user := range []int64{a, b} {
		listed, err := f.Store.ListConversations(ctx, user, chat.UnreadCap)
		require.NoError(t, err)
		assert.Equal(t, []int64{winner.ID}, conversationIDs(listed))
	}
}

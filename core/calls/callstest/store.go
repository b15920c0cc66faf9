// Package callstest is the contract that every call store passes, as a
// calls.Store and as the chat.Calls that chat renders call logs from: run
// RunStore from the implementation's tests.
package callstest

import (
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/chatterly/chatterly/core"
	"github.com/chatterly/chatterly/core/calls"
	"github.com/chatterly/chatterly/core/chat"
)

// Fixture is a store under test with the means to create what it refers
// to but does not keep itself, and to see the messages it writes.
type Fixture struct {
	Store Store
	// NewUser creates a user and returns its id.
	NewUser func(t *testing.T) int64
	// NewConversation creates a group of the members and returns its id.
	NewConversation func(t *testing.T, members ...int64) int64
	// DeleteConversation deletes the conversation, as the chat store does.
	DeleteConversation func(t *testing.T, id int64)
	// History returns every message of the conversation that is not
	// deleted, in any order; call logs are among them.
	History func(t *testing.T, conversationID int64) []chat.Message
}

// Store is a call store as both its users see it.
type Store interface {
	calls.Store
	chat.Calls
}

// RunStore runs the contract against the fixtures that newFixture returns,
// one per subtest, in parallel. Due sees every call of a store, so each
// fixture must have a store of its own.
func RunStore(t *testing.T, newFixture func(t *testing.T) Fixture) {
	t.Helper()
	tests := []struct {
		name string
		run  func(t *testing.T, f Fixture)
	}{
		{"Create assigns an id and stores the participants", testCreate},
		{"Create of a second ongoing call in a conversation is Conflict", testCreateConflict},
		{"Create after the ongoing call ended is allowed", testCreateAfterTerminal},
		{"Concurrent creates in one conversation: exactly one wins", testCreateConcurrently},
		{"Get, Lock, Ongoing and Save of unknown calls are NotFound", testNotFound},
		{"Ongoing returns the calling, ringing or active call", testOngoing},
		{"Save writes status, StartedAt, EndedAt and UpdatedAt only", testSave},
		{"Participants are ordered by user id", testParticipantsOrder},
		{"PutParticipant inserts or replaces", testPutParticipant},
		{"Due returns calling and ringing calls older than the deadline, oldest first, up to limit", testDue},
		{"Concurrent sweeping transactions take disjoint calls from Due", testDueConcurrently},
		{"StaleActive returns active calls not updated since the deadline, least recent first", testStaleActive},
		{"AddLog stores a call message in the conversation", testAddLog},
		{"CallSummaries returns the calls that exist, as they stand", testCallSummaries},
		{"A deleted conversation's calls are gone", testDeleteConversation},
		{"AddLog in a transaction works in any month", testAddLogAnyMonth},
		{"InTx commits what fn did", testInTxCommit},
		{"InTx rolls back Create, Save, PutParticipant and AddLog", testInTxRollback},
		{"InTx inside InTx joins the outer transaction", testInTxNested},
		{"InTx goes on after a Conflict", testInTxAfterConflict},
		{"Racing terminal transitions under Lock: exactly one wins and logs once", testTerminalRace},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.run(t, newFixture(t))
		})
	}
}

// unknownID is an id that no store hands out in a test run.
const unknownID int64 = 1 << 62

var errRefused = errors.New("refused")

// now is the present as stores keep it: UTC, to the microsecond.
func now() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }

func requireKind(t *testing.T, want core.Kind, err error, msgAndArgs ...any) {
	t.Helper()
	require.Error(t, err, msgAndArgs...)
	require.Equal(t, want, core.KindOf(err), "got %v", err)
}

// newCall is a call of the conversation by initiator, created at at.
func newCall(conversationID, initiator int64, status calls.Status, at time.Time) calls.Call {
	return calls.Call{
		ConversationID: conversationID, InitiatorID: initiator, Type: calls.Audio,
		Status: status, CreatedAt: at, UpdatedAt: at,
	}
}

// create stores a call of the conversation by initiator, who has joined.
func (f Fixture) create(t *testing.T, conversationID, initiator int64, status calls.Status, at time.Time) calls.Call {
	t.Helper()
	c, err := f.Store.Create(t.Context(), newCall(conversationID, initiator, status, at),
		[]calls.Participant{{UserID: initiator, JoinedAt: &at}})
	require.NoError(t, err)
	return c
}

func (f Fixture) get(t *testing.T, id int64) calls.Call {
	t.Helper()
	c, err := f.Store.Get(t.Context(), id)
	require.NoError(t, err)
	return c
}

func (f Fixture) participants(t *testing.T, callID int64) []calls.Participant {
	t.Helper()
	ps, err := f.Store.Participants(t.Context(), callID)
	require.NoError(t, err)
	return ps
}

// logs returns the call messages of the conversation that log callID.
func (f Fixture) logs(t *testing.T, conversationID, callID int64) []chat.Message {
	t.Helper()
	var out []chat.Message
	for _, m := range f.History(t, conversationID) {
		if m.CallSessionID != nil && *m.CallSessionID == callID {
			out = append(out, m)
		}
	}
	return out
}

// logOf is the log message of c, as the service would write it.
func logOf(c calls.Call, at time.Time) chat.Message {
	return chat.Message{
		ConversationID: c.ConversationID, UserID: c.InitiatorID, Content: "Call ended",
		Type: chat.Call, CallSessionID: &c.ID, CreatedAt: at, UpdatedAt: at,
	}
}

// end moves c to the terminal status at at.
func end(c calls.Call, status calls.Status, at time.Time) calls.Call {
	c.Status, c.EndedAt, c.UpdatedAt = status, &at, at
	return c
}

func testCreate(t *testing.T, f Fixture) {
	ctx := t.Context()
	a, b, c := f.NewUser(t), f.NewUser(t), f.NewUser(t)
	conv := f.NewConversation(t, a, b, c)
	// Stores return UTC whatever zone they were given.
	at := now().In(time.FixedZone("UTC+3", 3*3600))
	in := calls.Call{
		ConversationID: conv, InitiatorID: a, Type: calls.Video, Status: calls.Calling,
		CreatedAt: at, UpdatedAt: at.Add(time.Second),
	}

	got, err := f.Store.Create(ctx, in, []calls.Participant{
		{UserID: c}, {UserID: a, JoinedAt: &at}, {UserID: b},
	})

	require.NoError(t, err)
	assert.NotZero(t, got.ID)
	want := in
	want.ID = got.ID
	want.CreatedAt = at.UTC()
	want.UpdatedAt = at.Add(time.Second).UTC()
	assert.Equal(t, want, got)
	assert.Equal(t, want, f.get(t, got.ID))
	joined := at.UTC()
	assert.Equal(t, []calls.Participant{
		{CallID: got.ID, UserID: a, JoinedAt: &joined},
		{CallID: got.ID, UserID: b},
		{CallID: got.ID, UserID: c},
	}, f.participants(t, got.ID))

	other := f.create(t, f.NewConversation(t, a), a, calls.Calling, now())
	assert.NotEqual(t, got.ID, other.ID)
}

func testCreateConflict(t *testing.T, f Fixture) {
	for _, status := range []calls.Status{calls.Calling, calls.Ringing, calls.Active} {
		t.Run(status.String(), func(t *testing.T) {
			ctx := t.Context()
			a, b := f.NewUser(t), f.NewUser(t)
			conv := f.NewConversation(t, a, b)
			first := f.create(t, conv, a, status, now())

			_, err := f.Store.Create(ctx, newCall(conv, b, calls.Calling, now()), []calls.Participant{{UserID: b}, {UserID: a}})

			requireKind(t, core.Conflict, err)
			ongoing, err := f.Store.Ongoing(ctx, conv)
			require.NoError(t, err)
			assert.Equal(t, first, ongoing, "the first call is untouched")
		})
	}
}

func testCreateAfterTerminal(t *testing.T, f Fixture) {
	for _, status := range []calls.Status{calls.Ended, calls.Declined, calls.Missed} {
		t.Run(status.String(), func(t *testing.T) {
			ctx := t.Context()
			a, b := f.NewUser(t), f.NewUser(t)
			conv := f.NewConversation(t, a, b)
			first := f.create(t, conv, a, calls.Ringing, now())
			require.NoError(t, f.Store.Save(ctx, end(first, status, now())))

			second, err := f.Store.Create(ctx, newCall(conv, b, calls.Calling, now()), []calls.Participant{{UserID: b}})

			require.NoError(t, err)
			ongoing, err := f.Store.Ongoing(ctx, conv)
			require.NoError(t, err)
			assert.Equal(t, second.ID, ongoing.ID)
		})
	}
}

func testCreateConcurrently(t *testing.T, f Fixture) {
	const n = 20
	ctx := t.Context()
	a, b := f.NewUser(t), f.NewUser(t)
	conv := f.NewConversation(t, a, b)

	var wg sync.WaitGroup
	created := make([]calls.Call, n)
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			created[i], errs[i] = f.Store.Create(ctx, newCall(conv, a, calls.Calling, now()), []calls.Participant{{UserID: a}, {UserID: b}})
		})
	}
	wg.Wait()

	var winner calls.Call
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
	ongoing, err := f.Store.Ongoing(ctx, conv)
	require.NoError(t, err)
	assert.Equal(t, winner, ongoing)
}

func testNotFound(t *testing.T, f Fixture) {
	ctx := t.Context()
	a := f.NewUser(t)
	conv := f.NewConversation(t, a)

	_, err := f.Store.Get(ctx, unknownID)
	requireKind(t, core.NotFound, err, "Get")
	_, err = f.Store.Lock(ctx, unknownID)
	requireKind(t, core.NotFound, err, "Lock outside InTx")
	err = f.Store.InTx(ctx, func(tx calls.Store) error {
		_, err := tx.Lock(ctx, unknownID)
		return err
	})
	requireKind(t, core.NotFound, err, "Lock in InTx")
	_, err = f.Store.Ongoing(ctx, conv)
	requireKind(t, core.NotFound, err, "Ongoing of a conversation without calls")
	err = f.Store.Save(ctx, calls.Call{ID: unknownID, Status: calls.Ended, EndedAt: new(now()), UpdatedAt: now()})
	requireKind(t, core.NotFound, err, "Save")
	ps, err := f.Store.Participants(ctx, unknownID)
	require.NoError(t, err)
	assert.Empty(t, ps, "Participants of an unknown call")

	c := f.create(t, conv, a, calls.Ringing, now())
	require.NoError(t, f.Store.Save(ctx, end(c, calls.Missed, now())))
	_, err = f.Store.Ongoing(ctx, conv)
	requireKind(t, core.NotFound, err, "Ongoing once the call is missed")
}

func testOngoing(t *testing.T, f Fixture) {
	ctx := t.Context()
	a, b := f.NewUser(t), f.NewUser(t)
	conv, other := f.NewConversation(t, a, b), f.NewConversation(t, a, b)
	for _, status := range []calls.Status{calls.Ended, calls.Declined, calls.Missed} {
		f.create(t, conv, a, status, now())
	}
	c := f.create(t, conv, a, calls.Calling, now())
	f.create(t, other, b, calls.Active, now())

	for _, status := range []calls.Status{calls.Calling, calls.Ringing, calls.Active} {
		c.Status, c.UpdatedAt = status, now()
		if status == calls.Active {
			c.StartedAt = new(now())
		}
		require.NoError(t, f.Store.Save(ctx, c))

		got, err := f.Store.Ongoing(ctx, conv)

		require.NoError(t, err)
		assert.Equal(t, c, got, status.String())
	}
}

func testSave(t *testing.T, f Fixture) {
	ctx := t.Context()
	a, b := f.NewUser(t), f.NewUser(t)
	conv, other := f.NewConversation(t, a, b), f.NewConversation(t, a, b)
	c := f.create(t, conv, a, calls.Ringing, now().Add(-time.Minute))
	startedAt, endedAt := now().Add(-30*time.Second), now()

	changed := c
	changed.Status, changed.StartedAt, changed.EndedAt, changed.UpdatedAt = calls.Ended, &startedAt, &endedAt, endedAt
	// Save must not write these.
	changed.ConversationID, changed.InitiatorID, changed.Type, changed.CreatedAt = other, b, calls.Video, now()
	require.NoError(t, f.Store.Save(ctx, changed))

	want := c
	want.Status, want.StartedAt, want.EndedAt, want.UpdatedAt = calls.Ended, &startedAt, &endedAt, endedAt
	assert.Equal(t, want, f.get(t, c.ID))
}

func testParticipantsOrder(t *testing.T, f Fixture) {
	ctx := t.Context()
	users := []int64{f.NewUser(t), f.NewUser(t), f.NewUser(t), f.NewUser(t)}
	conv := f.NewConversation(t, users...)
	// Given out of order, and another one put later in the middle.
	c, err := f.Store.Create(ctx, newCall(conv, users[3], calls.Calling, now()), []calls.Participant{
		{UserID: users[3]}, {UserID: users[0]}, {UserID: users[2]},
	})
	require.NoError(t, err)
	require.NoError(t, f.Store.PutParticipant(ctx, calls.Participant{CallID: c.ID, UserID: users[1]}))

	got := f.participants(t, c.ID)

	gotUsers := make([]int64, len(got))
	for i, p := range got {
		gotUsers[i] = p.UserID
		assert.Equal(t, c.ID, p.CallID)
	}
	assert.Equal(t, slices.Sorted(slices.Values(users)), gotUsers)
}

func testPutParticipant(t *testing.T, f Fixture) {
	ctx := t.Context()
	a, b, c := f.NewUser(t), f.NewUser(t), f.NewUser(t)
	conv := f.NewConversation(t, a, b, c)
	at := now().Add(-time.Minute)
	call, err := f.Store.Create(ctx, newCall(conv, a, calls.Active, at), []calls.Participant{
		{UserID: a, JoinedAt: &at}, {UserID: b},
	})
	require.NoError(t, err)
	joined, left := now().Add(-30*time.Second), now()

	require.NoError(t, f.Store.PutParticipant(ctx, calls.Participant{CallID: call.ID, UserID: b, JoinedAt: &joined}))
	require.NoError(t, f.Store.PutParticipant(ctx, calls.Participant{CallID: call.ID, UserID: a, JoinedAt: &at, LeftAt: &left}))
	require.NoError(t, f.Store.PutParticipant(ctx, calls.Participant{CallID: call.ID, UserID: c, JoinedAt: &joined}))

	assert.Equal(t, []calls.Participant{
		{CallID: call.ID, UserID: a, JoinedAt: &at, LeftAt: &left},
		{CallID: call.ID, UserID: b, JoinedAt: &joined},
		{CallID: call.ID, UserID: c, JoinedAt: &joined},
	}, f.participants(t, call.ID))
}

func testDue(t *testing.T, f Fixture) {
	ctx := t.Context()
	a := f.NewUser(t)
	base := now().Add(-time.Hour)
	// One conversation each, as a conversation has one ongoing call at most.
	at := func(minutes int, status calls.Status) calls.Call {
		return f.create(t, f.NewConversation(t, a), a, status, base.Add(time.Duration(minutes)*time.Minute))
	}
	ringing3 := at(3, calls.Ringing)
	calling1 := at(1, calls.Calling)
	ringing2 := at(2, calls.Ringing)
	at(0, calls.Active)
	at(0, calls.Ended)
	at(0, calls.Declined)
	at(0, calls.Missed)
	deadline := base.Add(10 * time.Minute)
	at(10, calls.Ringing) // not before the deadline
	at(20, calls.Calling)

	tests := []struct {
		name  string
		limit int
		want  []int64
	}{
		{"all", 10, []int64{calling1.ID, ringing2.ID, ringing3.ID}},
		{"limited", 2, []int64{calling1.ID, ringing2.ID}},
		{"none", 0, []int64{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := f.Store.Due(ctx, deadline, tc.limit)

			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
		})
	}

	// Inside a transaction it returns the same.
	err := f.Store.InTx(ctx, func(tx calls.Store) error {
		got, err := tx.Due(ctx, deadline, 10)
		assert.Equal(t, []int64{calling1.ID, ringing2.ID, ringing3.ID}, got)
		return err
	})
	require.NoError(t, err)
}

// testDueConcurrently runs two sweepers together, each taking what Due
// gives it and marking it missed in the same transaction. A store that
// locks may run them at once (and must then skip what the other holds);
// one that serializes transactions runs one after the other.
func testDueConcurrently(t *testing.T, f Fixture) {
	const sweepers, perSweep = 2, 3
	ctx := t.Context()
	a := f.NewUser(t)
	base := now().Add(-time.Hour)
	var all []int64
	for i := range sweepers * perSweep {
		all = append(all, f.create(t, f.NewConversation(t, a), a, calls.Ringing, base.Add(time.Duration(i)*time.Second)).ID)
	}

	taken := make([][]int64, sweepers)
	errs := make([]error, sweepers)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range sweepers {
		wg.Go(func() {
			<-start
			errs[i] = f.Store.InTx(ctx, func(tx calls.Store) error {
				ids, err := tx.Due(ctx, base.Add(time.Hour), perSweep)
				if err != nil {
					return err
				}
				taken[i] = ids
				for _, id := range ids {
					c, err := tx.Lock(ctx, id)
					if err != nil {
						return err
					}
					if err := tx.Save(ctx, end(c, calls.Missed, now())); err != nil {
						return err
					}
				}
				return nil
			})
		})
	}
	close(start)
	wg.Wait()

	for i, err := range errs {
		require.NoError(t, err, "sweeper %d", i)
	}
	var got []int64
	for i, ids := range taken {
		assert.Len(t, ids, perSweep, "sweeper %d", i)
		got = append(got, ids...)
	}
	slices.Sort(got)
	assert.Equal(t, all, got, "each due call taken by exactly one sweeper")
	for _, id := range all {
		assert.Equal(t, calls.Missed, f.get(t, id).Status)
	}
}

func testAddLog(t *testing.T, f Fixture) {
	ctx := t.Context()
	a, b := f.NewUser(t), f.NewUser(t)
	conv := f.NewConversation(t, a, b)
	c := f.create(t, conv, a, calls.Ringing, now())
	at := now().In(time.FixedZone("UTC-5", -5*3600))

	got, err := f.Store.AddLog(ctx, logOf(c, at))

	require.NoError(t, err)
	assert.NotZero(t, got.ID)
	want := logOf(c, at.UTC())
	want.ID = got.ID
	assert.Equal(t, want, got)
	assert.Equal(t, []chat.Message{want}, f.logs(t, conv, c.ID))
}

func testCallSummaries(t *testing.T, f Fixture) {
	ctx := t.Context()
	a, b := f.NewUser(t), f.NewUser(t)
	at := now().Add(-time.Hour)
	video := newCall(f.NewConversation(t, a, b), b, calls.Ringing, at)
	video.Type = calls.Video
	ringing, err := f.Store.Create(ctx, video, []calls.Participant{{UserID: b, JoinedAt: &at}})
	require.NoError(t, err)
	over := f.create(t, f.NewConversation(t, a, b), a, calls.Active, at)
	started, ended := at.Add(time.Second), at.Add(91*time.Second)
	over.StartedAt = &started
	require.NoError(t, f.Store.Save(ctx, end(over, calls.Ended, ended)))

	got, err := f.Store.CallSummaries(ctx, []int64{ringing.ID, unknownID, over.ID})

	require.NoError(t, err)
	assert.ElementsMatch(t, []chat.CallSummary{
		{ID: ringing.ID, CallType: int32(calls.Video), Status: int32(calls.Ringing), InitiatorID: b},
		{ID: over.ID, CallType: int32(calls.Audio), Status: int32(calls.Ended), StartedAt: &started, EndedAt: &ended, InitiatorID: a},
	}, got)
	none, err := f.Store.CallSummaries(ctx, []int64{unknownID})
	require.NoError(t, err)
	assert.Empty(t, none)
}

func testDeleteConversation(t *testing.T, f Fixture) {
	ctx := t.Context()
	a := f.NewUser(t)
	conv := f.NewConversation(t, a)
	c := f.create(t, conv, a, calls.Ringing, now())
	_, err := f.Store.AddLog(ctx, logOf(c, now()))
	require.NoError(t, err)

	f.DeleteConversation(t, conv)

	_, err = f.Store.Get(ctx, c.ID)
	requireKind(t, core.NotFound, err, "Get")
	_, err = f.Store.Ongoing(ctx, conv)
	requireKind(t, core.NotFound, err, "Ongoing")
	assert.Empty(t, f.participants(t, c.ID), "Participants")
	summaries, err := f.Store.CallSummaries(ctx, []int64{c.ID})
	require.NoError(t, err)
	assert.Empty(t, summaries, "CallSummaries")
}

func testAddLogAnyMonth(t *testing.T, f Fixture) {
	// The log of a call is written in the transaction that ends it, so
	// storing it may not depend on work outside that transaction, such as
	// a message partition made ahead of time.
	ctx := t.Context()
	a := f.NewUser(t)
	conv := f.NewConversation(t, a)
	c := f.create(t, conv, a, calls.Ringing, now())
	at := time.Date(2041, 7, 4, 12, 0, 0, 0, time.UTC)

	var logged chat.Message
	err := f.Store.InTx(ctx, func(tx calls.Store) error {
		if err := tx.Save(ctx, end(c, calls.Missed, at)); err != nil {
			return err
		}
		var err error
		logged, err = tx.AddLog(ctx, logOf(c, at))
		return err
	})

	require.NoError(t, err)
	assert.Equal(t, []chat.Message{logged}, f.logs(t, conv, c.ID))
}

func testInTxCommit(t *testing.T, f Fixture) {
	ctx := t.Context()
	a, b := f.NewUser(t), f.NewUser(t)
	conv := f.NewConversation(t, a, b)
	var c calls.Call
	var logged chat.Message
	endedAt := now()

	err := f.Store.InTx(ctx, func(tx calls.Store) error {
		var err error
		if c, err = tx.Create(ctx, newCall(conv, a, calls.Calling, now()), []calls.Participant{{UserID: a}}); err != nil {
			return err
		}
		if err := tx.PutParticipant(ctx, calls.Participant{CallID: c.ID, UserID: b}); err != nil {
			return err
		}
		c = end(c, calls.Declined, endedAt)
		if err := tx.Save(ctx, c); err != nil {
			return err
		}
		logged, err = tx.AddLog(ctx, logOf(c, endedAt))
		return err
	})

	require.NoError(t, err)
	assert.Equal(t, c, f.get(t, c.ID))
	assert.Len(t, f.participants(t, c.ID), 2)
	assert.Equal(t, []chat.Message{logged}, f.logs(t, conv, c.ID))
}

func testInTxRollback(t *testing.T, f Fixture) {
	ctx := t.Context()
	a, b := f.NewUser(t), f.NewUser(t)
	conv, other := f.NewConversation(t, a, b), f.NewConversation(t, a, b)
	at := now().Add(-time.Minute)
	c, err := f.Store.Create(ctx, newCall(conv, a, calls.Ringing, at), []calls.Participant{{UserID: a, JoinedAt: &at}, {UserID: b}})
	require.NoError(t, err)
	before := f.participants(t, c.ID)
	var created calls.Call

	err = f.Store.InTx(ctx, func(tx calls.Store) error {
		ended := end(c, calls.Ended, now())
		ended.StartedAt = new(now())
		if err := tx.Save(ctx, ended); err != nil {
			return err
		}
		if err := tx.PutParticipant(ctx, calls.Participant{CallID: c.ID, UserID: b, JoinedAt: new(now()), LeftAt: new(now())}); err != nil {
			return err
		}
		if err := tx.PutParticipant(ctx, calls.Participant{CallID: c.ID, UserID: a, JoinedAt: &at, LeftAt: new(now())}); err != nil {
			return err
		}
		if _, err := tx.AddLog(ctx, logOf(c, now())); err != nil {
			return err
		}
		var err error
		if created, err = tx.Create(ctx, newCall(other, b, calls.Calling, now()), []calls.Participant{{UserID: b}}); err != nil {
			return err
		}
		// The transaction sees its own changes.
		if got, err := tx.Get(ctx, c.ID); err != nil || got.Status != calls.Ended {
			return errors.Join(errors.New("the transaction does not see its Save"), err)
		}
		return errRefused
	})

	require.ErrorIs(t, err, errRefused, "InTx returns fn's error")
	assert.Equal(t, c, f.get(t, c.ID), "Save undone")
	assert.Equal(t, before, f.participants(t, c.ID), "PutParticipant undone")
	assert.Empty(t, f.logs(t, conv, c.ID), "AddLog undone")
	_, err = f.Store.Get(ctx, created.ID)
	requireKind(t, core.NotFound, err, "Create undone")
	_, err = f.Store.Ongoing(ctx, other)
	requireKind(t, core.NotFound, err, "Create undone")
}

func testInTxNested(t *testing.T, f Fixture) {
	ctx := t.Context()
	a := f.NewUser(t)
	conv := f.NewConversation(t, a)
	c := f.create(t, conv, a, calls.Ringing, now())

	err := f.Store.InTx(ctx, func(tx calls.Store) error {
		err := tx.InTx(ctx, func(tx calls.Store) error {
			if err := tx.Save(ctx, end(c, calls.Missed, now())); err != nil {
				return err
			}
			_, err := tx.AddLog(ctx, logOf(c, now()))
			return err
		})
		if err != nil {
			return err
		}
		return errRefused
	})

	require.ErrorIs(t, err, errRefused)
	assert.Equal(t, c, f.get(t, c.ID), "the inner call committed on its own")
	assert.Empty(t, f.logs(t, conv, c.ID), "the inner call committed on its own")
}

func testInTxAfterConflict(t *testing.T, f Fixture) {
	// Two members starting a call together: the loser meets the Conflict
	// inside its transaction and may still act in it.
	ctx := t.Context()
	a, b := f.NewUser(t), f.NewUser(t)
	conv := f.NewConversation(t, a, b)
	first := f.create(t, conv, a, calls.Ringing, now())

	err := f.Store.InTx(ctx, func(tx calls.Store) error {
		_, err := tx.Create(ctx, newCall(conv, b, calls.Calling, now()), []calls.Participant{{UserID: b}})
		if !core.Is(err, core.Conflict) {
			return errors.Join(errors.New("second ongoing call"), err)
		}
		c, err := tx.Lock(ctx, first.ID)
		if err != nil {
			return err
		}
		return tx.PutParticipant(ctx, calls.Participant{CallID: c.ID, UserID: b, JoinedAt: new(now())})
	})

	require.NoError(t, err)
	assert.Len(t, f.participants(t, first.ID), 2, "the transaction committed what followed the Conflict")
}

// testTerminalRace is how the service ends a call: REST, WebSocket and the
// missed-call sweeper may all try at once, and the call must end and be
// logged exactly once.
func testTerminalRace(t *testing.T, f Fixture) {
	const n = 20
	ctx := t.Context()
	a, b := f.NewUser(t), f.NewUser(t)
	conv := f.NewConversation(t, a, b)
	c := f.create(t, conv, a, calls.Ringing, now())
	terminal := []calls.Status{calls.Ended, calls.Declined, calls.Missed}

	var mu sync.Mutex
	var winners []calls.Call
	errs := make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			errs[i] = f.Store.InTx(ctx, func(tx calls.Store) error {
				locked, err := tx.Lock(ctx, c.ID)
				if err != nil || !locked.Status.Ongoing() {
					return err
				}
				// Widens the window in which a store that does not hold
				// the call would let another transaction read it as ongoing.
				time.Sleep(time.Millisecond)
				ended := end(locked, terminal[i%len(terminal)], now())
				if err := tx.Save(ctx, ended); err != nil {
					return err
				}
				if _, err := tx.AddLog(ctx, logOf(ended, now())); err != nil {
					return err
				}
				mu.Lock()
				winners = append(winners, ended)
				mu.Unlock()
				return nil
			})
		})
	}
	close(start)
	wg.Wait()

	for i, err := range errs {
		require.NoError(t, err, "goroutine %d", i)
	}
	require.Len(t, winners, 1)
	assert.Equal(t, winners[0], f.get(t, c.ID))
	assert.Len(t, f.logs(t, conv, c.ID), 1)
}

func testStaleActive(t *testing.T, f Fixture) {
	ctx := t.Context()
	a := f.NewUser(t)
	base := now().Add(-time.Hour)
	at := func(minutes int, status calls.Status) calls.Call {
		return f.create(t, f.NewConversation(t, a), a, status, base.Add(time.Duration(minutes)*time.Minute))
	}
	active3 := at(3, calls.Active)
	active1 := at(1, calls.Active)
	at(0, calls.Ringing)
	at(0, calls.Calling)
	at(0, calls.Ended)
	at(20, calls.Active) // updated after the deadline
	deadline := base.Add(10 * time.Minute)

	got, err := f.Store.StaleActive(ctx, deadline, 10)
	require.NoError(t, err)
	assert.Equal(t, []int64{active1.ID, active3.ID}, got)
	got, err = f.Store.StaleActive(ctx, deadline, 1)
	require.NoError(t, err)
	assert.Equal(t, []int64{active1.ID}, got)

	// A change moves a call out of the stale set.
	touched := active1
	touched.UpdatedAt = deadline.Add(time.Minute)
	require.NoError(t, f.Store.Save(ctx, touched))
	got, err = f.Store.StaleActive(ctx, deadline, 10)
	require.NoError(t, err)
	assert.Equal(t, []int64{active3.ID}, got)
}

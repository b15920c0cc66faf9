package calls_test

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/chatterly/chatterly/adapters/memory"
	"github.com/chatterly/chatterly/core"
	"github.com/chatterly/chatterly/core/calls"
	"github.com/chatterly/chatterly/core/chat"
	"github.com/chatterly/chatterly/core/users"
)

type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

type recorder struct {
	mu     sync.Mutex
	events map[string][]string
}

func (r *recorder) PublishTransient(ctx context.Context, stream string, payload []byte) error {
	return r.Publish(ctx, stream, payload)
}

func (r *recorder) Publish(_ context.Context, stream string, payload []byte) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events[stream] = append(r.events[stream], string(payload))
	return nil
}

// PublishEvicting records the event; evictions are chat's to test.
func (r *recorder) PublishEvicting(ctx context.Context, stream string, payload []byte, _ chat.Eviction) error {
	return r.Publish(ctx, stream, payload)
}

func (r *recorder) take(stream string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.events[stream]
	delete(r.events, stream)
	return out
}

// types lists the "type" of each event.
func types(events []string) []string {
	var out []string
	for _, e := range events {
		var v struct{ Type string }
		_ = json.Unmarshal([]byte(e), &v)
		out = append(out, v.Type)
	}
	return out
}

type fixture struct {
	svc   *calls.Service
	chat  *chat.Service
	chats *memory.ChatStore
	users *memory.UserStore
	pres  *memory.Presence
	calls *memory.CallStore
	pub   *recorder
	clock *clock
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{chats: memory.NewChatStore(), users: memory.NewUserStore(), pres: memory.NewPresence(),
		pub: &recorder{events: map[string][]string{}}, clock: &clock{now: time.Date(2026, 3, 7, 18, 0, 0, 0, time.UTC)}}
	f.calls = memory.NewCallStore(f.chats)
	f.chat = chat.NewService(chat.Deps{Store: f.chats, Calls: f.calls, Users: f.users, Presence: f.pres, Publisher: f.pub, Now: f.clock.Now})
	f.svc = calls.NewService(calls.Deps{
		Store: f.calls, Members: f.chats, Users: f.users, Online: f.pres, Publisher: f.pub,
		Messages: f.chat, RingTimeout: 30 * time.Second, Now: f.clock.Now,
	})
	return f
}

func (f *fixture) user(t *testing.T, name string) int64 {
	t.Helper()
	u, err := f.users.Create(context.Background(), users.NewUser{Email: name + "@x.io", Username: name, PasswordHash: "h", CreatedAt: time.Now()})
	require.NoError(t, err)
	return u.ID
}

func (f *fixture) conversation(t *testing.T, kind string, owner int64, others ...int64) int64 {
	t.Helper()
	name := "team"
	v, _, err := f.chat.CreateConversation(context.Background(), owner, chat.ConversationInput{Type: kind, Name: &name, MemberIDs: others})
	require.NoError(t, err)
	return v.ID
}

// logs returns the call messages of a conversation.
func (f *fixture) logs(t *testing.T, convID, reader int64) []chat.MessageView {
	t.Helper()
	page, err := f.chat.History(context.Background(), reader, convID, 0, 100, true)
	require.NoError(t, err)
	var out []chat.MessageView
	for _, m := range page.Messages {
		if m.MessageType == "call" {
			out = append(out, m)
		}
	}
	return out
}

func TestDirectCallLifecycle(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	alice, bob := f.user(t, "alice"), f.user(t, "bob")
	dm := f.conversation(t, "direct", alice, bob)

	v, err := f.svc.Initiate(ctx, alice, dm, "video")
	require.NoError(t, err)
	assert.Equal(t, "calling", v.Status, "nobody online: the ring reached no one")
	assert.Equal(t, []string{"incoming_call"}, types(f.pub.take(calls.Stream(bob))))
	assert.Empty(t, f.pub.take(calls.Stream(alice)))

	_, err = f.svc.Initiate(ctx, bob, dm, "audio")
	assert.Equal(t, core.Conflict, core.KindOf(err), "one ongoing call per conversation")
	_, err = f.svc.Accept(ctx, alice, dm, v.ID)
	assert.Equal(t, core.Forbidden, core.KindOf(err), "the initiator cannot accept")

	f.clock.Advance(2 * time.Second)
	v, err = f.svc.Accept(ctx, bob, dm, v.ID)
	require.NoError(t, err)
	assert.Equal(t, "active", v.Status)
	assert.Equal(t, []string{"call_accepted"}, types(f.pub.take(calls.Stream(alice))))
	active, err := f.svc.Active(ctx, alice, dm)
	require.NoError(t, err)
	require.Len(t, active.Participants, 2)

	f.clock.Advance(95*time.Second + 500*time.Millisecond)
	require.NoError(t, f.svc.End(ctx, bob, dm, v.ID))
	assert.Equal(t, []string{"call_ended"}, types(f.pub.take(calls.Stream(alice))))
	assert.Empty(t, f.pub.take(calls.Stream(bob)), "not to the one who ended it")
	assert.Equal(t, []string{"new_message"}, types(f.pub.take(chat.ConversationStream(dm))))

	logs := f.logs(t, dm, bob)
	require.Len(t, logs, 1)
	assert.Equal(t, alice, logs[0].User.ID, "attributed to the initiator")
	require.NotNil(t, logs[0].CallSession)
	assert.Equal(t, "ended", logs[0].CallSession.Status)
	assert.Equal(t, int64(95), *logs[0].CallSession.Duration)

	require.NoError(t, f.svc.End(ctx, alice, dm, v.ID), "ending again is a no-op")
	assert.Len(t, f.logs(t, dm, bob), 1)
	assert.Empty(t, f.pub.take(calls.Stream(bob)))
	_, err = f.svc.Accept(ctx, bob, dm, v.ID)
	var ce *core.Error
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, "Call is no longer ringing", ce.Message)
	_, err = f.svc.Active(ctx, alice, dm)
	assert.Equal(t, core.NotFound, core.KindOf(err))
}

func TestRingingWhenSomeoneIsOnline(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	alice, bob := f.user(t, "alice"), f.user(t, "bob")
	dm := f.conversation(t, "direct", alice, bob)
	_, err := f.pres.Touch(ctx, bob, "c", time.Minute)
	require.NoError(t, err)
	v, err := f.svc.Initiate(ctx, alice, dm, "audio")
	require.NoError(t, err)
	assert.Equal(t, "ringing", v.Status)
}

func TestDeclineAndMissed(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	alice, bob := f.user(t, "alice"), f.user(t, "bob")
	dm := f.conversation(t, "direct", alice, bob)

	v, err := f.svc.Initiate(ctx, alice, dm, "audio")
	require.NoError(t, err)
	f.pub.take(calls.Stream(bob))
	v, err = f.svc.Decline(ctx, bob, dm, v.ID)
	require.NoError(t, err)
	assert.Equal(t, "declined", v.Status)
	assert.Equal(t, []string{"call_declined", "call_ended"}, types(f.pub.take(calls.Stream(alice))))
	assert.Equal(t, []string{"call_declined", "new_message"}, types(f.pub.take(chat.ConversationStream(dm))))

	v, err = f.svc.Initiate(ctx, alice, dm, "audio")
	require.NoError(t, err, "a new call once the last ended")
	f.pub.take(calls.Stream(bob))
	f.clock.Advance(29 * time.Second)
	require.NoError(t, f.svc.Sweep(ctx))
	assert.Empty(t, f.pub.take(calls.Stream(bob)), "not yet")
	f.clock.Advance(2 * time.Second)
	require.NoError(t, f.svc.Sweep(ctx))
	assert.Equal(t, []string{"call_ended"}, types(f.pub.take(calls.Stream(bob))), "the callee's dialog closes")
	assert.Equal(t, []string{"call_ended"}, types(f.pub.take(calls.Stream(alice))))
	require.NoError(t, f.svc.Sweep(ctx))
	logs := f.logs(t, dm, alice)
	require.Len(t, logs, 2)
	assert.Equal(t, "missed", logs[1].CallSession.Status)
	assert.Nil(t, logs[1].CallSession.Duration)
	_, err = f.svc.Accept(ctx, bob, dm, v.ID)
	assert.Equal(t, core.Invalid, core.KindOf(err), "too late")
}

func TestGroupCall(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	a, b, c := f.user(t, "alice"), f.user(t, "bob"), f.user(t, "carol")
	g := f.conversation(t, "group", a, b, c)
	v, err := f.svc.Initiate(ctx, a, g, "video")
	require.NoError(t, err)
	_, err = f.svc.Accept(ctx, b, g, v.ID)
	require.NoError(t, err)
	f.pub.take(calls.Stream(a))
	_, err = f.svc.Accept(ctx, c, g, v.ID)
	require.NoError(t, err, "late join while active")
	assert.Contains(t, types(f.pub.take(calls.Stream(b))), "participant_joined")

	require.NoError(t, f.svc.End(ctx, c, g, v.ID))
	assert.Equal(t, []string{"participant_left"}, types(f.pub.take(calls.Stream(b))), "carol only leaves")
	active, err := f.svc.Active(ctx, a, g)
	require.NoError(t, err)
	assert.Equal(t, "active", active.Status)
	assert.Len(t, active.Participants, 2)

	require.NoError(t, f.svc.End(ctx, b, g, v.ID))
	_, err = f.svc.Active(ctx, a, g)
	assert.Equal(t, core.NotFound, core.KindOf(err), "fewer than two remain: ended")
	assert.Len(t, f.logs(t, g, a), 1)
}

func TestSignalOnlyBetweenParticipants(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	a, b, stranger := f.user(t, "alice"), f.user(t, "bob"), f.user(t, "mallory")
	dm := f.conversation(t, "direct", a, b)
	v, err := f.svc.Initiate(ctx, a, dm, "video")
	require.NoError(t, err)
	f.pub.take(calls.Stream(b))
	offer := json.RawMessage(`{"type":"offer","sdp":"v=0\r\no=- 1 2 IN IP4 127.0.0.1"}`)
	require.NoError(t, f.svc.Signal(ctx, a, v.ID, b, offer), "while ringing, the initiator may send the callee an offer")
	got := f.pub.take(calls.Stream(b))
	require.Len(t, got, 1)
	assert.True(t, strings.HasSuffix(got[0], `"signal":`+string(offer)+`}`), "relayed untouched: %s", got[0])

	assert.Equal(t, core.Forbidden, core.KindOf(f.svc.Signal(ctx, stranger, v.ID, b, offer)))
	assert.Equal(t, core.Forbidden, core.KindOf(f.svc.Signal(ctx, a, v.ID, stranger, offer)))
	assert.Empty(t, f.pub.take(calls.Stream(b)))
	assert.Empty(t, f.pub.take(calls.Stream(stranger)))

	require.NoError(t, f.svc.Toggle(ctx, a, v.ID, false, true))
	assert.Empty(t, f.pub.take(calls.Stream(b)), "bob has not joined yet")
	_, err = f.svc.Accept(ctx, b, dm, v.ID)
	require.NoError(t, err)
	require.NoError(t, f.svc.Toggle(ctx, a, v.ID, true, true))
	assert.Equal(t, []string{`{"type":"participant_camera_toggled","call_session_id":` + strconv.FormatInt(v.ID, 10) + `,"user_id":` + strconv.FormatInt(a, 10) + `,"camera_off":true}`}, f.pub.take(calls.Stream(b)))
}

// Whichever of accept, decline, end and the timer reaches a terminal
// state first wins; the rest are no-ops, and one log is written.
func TestTerminalTransitionRace(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	a, b := f.user(t, "alice"), f.user(t, "bob")
	dm := f.conversation(t, "direct", a, b)
	v, err := f.svc.Initiate(ctx, a, dm, "audio")
	require.NoError(t, err)
	f.clock.Advance(31 * time.Second)
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			switch i % 4 {
			case 0:
				_, _ = f.svc.Accept(ctx, b, dm, v.ID)
			case 1:
				_, _ = f.svc.Decline(ctx, b, dm, v.ID)
			case 2:
				_ = f.svc.End(ctx, []int64{a, b}[i%2], dm, v.ID)
			case 3:
				_ = f.svc.Sweep(ctx)
			}
		})
	}
	wg.Wait()
	require.NoError(t, f.svc.End(ctx, a, dm, v.ID), "whatever state it reached, end it")
	assert.Len(t, f.logs(t, dm, a), 1)
}

// A participant offline for the grace period leaves the call; the call
// ends when fewer than two remain: crashed clients never hang up.
func TestAbsentParticipantsLeave(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	a, b, c := f.user(t, "alice"), f.user(t, "bob"), f.user(t, "carol")
	g := f.conversation(t, "group", a, b, c)
	for _, u := range []int64{a, b, c} {
		_, err := f.pres.Touch(ctx, u, "conn", time.Hour)
		require.NoError(t, err)
	}
	v, err := f.svc.Initiate(ctx, a, g, "audio")
	require.NoError(t, err)
	_, err = f.svc.Accept(ctx, b, g, v.ID)
	require.NoError(t, err)
	_, err = f.svc.Accept(ctx, c, g, v.ID)
	require.NoError(t, err)
	f.pub.take(calls.Stream(a))
	f.pub.take(calls.Stream(b))

	sweep := func(after time.Duration) {
		t.Helper()
		f.clock.Advance(after)
		require.NoError(t, f.svc.SweepAbsent(ctx))
	}
	sweep(2 * time.Minute)
	sweep(2 * time.Minute)
	active, err := f.svc.Active(ctx, a, g)
	require.NoError(t, err, "everyone is online: the call goes on")
	assert.Len(t, active.Participants, 3)

	_, err = f.pres.Leave(ctx, c, "conn")
	require.NoError(t, err)
	sweep(time.Second)
	sweep(29 * time.Second)
	active, err = f.svc.Active(ctx, a, g)
	require.NoError(t, err)
	assert.Len(t, active.Participants, 3, "not offline for the whole grace period yet")
	sweep(time.Second)
	active, err = f.svc.Active(ctx, a, g)
	require.NoError(t, err, "two remain: the call goes on")
	assert.Len(t, active.Participants, 2)
	assert.Equal(t, []string{"participant_left"}, types(f.pub.take(calls.Stream(a))))
	assert.Equal(t, []string{"participant_left"}, types(f.pub.take(calls.Stream(b))))
	assert.Empty(t, f.logs(t, g, a))

	// bob drops out briefly: the grace starts again when he is back.
	_, err = f.pres.Leave(ctx, b, "conn")
	require.NoError(t, err)
	sweep(time.Second)
	sweep(20 * time.Second)
	_, err = f.pres.Touch(ctx, b, "conn2", time.Hour)
	require.NoError(t, err)
	sweep(time.Second)
	_, err = f.pres.Leave(ctx, b, "conn2")
	require.NoError(t, err)
	sweep(time.Second)
	sweep(20 * time.Second)
	_, err = f.svc.Active(ctx, a, g)
	require.NoError(t, err, "bob was back within the grace period")

	sweep(10 * time.Second)
	_, err = f.svc.Active(ctx, a, g)
	assert.Equal(t, core.NotFound, core.KindOf(err), "one participant left: ended")
	assert.Equal(t, []string{"call_ended"}, types(f.pub.take(calls.Stream(a))))
	logs := f.logs(t, g, a)
	require.Len(t, logs, 1)
	assert.Equal(t, "ended", logs[0].CallSession.Status)
	sweep(time.Minute)
	assert.Len(t, f.logs(t, g, a), 1, "one log")
}

// Exactly one call_accepted per call; a late accept joins without it, and
// the callees still ringing are told that someone else answered.
func TestGroupAnswerOnce(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	a, b, c, d := f.user(t, "alice"), f.user(t, "bob"), f.user(t, "carol"), f.user(t, "dave")
	g := f.conversation(t, "group", a, b, c, d)
	v, err := f.svc.Initiate(ctx, a, g, "video")
	require.NoError(t, err)
	for _, u := range []int64{b, c, d} {
		f.pub.take(calls.Stream(u))
	}
	_, err = f.svc.Decline(ctx, d, g, v.ID)
	require.NoError(t, err)
	assert.Equal(t, []string{"participant_declined"}, types(f.pub.take(calls.Stream(a))), "one decline of several is no call_declined")
	assert.Equal(t, []string{"participant_declined"}, types(f.pub.take(chat.ConversationStream(g))))

	_, err = f.svc.Accept(ctx, b, g, v.ID)
	require.NoError(t, err)
	assert.Equal(t, []string{"call_accepted"}, types(f.pub.take(calls.Stream(a))))
	id := strconv.FormatInt(v.ID, 10)
	answered := `{"type":"call_ended","call_session_id":` + id + `,"reason":"answered_by_other"}`
	assert.Equal(t, []string{answered}, f.pub.take(calls.Stream(c)), "carol stops ringing")
	assert.Equal(t, []string{answered}, f.pub.take(calls.Stream(d)))
	assert.Empty(t, f.pub.take(calls.Stream(b)))

	_, err = f.svc.Accept(ctx, b, g, v.ID)
	require.NoError(t, err, "accepting again changes nothing")
	_, err = f.svc.Accept(ctx, c, g, v.ID)
	require.NoError(t, err, "a late join")
	assert.Equal(t, []string{"participant_joined"}, types(f.pub.take(calls.Stream(a))), "no second call_accepted")
	assert.Equal(t, []string{"participant_joined"}, types(f.pub.take(calls.Stream(b))))
	assert.Empty(t, f.pub.take(calls.Stream(c)))
	active, err := f.svc.Active(ctx, a, g)
	require.NoError(t, err)
	assert.Len(t, active.Participants, 3)
}

// A new call replaces an active one that nobody is connected to; one that
// people are in still answers Conflict.
func TestInitiateReplacesDesertedCall(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	a, b := f.user(t, "alice"), f.user(t, "bob")
	dm := f.conversation(t, "direct", a, b)
	_, err := f.pres.Touch(ctx, b, "conn", time.Hour)
	require.NoError(t, err)
	v, err := f.svc.Initiate(ctx, a, dm, "audio")
	require.NoError(t, err)
	f.pub.take(calls.Stream(b))
	_, err = f.svc.Initiate(ctx, b, dm, "audio")
	assert.Equal(t, core.Conflict, core.KindOf(err), "a ringing call is never replaced")
	_, err = f.svc.Accept(ctx, b, dm, v.ID)
	require.NoError(t, err)
	_, err = f.svc.Initiate(ctx, a, dm, "audio")
	assert.Equal(t, core.Conflict, core.KindOf(err), "bob is connected")

	_, err = f.pres.Leave(ctx, b, "conn")
	require.NoError(t, err)
	f.pub.take(calls.Stream(a))
	next, err := f.svc.Initiate(ctx, a, dm, "video")
	require.NoError(t, err, "nobody is connected to the active call")
	assert.NotEqual(t, v.ID, next.ID)
	assert.Equal(t, []string{"call_ended", "incoming_call"}, types(f.pub.take(calls.Stream(b))))
	logs := f.logs(t, dm, a)
	require.Len(t, logs, 1)
	assert.Equal(t, "ended", logs[0].CallSession.Status)
}

// Every action from every state: what it leads to, or how it is refused.
func TestTransitions(t *testing.T) {
	ctx := context.Background()
	type outcome struct {
		status string // the call's status afterwards
		kind   core.Kind
		err    bool
	}
	ok := func(s string) outcome { return outcome{status: s} }
	refused := func(s string, k core.Kind) outcome { return outcome{status: s, kind: k, err: true} }
	states := []calls.Status{calls.Calling, calls.Ringing, calls.Active, calls.Ended, calls.Declined, calls.Missed}
	names := []string{"calling", "ringing", "active", "ended", "declined", "missed"}
	cases := map[string][]outcome{
		// accept by the callee
		"accept": {ok("active"), ok("active"), ok("active"), refused("ended", core.Invalid), refused("declined", core.Invalid), refused("missed", core.Invalid)},
		// accept by the initiator: never
		"accept own": {refused("calling", core.Forbidden), refused("ringing", core.Forbidden), refused("active", core.Forbidden), refused("ended", core.Forbidden), refused("declined", core.Forbidden), refused("missed", core.Forbidden)},
		"decline":    {ok("declined"), ok("declined"), refused("active", core.Invalid), refused("ended", core.Invalid), refused("declined", core.Invalid), refused("missed", core.Invalid)},
		// ending a terminal call is a no-op, not an error
		"end": {ok("ended"), ok("ended"), ok("ended"), ok("ended"), ok("declined"), ok("missed")},
		// the sweeper, past the ring timeout
		"timeout": {ok("missed"), ok("missed"), ok("active"), ok("ended"), ok("declined"), ok("missed")},
	}
	for action, outcomes := range cases {
		for i, from := range states {
			t.Run(action+" from "+names[i], func(t *testing.T) {
				f := newFixture(t)
				a, b := f.user(t, "alice"), f.user(t, "bob")
				dm := f.conversation(t, "direct", a, b)
				now := f.clock.Now()
				c := calls.Call{ConversationID: dm, InitiatorID: a, Type: calls.Audio, Status: from, CreatedAt: now, UpdatedAt: now}
				parts := []calls.Participant{{UserID: a, JoinedAt: &now}}
				if from == calls.Active {
					c.StartedAt = &now
					parts = append(parts, calls.Participant{UserID: b, JoinedAt: &now})
				}
				if !from.Ongoing() {
					c.EndedAt = &now
				}
				c, err := f.calls.Create(ctx, c, parts)
				require.NoError(t, err)
				before := len(f.logs(t, dm, a))
				switch action {
				case "accept":
					_, err = f.svc.Accept(ctx, b, dm, c.ID)
				case "accept own":
					_, err = f.svc.Accept(ctx, a, dm, c.ID)
				case "decline":
					_, err = f.svc.Decline(ctx, b, dm, c.ID)
				case "end":
					err = f.svc.End(ctx, a, dm, c.ID)
				case "timeout":
					f.clock.Advance(31 * time.Second)
					err = f.svc.Sweep(ctx)
				}
				want := outcomes[i]
				if want.err {
					require.Error(t, err)
					assert.Equal(t, want.kind, core.KindOf(err))
				} else {
					require.NoError(t, err)
				}
				got, err := f.calls.Get(ctx, c.ID)
				require.NoError(t, err)
				assert.Equal(t, want.status, names[got.Status])
				logs := len(f.logs(t, dm, a)) - before
				if from.Ongoing() && !got.Status.Ongoing() {
					assert.Equal(t, 1, logs, "a terminal transition writes one log")
				} else {
					assert.Zero(t, logs, "no terminal transition, no log")
				}
			})
		}
	}
}

package main_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	main "github.com/chatterly/chatterly/cmd/chatterly"
	"github.com/chatterly/chatterly/core/chat"
)

// quiet is how long a stream must stay silent to count as "no event".
const quiet = 200 * time.Millisecond

// recorder wraps a stack's broker: every event the stack publishes passes
// through it, so tests watch streams without a socket in their way.
type recorder struct {
	main.Broker

	mu       sync.Mutex
	watchers map[string][]chan []byte
}

func (r *recorder) wrap(a *main.Adapters) {
	r.Broker = a.Broker
	a.Broker = r
}

// Publish passes on only what the broker took: a failed publish reaches no subscriber either.
func (r *recorder) Publish(ctx context.Context, stream string, payload []byte) error {
	return r.record(stream, payload, r.Broker.Publish(ctx, stream, payload))
}

func (r *recorder) PublishEvicting(ctx context.Context, stream string, payload []byte, ev chat.Eviction) error {
	return r.record(stream, payload, r.Broker.PublishEvicting(ctx, stream, payload, ev))
}

func (r *recorder) record(stream string, payload []byte, err error) error {
	if err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, ch := range r.watchers[stream] {
		select {
		case ch <- bytes.Clone(payload):
		default: // a watcher 256 events behind loses the excess
		}
	}
	return nil
}

// watch delivers every event published to stream from now until stop.
func (r *recorder) watch(stream string) (events <-chan []byte, stop func()) {
	ch := make(chan []byte, 256)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.watchers == nil {
		r.watchers = make(map[string][]chan []byte)
	}
	r.watchers[stream] = append(r.watchers[stream], ch)
	return ch, func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		r.watchers[stream] = slices.DeleteFunc(r.watchers[stream], func(c chan []byte) bool { return c == ch })
	}
}

// eventStream is a test subscription to one stream.
type eventStream struct {
	name string
	ch   <-chan []byte
}

// subscribe watches what s publishes to stream until the test ends.
func (s *stack) subscribe(t *testing.T, stream string) *eventStream {
	t.Helper()
	ch, stop := s.events.watch(stream)
	t.Cleanup(stop)
	return &eventStream{name: stream, ch: ch}
}

func userStream(a account) string { return "user_" + itoa(a.id) }
func convStream(cid int64) string { return "conversation_" + itoa(cid) }

// next waits for the next event and returns it raw.
func (e *eventStream) next(t *testing.T) []byte {
	t.Helper()
	select {
	case p, ok := <-e.ch:
		require.True(t, ok, "stream %s closed", e.name)
		return p
	case <-time.After(5 * time.Second):
		require.FailNow(t, "no event", "nothing on %s within 5s", e.name)
	}
	return nil
}

// none asserts that nothing arrives on the stream for a while.
func (e *eventStream) none(t *testing.T, why string) {
	t.Helper()
	select {
	case p, ok := <-e.ch:
		if ok {
			t.Errorf("%s: unexpected event on %s: %s", why, e.name, p)
		}
	case <-time.After(quiet):
	}
}

// drain returns every event that arrives until the stream stays quiet.
func (e *eventStream) drain() []string {
	var out []string
	for {
		select {
		case p, ok := <-e.ch:
			if !ok {
				return out
			}
			out = append(out, string(p))
		case <-time.After(2 * quiet):
			return out
		}
	}
}

// one returns the only event of an action, decoded, and checks that no
// second one follows.
func (e *eventStream) one(t *testing.T) map[string]any {
	t.Helper()
	p := e.next(t)
	e.none(t, "exactly one event per action")
	var m map[string]any
	require.NoError(t, json.Unmarshal(p, &m), "event: %s", p)
	return m
}

// oneRaw is one for events compared as exact JSON.
func (e *eventStream) oneRaw(t *testing.T) string {
	t.Helper()
	p := e.next(t)
	e.none(t, "exactly one event per action")
	return string(p)
}

// assertEvent checks an event's type and that its embedded object equals
// what the HTTP response said, ignoring "online".
func assertEvent(t *testing.T, ev map[string]any, typ, key string, want any) {
	t.Helper()
	assert.ElementsMatch(t, []string{"type", key}, keys(ev), "event keys: %v", ev)
	assert.Equal(t, typ, ev["type"])
	assertSameObject(t, want, ev[key], "%s carries what the response returned", typ)
}

func TestChatEvents(t *testing.T) {
	eachMode(t, func(t *testing.T, m mode) {
		s := start(t, raised(m.config(t), "register_ip"))

		t.Run("new_conversation", func(t *testing.T) {
			u := s.freshUsers()
			aliceUser, bobUser, carolUser := s.subscribe(t, userStream(u.alice)), s.subscribe(t, userStream(u.bob)), s.subscribe(t, userStream(u.carol))

			r := s.do("POST", conversationsPath, u.alice.token, map[string]any{"name": "  ", "member_ids": []int64{u.bob.id}})
			require.Equal(t, http.StatusUnprocessableEntity, r.status, "%s", r.raw)
			r = s.do("POST", conversationsPath, u.alice.token, map[string]any{"conversation_type": "direct", "member_ids": []int64{u.bob.id, u.carol.id}})
			require.Equal(t, http.StatusUnprocessableEntity, r.status, "%s", r.raw)
			bobUser.none(t, "a failed create publishes nothing")
			carolUser.none(t, "a failed create publishes nothing")

			team := s.createGroup(t, u.alice, "Team", u.bob, u.carol)
			for _, st := range []*eventStream{bobUser, carolUser} {
				ev := st.one(t)
				assertEvent(t, ev, "new_conversation", "conversation", team)
				assertConversation(t, ev["conversation"])
			}
			aliceUser.none(t, "the creator is not told")

			daveUser := s.subscribe(t, userStream(u.dave))
			r = s.do("POST", conversationsPath, u.alice.token, map[string]any{"conversation_type": "direct", "member_ids": []int64{u.dave.id}})
			require.Equal(t, http.StatusCreated, r.status, "%s", r.raw)
			dm := dataOf(t, r)
			assertEvent(t, daveUser.one(t), "new_conversation", "conversation", dm)
			aliceUser.none(t, "the creator is not told")

			r = s.do("POST", conversationsPath, u.alice.token, map[string]any{"conversation_type": "direct", "member_ids": []int64{u.dave.id}})
			require.Equal(t, http.StatusOK, r.status, "%s", r.raw)
			r = s.do("POST", conversationsPath, u.dave.token, map[string]any{"conversation_type": "direct", "member_ids": []int64{u.alice.id}})
			require.Equal(t, http.StatusOK, r.status, "%s", r.raw)
			daveUser.none(t, "finding an existing DM publishes nothing")
			aliceUser.none(t, "finding an existing DM publishes nothing")
			bobUser.none(t, "not a member")
		})

		t.Run("messages", func(t *testing.T) {
			u := s.freshUsers()
			g := num(t, s.createGroup(t, u.alice, "g", u.bob, u.carol)["id"])
			h := num(t, s.createGroup(t, u.alice, "h", u.dave)["id"])
			gs, hs := s.subscribe(t, convStream(g)), s.subscribe(t, convStream(h))

			for _, bad := range []struct {
				name string
				who  account
				body any
			}{
				{"blank", u.bob, map[string]any{"content": ""}},
				{"too long", u.bob, map[string]any{"content": strings.Repeat("a", 4001)}},
				{"call", u.bob, map[string]any{"content": "x", "message_type": "call"}},
				{"non-member", u.dave, map[string]any{"content": "x"}},
				{"malformed", u.bob, `{"content":`},
			} {
				r := s.do("POST", messagesPath(g), bad.who.token, bad.body)
				require.GreaterOrEqual(t, r.status, 400, "%s: %s", bad.name, r.raw)
			}
			gs.none(t, "failed sends publish nothing")

			r := s.do("POST", messagesPath(g), u.bob.token, map[string]any{"content": "hello"})
			require.Equal(t, http.StatusCreated, r.status, "%s", r.raw)
			msg := dataOf(t, r)
			ev := gs.one(t)
			assertEvent(t, ev, "new_message", "message", msg)
			assertMessage(t, ev["message"])
			hs.none(t, "other conversations hear nothing")
			mid := num(t, msg["id"])

			r = s.do("POST", messagesPath(g), u.carol.token, map[string]any{"content": "reply", "parent_message_id": mid, "message_type": "file"})
			require.Equal(t, http.StatusCreated, r.status, "%s", r.raw)
			assertEvent(t, gs.one(t), "new_message", "message", dataOf(t, r))

			for _, bad := range []struct {
				name string
				who  account
				body any
			}{
				{"admin on another's message", u.alice, map[string]any{"content": "x"}},
				{"member on another's message", u.carol, map[string]any{"content": "x"}},
				{"non-member", u.dave, map[string]any{"content": "x"}},
				{"blank", u.bob, map[string]any{"content": ""}},
			} {
				r := s.do("PATCH", messagePath(g, mid), bad.who.token, bad.body)
				require.GreaterOrEqual(t, r.status, 400, "%s: %s", bad.name, r.raw)
			}
			gs.none(t, "failed edits publish nothing")

			r = s.do("PATCH", messagePath(g, mid), u.bob.token, map[string]any{"content": "hello, edited"})
			require.Equal(t, http.StatusOK, r.status, "%s", r.raw)
			edited := r.json(t)
			ev = gs.one(t)
			assertEvent(t, ev, "message_edited", "message", edited)
			assertMessage(t, ev["message"])
			assert.NotNil(t, obj(t, ev["message"])["edited_at"])

			for _, bad := range []struct {
				name string
				who  account
			}{
				{"member on another's message", u.carol},
				{"non-member", u.dave},
			} {
				r := s.do("DELETE", messagePath(g, mid), bad.who.token, nil)
				require.GreaterOrEqual(t, r.status, 400, "%s: %s", bad.name, r.raw)
			}
			gs.none(t, "failed deletes publish nothing")

			r = s.do("DELETE", messagePath(g, mid), u.alice.token, nil)
			require.Equal(t, http.StatusOK, r.status, "%s", r.raw)
			assert.JSONEq(t, `{"type":"message_deleted","message_id":`+itoa(mid)+`}`, gs.oneRaw(t))

			r = s.do("DELETE", messagePath(g, mid), u.bob.token, nil)
			require.Equal(t, http.StatusNotFound, r.status, "%s", r.raw)
			r = s.do("PATCH", messagePath(g, mid), u.bob.token, map[string]any{"content": "too late"})
			require.Equal(t, http.StatusNotFound, r.status, "%s", r.raw)
			gs.none(t, "nothing happens to a deleted message")
			hs.none(t, "other conversations hear nothing")
		})

		t.Run("reactions", func(t *testing.T) {
			u := s.freshUsers()
			g := num(t, s.createGroup(t, u.alice, "g", u.bob, u.carol)["id"])
			mid := num(t, s.send(t, u.bob, g, "react to me")["id"])
			gs := s.subscribe(t, convStream(g))

			for _, bad := range []struct {
				name string
				who  account
				body any
			}{
				{"blank", u.carol, map[string]any{"reaction": map[string]any{"message_id": mid, "emoji": ""}}},
				{"too long", u.carol, map[string]any{"reaction": map[string]any{"message_id": mid, "emoji": "12345678901"}}},
				{"non-member", u.dave, map[string]any{"reaction": map[string]any{"message_id": mid, "emoji": "👍"}}},
				{"missing message", u.carol, map[string]any{"reaction": map[string]any{"message_id": missingID, "emoji": "👍"}}},
			} {
				r := s.do("POST", "/api/v1/reactions", bad.who.token, bad.body)
				require.GreaterOrEqual(t, r.status, 400, "%s: %s", bad.name, r.raw)
			}
			gs.none(t, "failed reactions publish nothing")

			r := s.do("POST", "/api/v1/reactions", u.carol.token, map[string]any{"reaction": map[string]any{"message_id": mid, "emoji": "👍"}})
			require.Equal(t, http.StatusCreated, r.status, "%s", r.raw)
			reaction := r.json(t)
			ev := gs.one(t)
			assertEvent(t, ev, "reaction_added", "reaction", reaction)
			assertReaction(t, ev["reaction"])
			rid := num(t, reaction["id"])

			r = s.do("POST", "/api/v1/reactions", u.carol.token, map[string]any{"message_id": mid, "emoji": "👍"})
			require.Equal(t, http.StatusUnprocessableEntity, r.status, "%s", r.raw)
			for _, who := range []account{u.alice, u.bob, u.dave} {
				r = s.do("DELETE", reactionPath(rid), who.token, nil)
				require.GreaterOrEqual(t, r.status, 400, "%s", r.raw)
			}
			gs.none(t, "failed reactions and removals publish nothing")

			r = s.do("DELETE", reactionPath(rid), u.carol.token, nil)
			require.Equal(t, http.StatusOK, r.status, "%s", r.raw)
			assert.JSONEq(t, `{"type":"reaction_removed","reaction_id":`+itoa(rid)+`,"message_id":`+itoa(mid)+`}`, gs.oneRaw(t))

			r = s.do("DELETE", reactionPath(rid), u.carol.token, nil)
			require.Equal(t, http.StatusNotFound, r.status, "%s", r.raw)
			gs.none(t, "removing again publishes nothing")
		})

		t.Run("members", func(t *testing.T) {
			u := s.freshUsers()
			g := num(t, s.createGroup(t, u.alice, "g", u.bob, u.carol)["id"])
			r := s.do("POST", conversationsPath, u.eve.token, map[string]any{"conversation_type": "direct", "member_ids": []int64{u.frank.id}})
			require.Equal(t, http.StatusCreated, r.status, "%s", r.raw)
			d := num(t, dataOf(t, r)["id"])
			gs, ds := s.subscribe(t, convStream(g)), s.subscribe(t, convStream(d))

			for _, bad := range []struct {
				name string
				who  account
				body any
			}{
				{"already a member", u.alice, map[string]any{"user_id": u.bob.id}},
				{"missing user", u.alice, map[string]any{"user_id": missingID}},
				{"no user", u.alice, map[string]any{}},
				{"not an admin", u.bob, map[string]any{"user_id": u.dave.id}},
				{"non-member", u.dave, map[string]any{"user_id": u.dave.id}},
			} {
				r := s.do("POST", membershipsPath(g), bad.who.token, bad.body)
				require.GreaterOrEqual(t, r.status, 400, "%s: %s", bad.name, r.raw)
			}
			r = s.do("POST", membershipsPath(d), u.eve.token, map[string]any{"user_id": u.dave.id})
			require.Equal(t, http.StatusUnprocessableEntity, r.status, "%s", r.raw)
			gs.none(t, "failed adds publish nothing")
			ds.none(t, "failed adds publish nothing")

			r = s.do("POST", membershipsPath(g), u.alice.token, map[string]any{"user_id": u.dave.id})
			require.Equal(t, http.StatusCreated, r.status, "%s", r.raw)
			r = s.do("GET", "/api/v1/users/"+itoa(u.dave.id), u.alice.token, nil)
			require.Equal(t, http.StatusOK, r.status, "%s", r.raw)
			ev := gs.one(t)
			assertEvent(t, ev, "member_joined", "user", r.json(t))
			assertUserPublic(t, ev["user"])

			for _, bad := range []struct {
				name string
				who  account
				uid  int64
			}{
				{"member removes another", u.bob, u.carol.id},
				{"member removes the admin", u.bob, u.alice.id},
				{"not a member", u.alice, u.eve.id},
				{"non-member", u.eve, u.bob.id},
			} {
				r := s.do("DELETE", membershipPath(g, bad.uid), bad.who.token, nil)
				require.GreaterOrEqual(t, r.status, 400, "%s: %s", bad.name, r.raw)
			}
			r = s.do("DELETE", membershipPath(d, u.frank.id), u.frank.token, nil)
			require.Equal(t, http.StatusUnprocessableEntity, r.status, "%s", r.raw)
			gs.none(t, "failed removals publish nothing")
			ds.none(t, "failed removals publish nothing")

			r = s.do("DELETE", membershipPath(g, u.dave.id), u.alice.token, nil)
			require.Equal(t, http.StatusOK, r.status, "%s", r.raw)
			assert.JSONEq(t, `{"type":"member_left","user_id":`+itoa(u.dave.id)+`}`, gs.oneRaw(t))

			r = s.do("DELETE", membershipPath(g, u.carol.id), u.carol.token, nil)
			require.Equal(t, http.StatusOK, r.status, "%s", r.raw)
			assert.JSONEq(t, `{"type":"member_left","user_id":`+itoa(u.carol.id)+`}`, gs.oneRaw(t), "leaving")

			r = s.do("DELETE", membershipPath(g, u.carol.id), u.alice.token, nil)
			require.Equal(t, http.StatusNotFound, r.status, "%s", r.raw)
			gs.none(t, "removing a former member publishes nothing")
		})

		t.Run("conversation_deleted", func(t *testing.T) {
			u := s.freshUsers()
			g := num(t, s.createGroup(t, u.alice, "g", u.bob, u.carol)["id"])
			streams := map[string]*eventStream{}
			for name, a := range map[string]account{"alice": u.alice, "bob": u.bob, "carol": u.carol, "dave": u.dave} {
				streams[name] = s.subscribe(t, userStream(a))
			}

			for _, who := range []account{u.bob, u.dave} {
				r := s.do("DELETE", convPath(g), who.token, nil)
				require.Equal(t, http.StatusForbidden, r.status, "%s", r.raw)
			}
			r := s.do("DELETE", convPath(missingID), u.alice.token, nil)
			require.Equal(t, http.StatusNotFound, r.status, "%s", r.raw)
			for name, st := range streams {
				st.none(t, name+": failed deletes publish nothing")
			}

			r = s.do("DELETE", convPath(g), u.alice.token, nil)
			require.Equal(t, http.StatusOK, r.status, "%s", r.raw)
			want := `{"type":"conversation_deleted","conversation_id":` + itoa(g) + `}`
			for _, name := range []string{"alice", "bob", "carol"} {
				assert.JSONEq(t, want, streams[name].oneRaw(t), "every member, the deleter too: %s", name)
			}
			streams["dave"].none(t, "not a member")

			r = s.do("DELETE", convPath(g), u.alice.token, nil)
			require.Equal(t, http.StatusNotFound, r.status, "%s", r.raw)
			streams["alice"].none(t, "deleting again publishes nothing")
		})

		t.Run("messages in a DM", func(t *testing.T) {
			u := s.freshUsers()
			dm := s.createDirect(t, u.alice, u.bob)
			d := num(t, dm["id"])
			ds := s.subscribe(t, convStream(d))
			msg := s.send(t, u.bob, d, "psst")
			assertEvent(t, ds.one(t), "new_message", "message", msg)
			r := s.do("POST", messagesPath(d), u.carol.token, map[string]any{"content": "intruder"})
			require.Equal(t, http.StatusNotFound, r.status, "%s", r.raw)
			r = s.do("POST", "/api/v1/reactions", u.carol.token, map[string]any{"reaction": map[string]any{"message_id": msg["id"], "emoji": "👀"}})
			require.Equal(t, http.StatusNotFound, r.status, "%s", r.raw)
			ds.none(t, "a third user's attempts publish nothing")
		})
	})
}

package main_test

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func readPath(cid int64) string { return convPath(cid) + "/read" }

// markRead sets a's marker in cid (to the newest message when messageID is
// 0) and returns the read state it answers.
func (s *stack) markRead(t *testing.T, a account, cid, messageID int64) map[string]any {
	t.Helper()
	var body any
	if messageID != 0 {
		body = map[string]any{"message_id": messageID}
	}
	r := s.do("POST", readPath(cid), a.token, body)
	require.Equal(t, http.StatusOK, r.status, "mark read: %s", r.raw)
	return dataOf(t, r)
}

// listed returns cid as a's conversation list shows it.
func (s *stack) listed(t *testing.T, a account, cid int64) map[string]any {
	t.Helper()
	r := s.do("GET", conversationsPath, a.token, nil)
	require.Equal(t, http.StatusOK, r.status, "%s", r.raw)
	for _, c := range objs(t, r.json(t)["data"]) {
		if num(t, c["id"]) == cid {
			return c
		}
	}
	require.FailNow(t, "not listed", "conversation %d", cid)
	return nil
}

// assertRead checks a conversation view's or a read state's read fields;
// lastRead 0 means null.
func assertRead(t *testing.T, v map[string]any, lastRead int64, unread int, capped bool) {
	t.Helper()
	if lastRead == 0 {
		assert.Nil(t, v["last_read_message_id"], "last_read_message_id")
	} else {
		assert.Equal(t, lastRead, num(t, v["last_read_message_id"]), "last_read_message_id")
	}
	assert.Equal(t, int64(unread), num(t, v["unread_count"]), "unread_count")
	assert.Equal(t, capped, v["unread_capped"], "unread_capped")
}

func TestReadState(t *testing.T) {
	eachMode(t, func(t *testing.T, m mode) {
		s := start(t, raised(m.config(t), "register_ip", "messages", "reads"))

		t.Run("counts and markers through list, show and mark-read", func(t *testing.T) {
			u := s.freshUsers()
			g := num(t, s.createGroup(t, u.alice, "g", u.bob)["id"])
			assertRead(t, s.listed(t, u.alice, g), 0, 0, false)
			var sent []int64
			for range 3 {
				sent = append(sent, num(t, s.send(t, u.bob, g, "hi")["id"]))
			}
			assertRead(t, s.listed(t, u.alice, g), 0, 3, false)
			assertRead(t, s.listed(t, u.bob, g), sent[2], 0, false) // sending reads
			r := s.do("GET", convPath(g), u.alice.token, nil)
			require.Equal(t, http.StatusOK, r.status)
			assertRead(t, dataOf(t, r), 0, 3, false)

			st := s.markRead(t, u.alice, g, sent[1])
			assert.ElementsMatch(t, []string{"conversation_id", "last_read_message_id", "unread_count", "unread_capped"}, keys(st))
			assert.Equal(t, g, num(t, st["conversation_id"]))
			assertRead(t, st, sent[1], 1, false)
			assertRead(t, s.markRead(t, u.alice, g, sent[0]), sent[1], 1, false) // back: a no-op
			assertRead(t, s.markRead(t, u.alice, g, 0), sent[2], 0, false)       // no body: the newest
			assertRead(t, s.listed(t, u.alice, g), sent[2], 0, false)

			own := num(t, s.send(t, u.alice, g, "mine")["id"])
			assertRead(t, s.listed(t, u.alice, g), own, 0, false)
			assertRead(t, s.listed(t, u.bob, g), sent[2], 1, false)

			del := s.do("DELETE", messagePath(g, own), u.alice.token, nil)
			require.Equal(t, http.StatusOK, del.status, "%s", del.raw)
			assertRead(t, s.listed(t, u.bob, g), sent[2], 0, false) // deleted: not unread
		})

		t.Run("bad requests", func(t *testing.T) {
			u := s.freshUsers()
			g := num(t, s.createGroup(t, u.alice, "g", u.bob)["id"])
			other := num(t, s.createGroup(t, u.alice, "other", u.bob)["id"])
			elsewhere := num(t, s.send(t, u.bob, other, "elsewhere")["id"])
			for _, tc := range []struct {
				name   string
				token  string
				cid    int64
				body   any
				status int
			}{
				{"a message of another conversation", u.alice.token, g, map[string]any{"message_id": elsewhere}, http.StatusUnprocessableEntity},
				{"a message that does not exist", u.alice.token, g, map[string]any{"message_id": 1 << 50}, http.StatusUnprocessableEntity},
				{"not an id", u.alice.token, g, map[string]any{"message_id": "x"}, http.StatusUnprocessableEntity},
				{"zero", u.alice.token, g, map[string]any{"message_id": 0}, http.StatusUnprocessableEntity},
				{"a stranger", u.carol.token, g, nil, http.StatusNotFound},
				{"no token", "", g, nil, http.StatusUnauthorized},
			} {
				t.Run(tc.name, func(t *testing.T) {
					r := s.do("POST", readPath(tc.cid), tc.token, tc.body)
					assert.Equal(t, tc.status, r.status, "%s", r.raw)
				})
			}
			empty := s.markRead(t, u.alice, g, 0)
			assertRead(t, empty, 0, 0, false) // nothing to read: nothing moves
		})

		t.Run("the count stops at 100, flagged", func(t *testing.T) {
			u := s.freshUsers()
			g := num(t, s.createGroup(t, u.alice, "g", u.bob)["id"])
			for range 101 {
				s.send(t, u.bob, g, "flood")
			}
			assertRead(t, s.listed(t, u.alice, g), 0, 100, true)
		})

		t.Run("a member who joins has read what came before", func(t *testing.T) {
			u := s.freshUsers()
			g := num(t, s.createGroup(t, u.alice, "g", u.bob)["id"])
			s.send(t, u.bob, g, "before")
			carol := s.subscribe(t, userStream(u.carol))
			r := s.do("POST", membershipsPath(g), u.alice.token, map[string]any{"user_id": u.carol.id})
			require.Equal(t, http.StatusCreated, r.status, "%s", r.raw)
			ev := carol.one(t)
			require.Equal(t, "new_conversation", ev["type"])
			assertRead(t, obj(t, ev["conversation"]), 0, 0, false)
			assertRead(t, s.listed(t, u.carol, g), 0, 0, false)
			s.send(t, u.bob, g, "after")
			assertRead(t, s.listed(t, u.carol, g), 0, 1, false)
		})

		t.Run("two users, two tabs each: receipts and badges", func(t *testing.T) {
			u := s.freshUsers()
			g := num(t, s.createGroup(t, u.alice, "g", u.bob)["id"])
			msg := num(t, s.send(t, u.bob, g, "hi")["id"])
			tabs := map[string]*wsClient{}
			for name, a := range map[string]account{"alice1": u.alice, "alice2": u.alice, "bob1": u.bob, "bob2": u.bob} {
				c := s.cable(t, a)
				c.mustConfirm(t, convIdent(g))
				c.mustConfirm(t, userIdent)
				tabs[name] = c
			}

			s.markRead(t, u.alice, g, msg)
			for name, c := range tabs {
				ev := c.expectEvent(t, convIdent(g), "read")
				assert.Equal(t, map[string]any{"type": "read", "user_id": float64(u.alice.id), "message_id": float64(msg)}, ev, name)
			}
			for _, name := range []string{"alice1", "alice2"} {
				ev := tabs[name].expectEvent(t, userIdent, "conversation_read")
				assert.Equal(t, g, num(t, ev["conversation_id"]), name)
				assertRead(t, ev, msg, 0, false)
			}
			for _, name := range []string{"bob1", "bob2"} {
				tabs[name].expectNone(t, onIdent(userIdent, ofType("conversation_read")), wsQuiet)
			}

			// The same mark again moves nothing and tells nobody.
			s.markRead(t, u.alice, g, msg)
			tabs["bob1"].expectNone(t, onIdent(convIdent(g), ofType("read")), wsQuiet)
		})

		t.Run("a burst of marks publishes its first and its last", func(t *testing.T) {
			u := s.freshUsers()
			g := num(t, s.createGroup(t, u.alice, "g", u.bob)["id"])
			var sent []int64
			for range 4 {
				sent = append(sent, num(t, s.send(t, u.bob, g, "hi")["id"]))
			}
			reads := s.subscribe(t, convStream(g))
			for _, id := range sent {
				s.markRead(t, u.alice, g, id)
			}
			first := reads.one(t)
			assert.Equal(t, sent[0], num(t, first["message_id"]))
			last := reads.one(t) // after about a second
			assert.Equal(t, sent[3], num(t, last["message_id"]))
			reads.none(t, "the marks between were coalesced")
		})
	})
}

// Marks made on one instance reach the user's tabs and the other members
// on another.
func TestReadStateAcrossInstances(t *testing.T) {
	a, b := startPair(t)
	u := a.freshUsers()
	g := num(t, a.createGroup(t, u.alice, "g", u.bob)["id"])
	msg := num(t, b.send(t, u.bob, g, "hi")["id"])
	aliceA, aliceB, bobB := a.cable(t, u.alice), b.cable(t, u.alice), b.cable(t, u.bob)
	for _, c := range []*wsClient{aliceA, aliceB, bobB} {
		c.mustConfirm(t, convIdent(g))
		c.mustConfirm(t, userIdent)
	}
	assertRead(t, b.listed(t, u.alice, g), 0, 1, false)

	a.markRead(t, u.alice, g, msg)

	for _, c := range []*wsClient{aliceA, aliceB} {
		assertRead(t, c.expectEvent(t, userIdent, "conversation_read"), msg, 0, false)
	}
	ev := bobB.expectEvent(t, convIdent(g), "read")
	assert.Equal(t, u.alice.id, num(t, ev["user_id"]))
	assert.Equal(t, msg, num(t, ev["message_id"]))
	assertRead(t, b.listed(t, u.alice, g), msg, 0, false)
}

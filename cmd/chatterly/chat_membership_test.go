package main_test

import (
	"net/http"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A member who is added learns of the conversation at once, as the members
// named at creation do: the web client only learns of conversations from
// new_conversation, so without it the group stayed invisible until a reload.
func TestMemberAddedLearnsOfConversation(t *testing.T) {
	eachMode(t, func(t *testing.T, m mode) {
		s := start(t, raised(m.config(t), "register_ip"))
		u := s.freshUsers()
		g := num(t, s.createGroup(t, u.alice, "g", u.bob)["id"])
		daveUser, aliceUser, bobUser := s.subscribe(t, userStream(u.dave)), s.subscribe(t, userStream(u.alice)), s.subscribe(t, userStream(u.bob))
		eveUser, gs := s.subscribe(t, userStream(u.eve)), s.subscribe(t, convStream(g))
		dave := s.cable(t, u.dave)
		dave.mustConfirm(t, userIdent)
		dave.mustConfirm(t, presenceIdent)
		assert.Empty(t, dave.expectEvent(t, presenceIdent, "initial_presence")["online_user_ids"], "no contacts yet")
		alice := s.cable(t, u.alice)
		alice.mustConfirm(t, presenceIdent)
		alice.expectEvent(t, presenceIdent, "initial_presence")

		for _, bad := range []struct {
			name   string
			who    account
			body   any
			status int
		}{
			{"not an admin", u.bob, map[string]any{"user_id": u.eve.id}, http.StatusForbidden},
			{"a non-member", u.eve, map[string]any{"user_id": u.eve.id}, http.StatusNotFound},
			{"already a member", u.alice, map[string]any{"user_id": u.bob.id}, http.StatusUnprocessableEntity},
			{"a missing user", u.alice, map[string]any{"user_id": missingID}, http.StatusUnprocessableEntity},
		} {
			r := s.do("POST", membershipsPath(g), bad.who.token, bad.body)
			require.Equal(t, bad.status, r.status, "%s: %s", bad.name, r.raw)
		}
		eveUser.none(t, "failed adds tell nobody")
		bobUser.none(t, "failed adds tell nobody")

		r := s.do("POST", membershipsPath(g), u.alice.token, map[string]any{"user_id": u.dave.id})
		require.Equal(t, http.StatusCreated, r.status, "%s", r.raw)
		r = s.do("GET", convPath(g), u.dave.token, nil)
		require.Equal(t, http.StatusOK, r.status, "%s", r.raw)
		conv := dataOf(t, r)

		ev := daveUser.one(t)
		assertEvent(t, ev, "new_conversation", "conversation", conv)
		assertConversation(t, ev["conversation"])
		assert.ElementsMatch(t, []int64{u.alice.id, u.bob.id, u.dave.id}, memberIDs(t, obj(t, ev["conversation"])), "the new member among the members")
		assert.Equal(t, 3, int(num(t, obj(t, ev["conversation"])["member_count"])))
		joined := gs.one(t)
		assert.Equal(t, "member_joined", joined["type"])
		assert.Equal(t, u.dave.id, num(t, obj(t, joined["user"])["id"]))
		aliceUser.none(t, "the other members hear member_joined on the conversation only")
		bobUser.none(t, "the other members hear member_joined on the conversation only")

		// As the web client sees it: the conversation, its contacts online,
		// and its events once subscribed.
		assertEvent(t, dave.expectEvent(t, userIdent, "new_conversation"), "new_conversation", "conversation", conv)
		dave.expectMessage(t, presenceIdent, presenceOf(u.alice, "online"))
		alice.expectMessage(t, presenceIdent, presenceOf(u.dave, "online"))
		dave.mustConfirm(t, convIdent(g))
		msg := s.send(t, u.bob, g, "welcome")
		assertEvent(t, dave.expectEvent(t, convIdent(g), "new_message"), "new_message", "message", msg)
	})
}

// Deleting a conversation takes a current member, and a group whose last
// admin leaves gets a new one, so that members can still be added.
func TestMembershipHandOver(t *testing.T) {
	eachMode(t, func(t *testing.T, m mode) {
		s := start(t, raised(m.config(t), "register_ip"))

		t.Run("a creator who left cannot delete; the longest-standing member takes over", func(t *testing.T) {
			u := s.freshUsers()
			// carol joins first, bob later: seniority, not user id, decides.
			g := num(t, s.createGroup(t, u.alice, "g", u.carol)["id"])
			r := s.do("POST", membershipsPath(g), u.alice.token, map[string]any{"user_id": u.bob.id})
			require.Equal(t, http.StatusCreated, r.status, "%s", r.raw)
			require.Less(t, u.bob.id, u.carol.id)
			gs := s.subscribe(t, convStream(g))
			watcher := s.cable(t, u.bob)
			watcher.mustConfirm(t, convIdent(g))

			r = s.do("DELETE", membershipPath(g, u.alice.id), u.alice.token, nil)
			require.Equal(t, http.StatusOK, r.status, "%s", r.raw)
			assert.JSONEq(t, `{"type":"member_left","user_id":`+itoa(u.alice.id)+`}`, string(gs.next(t)))
			promoted := `{"type":"member_promoted","user_id":` + itoa(u.carol.id) + `,"role":"admin"}`
			assert.JSONEq(t, promoted, gs.oneRaw(t), "after member_left, once")
			watcher.expectEvent(t, convIdent(g), "member_left")
			assert.JSONEq(t, promoted, toJSON(t, watcher.expectEvent(t, convIdent(g), "member_promoted")), "over the socket too")

			r = s.do("DELETE", convPath(g), u.alice.token, nil)
			require.Equal(t, http.StatusForbidden, r.status, "%s", r.raw)
			assert.JSONEq(t, notAuthorized, string(r.raw))
			r = s.do("DELETE", convPath(g), u.bob.token, nil)
			require.Equal(t, http.StatusForbidden, r.status, "a member who is not admin: %s", r.raw)
			r = s.do("POST", membershipsPath(g), u.bob.token, map[string]any{"user_id": u.dave.id})
			require.Equal(t, http.StatusForbidden, r.status, "bob was not promoted: %s", r.raw)
			gs.none(t, "refusals publish nothing")
			r = s.do("GET", convPath(g), u.carol.token, nil)
			require.Equal(t, http.StatusOK, r.status, "the conversation is still there: %s", r.raw)

			r = s.do("POST", membershipsPath(g), u.carol.token, map[string]any{"user_id": u.dave.id})
			require.Equal(t, http.StatusCreated, r.status, "the new admin adds members: %s", r.raw)
			r = s.do("DELETE", membershipPath(g, u.bob.id), u.carol.token, nil)
			require.Equal(t, http.StatusOK, r.status, "and removes them: %s", r.raw)
			gs.drain()
			r = s.do("DELETE", convPath(g), u.carol.token, nil)
			require.Equal(t, http.StatusOK, r.status, "and deletes: %s", r.raw)
		})

		t.Run("the creator deletes while still a member", func(t *testing.T) {
			u := s.freshUsers()
			g := num(t, s.createGroup(t, u.alice, "g", u.bob)["id"])
			r := s.do("DELETE", convPath(g), u.alice.token, nil)
			require.Equal(t, http.StatusOK, r.status, "%s", r.raw)
		})

		t.Run("no hand-over while an admin stays, nor when nobody does", func(t *testing.T) {
			u := s.freshUsers()
			g := num(t, s.createGroup(t, u.alice, "g", u.bob, u.carol)["id"])
			gs := s.subscribe(t, convStream(g))
			for _, step := range []struct {
				name    string
				who     account
				removed account
			}{
				{"a member leaves", u.bob, u.bob},
				{"the admin removes a member", u.alice, u.carol},
				{"the last member, the admin, leaves", u.alice, u.alice},
			} {
				r := s.do("DELETE", membershipPath(g, step.removed.id), step.who.token, nil)
				require.Equal(t, http.StatusOK, r.status, "%s: %s", step.name, r.raw)
				assert.JSONEq(t, `{"type":"member_left","user_id":`+itoa(step.removed.id)+`}`, gs.oneRaw(t), step.name)
			}
		})

		t.Run("the founders tie: the lowest user id takes over", func(t *testing.T) {
			u := s.freshUsers()
			g := num(t, s.createGroup(t, u.alice, "g", u.dave, u.carol, u.bob)["id"])
			gs := s.subscribe(t, convStream(g))
			r := s.do("DELETE", membershipPath(g, u.alice.id), u.alice.token, nil)
			require.Equal(t, http.StatusOK, r.status, "%s", r.raw)
			gs.next(t)
			assert.JSONEq(t, `{"type":"member_promoted","user_id":`+itoa(u.bob.id)+`,"role":"admin"}`, gs.oneRaw(t))
		})

		t.Run("leaving and deleting at once: one of them, never both", func(t *testing.T) {
			for range 10 {
				u := s.freshUsers()
				g := num(t, s.createGroup(t, u.alice, "g", u.bob)["id"])
				var wg sync.WaitGroup
				var leave, del int
				wg.Go(func() { leave = rawStatus(t, s, "DELETE", membershipPath(g, u.alice.id), u.alice.token, nil) })
				wg.Go(func() { del = rawStatus(t, s, "DELETE", convPath(g), u.alice.token, nil) })
				wg.Wait()
				switch {
				case leave == http.StatusOK:
					assert.Equal(t, http.StatusForbidden, del, "deleted by a creator who had left")
					r := s.do("GET", convPath(g), u.bob.token, nil)
					assert.Equal(t, http.StatusOK, r.status, "%s", r.raw)
				case del == http.StatusOK:
					assert.Equal(t, http.StatusNotFound, leave, "left a deleted conversation")
				default:
					t.Errorf("leave %d, delete %d", leave, del)
				}
			}
		})
	})
}

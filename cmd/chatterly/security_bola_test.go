package main_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	httpport "github.com/chatterly/chatterly/ports/http"
)

// bolaFixture is a victim's world and an outsider with a world of her own.
// alice administers the group g with bob and has the DM d with bob; each
// has messages, reactions and a ringing call (gc by alice, dc by bob).
// mallory administers the group m with oscar, where she rings mc. mallory
// shares no conversation with alice or bob, so every id of theirs she uses
// is somebody else's.
type bolaFixture struct {
	alice, bob, mallory, oscar account
	g, d, m                    int64
	// aliceMsg and bobMsg are in g, dMsg in d, mMsg in m.
	aliceMsg, bobMsg, dMsg, mMsg int64
	// bobReaction is on aliceMsg, dReaction on dMsg, mReaction on mMsg.
	bobReaction, dReaction, mReaction int64
	gc, dc, mc                        int64
}

func (s *stack) bolaFixture(t *testing.T) bolaFixture {
	t.Helper()
	n := "_" + itoa(userSeq.Add(1))
	f := bolaFixture{
		alice: s.register("alice" + n), bob: s.register("bob" + n),
		mallory: s.register("mallory" + n), oscar: s.register("oscar" + n),
	}
	f.g = num(t, s.createGroup(t, f.alice, "team", f.bob)["id"])
	f.d = num(t, s.createDirect(t, f.alice, f.bob)["id"])
	f.m = num(t, s.createGroup(t, f.mallory, "lair", f.oscar)["id"])
	f.aliceMsg = num(t, s.send(t, f.alice, f.g, "alice in g")["id"])
	f.bobMsg = num(t, s.send(t, f.bob, f.g, "bob in g")["id"])
	f.dMsg = num(t, s.send(t, f.bob, f.d, "bob in d")["id"])
	f.mMsg = num(t, s.send(t, f.mallory, f.m, "mallory in m")["id"])
	f.bobReaction = num(t, s.react(t, f.bob, f.aliceMsg, "👍")["id"])
	f.dReaction = num(t, s.react(t, f.alice, f.dMsg, "🎉")["id"])
	f.mReaction = num(t, s.react(t, f.oscar, f.mMsg, "👍")["id"])
	f.gc = num(t, s.startCall(t, f.alice, f.g, "audio")["id"])
	f.dc = num(t, s.startCall(t, f.bob, f.d, "video")["id"])
	f.mc = num(t, s.startCall(t, f.mallory, f.m, "audio")["id"])
	return f
}

// victimState is everything alice and bob can read about their world, with
// presence left out: an attack that changes any of it got through.
func (s *stack) victimState(t *testing.T, f bolaFixture) string {
	t.Helper()
	var state []any
	for _, q := range []struct {
		who  account
		path string
	}{
		{f.alice, convPath(f.g)},
		{f.bob, convPath(f.d)},
		{f.alice, messagesPath(f.g) + "?limit=100"},
		{f.bob, messagesPath(f.d) + "?limit=100"},
		{f.alice, activeCallPath(f.g)},
		{f.bob, activeCallPath(f.d)},
		{f.alice, conversationsPath},
		{f.bob, conversationsPath},
		{f.alice, "/api/v1/users/me"},
		{f.bob, "/api/v1/users/me"},
		{f.mallory, conversationsPath},
		{f.mallory, "/api/v1/users/me"},
	} {
		r := s.do("GET", q.path, q.who.token, nil)
		require.Equal(t, http.StatusOK, r.status, "GET %s: %s", q.path, r.raw)
		var v any
		require.NoError(t, json.Unmarshal(r.raw, &v))
		state = append(state, q.path, stripOnline(v))
	}
	return toJSON(t, state)
}

// victimWatchers are alice's and bob's sockets, subscribed to everything
// they may hear: their conversations, their calls and their user stream.
func (s *stack) victimWatchers(t *testing.T, f bolaFixture) map[string]*wsClient {
	t.Helper()
	w := map[string]*wsClient{}
	for name, a := range map[string]account{"alice": f.alice, "bob": f.bob} {
		c := s.cable(t, a)
		for _, id := range []string{convIdent(f.g), convIdent(f.d), callIdent, userIdent} {
			c.mustConfirm(t, id)
		}
		w[name] = c
	}
	return w
}

type bolaReq struct {
	method, path string
	body         any
}

// bolaCase is one request of an outsider naming others' objects.
type bolaCase struct {
	name string
	req  func(f bolaFixture) bolaReq
	// missing is the same request naming nothing; its answer must be
	// the same, byte for byte, so that ids cannot be probed.
	missing func(f bolaFixture) bolaReq
	status  int
	body    string
}

// bolaRestCases are the REST half of the matrix: every route that names a
// conversation, message, reaction, call or user.
func bolaRestCases() []bolaCase {
	type rq = bolaReq
	return []bolaCase{
		// Users: a profile is public to read, private to change.
		{"PATCH another user", func(f bolaFixture) rq {
			return rq{"PATCH", "/api/v1/users/" + itoa(f.alice.id), map[string]any{"display_name": "pwned", "avatar_url": "https://evil.example/x.png"}}
		}, func(bolaFixture) rq {
			return rq{"PATCH", "/api/v1/users/" + itoa(missingID), map[string]any{"display_name": "pwned"}}
		}, 403, notAuthorized},
		{"PUT another user, wrapped", func(f bolaFixture) rq {
			return rq{"PUT", "/api/v1/users/" + itoa(f.alice.id), map[string]any{"user": map[string]any{"display_name": "pwned"}}}
		}, func(bolaFixture) rq {
			return rq{"PUT", "/api/v1/users/" + itoa(missingID), map[string]any{"user": map[string]any{"display_name": "pwned"}}}
		}, 403, notAuthorized},

		// Conversations: the contract answers 403 to a non-member and 404
		// to an id that names nothing (see TestSecurityBOLAConversationProbe).
		{"GET a group", func(f bolaFixture) rq { return rq{"GET", convPath(f.g), nil} }, nil, 403, notAuthorized},
		{"GET a DM", func(f bolaFixture) rq { return rq{"GET", convPath(f.d), nil} }, nil, 403, notAuthorized},
		{"DELETE a group", func(f bolaFixture) rq { return rq{"DELETE", convPath(f.g), nil} }, nil, 403, notAuthorized},
		{"DELETE a DM", func(f bolaFixture) rq { return rq{"DELETE", convPath(f.d), nil} }, nil, 403, notAuthorized},

		// Memberships.
		{"add self to a group", func(f bolaFixture) rq {
			return rq{"POST", membershipsPath(f.g), map[string]any{"user_id": f.mallory.id}}
		}, func(f bolaFixture) rq {
			return rq{"POST", membershipsPath(missingID), map[string]any{"user_id": f.mallory.id}}
		}, 404, notFound},
		{"add self to a DM", func(f bolaFixture) rq {
			return rq{"POST", membershipsPath(f.d), map[string]any{"membership": map[string]any{"user_id": f.mallory.id}}}
		}, func(f bolaFixture) rq {
			return rq{"POST", membershipsPath(missingID), map[string]any{"membership": map[string]any{"user_id": f.mallory.id}}}
		}, 404, notFound},
		{"remove a member", func(f bolaFixture) rq { return rq{"DELETE", membershipPath(f.g, f.bob.id), nil} },
			func(f bolaFixture) rq { return rq{"DELETE", membershipPath(missingID, f.bob.id), nil} }, 404, notFound},
		{"remove the admin", func(f bolaFixture) rq { return rq{"DELETE", membershipPath(f.g, f.alice.id), nil} },
			func(f bolaFixture) rq { return rq{"DELETE", membershipPath(f.g, missingID), nil} }, 404, notFound},
		{"leave a group never joined", func(f bolaFixture) rq { return rq{"DELETE", membershipPath(f.g, f.mallory.id), nil} },
			func(f bolaFixture) rq { return rq{"DELETE", membershipPath(missingID, f.mallory.id), nil} }, 404, notFound},

		// Read markers: a stranger's mark is refused before the message is
		// looked up, so it tells nothing of the conversation's messages.
		{"mark a group read", func(f bolaFixture) rq { return rq{"POST", readPath(f.g), map[string]any{"message_id": f.aliceMsg}} },
			func(f bolaFixture) rq {
				return rq{"POST", readPath(missingID), map[string]any{"message_id": f.aliceMsg}}
			}, 404, notFound},
		{"mark a DM read to its newest", func(f bolaFixture) rq { return rq{"POST", readPath(f.d), nil} },
			func(bolaFixture) rq { return rq{"POST", readPath(missingID), nil} }, 404, notFound},

		// Messages.
		{"read a group's history", func(f bolaFixture) rq { return rq{"GET", messagesPath(f.g), nil} },
			func(bolaFixture) rq { return rq{"GET", messagesPath(missingID), nil} }, 404, notFound},
		{"read a DM's history from a cursor", func(f bolaFixture) rq {
			return rq{"GET", messagesPath(f.d) + "?cursor=" + itoa(f.dMsg+1) + "&limit=100", nil}
		},
			func(f bolaFixture) rq {
				return rq{"GET", messagesPath(missingID) + "?cursor=" + itoa(f.dMsg+1) + "&limit=100", nil}
			}, 404, notFound},
		{"post in a group", func(f bolaFixture) rq { return rq{"POST", messagesPath(f.g), map[string]any{"content": "spam"}} },
			func(bolaFixture) rq { return rq{"POST", messagesPath(missingID), map[string]any{"content": "spam"}} }, 404, notFound},
		{"post in a DM, wrapped", func(f bolaFixture) rq {
			return rq{"POST", messagesPath(f.d), map[string]any{"message": map[string]any{"content": "spam"}}}
		}, func(bolaFixture) rq {
			return rq{"POST", messagesPath(missingID), map[string]any{"message": map[string]any{"content": "spam"}}}
		}, 404, notFound},
		{"edit a message", func(f bolaFixture) rq {
			return rq{"PATCH", messagePath(f.g, f.bobMsg), map[string]any{"content": "pwned"}}
		},
			func(f bolaFixture) rq {
				return rq{"PATCH", messagePath(f.g, missingID), map[string]any{"content": "pwned"}}
			}, 404, notFound},
		{"edit a message with PUT", func(f bolaFixture) rq { return rq{"PUT", messagePath(f.d, f.dMsg), map[string]any{"content": "pwned"}} },
			func(f bolaFixture) rq {
				return rq{"PUT", messagePath(missingID, f.dMsg), map[string]any{"content": "pwned"}}
			}, 404, notFound},
		{"edit a message under my own conversation", func(f bolaFixture) rq {
			return rq{"PATCH", messagePath(f.m, f.aliceMsg), map[string]any{"content": "pwned"}}
		},
			func(f bolaFixture) rq {
				return rq{"PATCH", messagePath(f.m, missingID), map[string]any{"content": "pwned"}}
			}, 404, notFound},
		{"delete a message", func(f bolaFixture) rq { return rq{"DELETE", messagePath(f.g, f.aliceMsg), nil} },
			func(f bolaFixture) rq { return rq{"DELETE", messagePath(f.g, missingID), nil} }, 404, notFound},
		// mallory administers m, where admins may delete anyone's message.
		{"delete a message under a conversation I administer", func(f bolaFixture) rq { return rq{"DELETE", messagePath(f.m, f.bobMsg), nil} },
			func(f bolaFixture) rq { return rq{"DELETE", messagePath(f.m, missingID), nil} }, 404, notFound},
		{"delete a DM message", func(f bolaFixture) rq { return rq{"DELETE", messagePath(f.d, f.dMsg), nil} },
			func(f bolaFixture) rq { return rq{"DELETE", messagePath(missingID, f.dMsg), nil} }, 404, notFound},

		// Reactions name a message or a reaction, never a conversation.
		{"react to a message", func(f bolaFixture) rq {
			return rq{"POST", "/api/v1/reactions", map[string]any{"reaction": map[string]any{"message_id": f.aliceMsg, "emoji": "💩"}}}
		}, func(bolaFixture) rq {
			return rq{"POST", "/api/v1/reactions", map[string]any{"reaction": map[string]any{"message_id": missingID, "emoji": "💩"}}}
		}, 404, notFound},
		{"react to a DM message, top-level", func(f bolaFixture) rq {
			return rq{"POST", "/api/v1/reactions", map[string]any{"message_id": f.dMsg, "emoji": "💩"}}
		}, func(bolaFixture) rq {
			return rq{"POST", "/api/v1/reactions", map[string]any{"message_id": missingID, "emoji": "💩"}}
		}, 404, notFound},
		{"remove a reaction", func(f bolaFixture) rq { return rq{"DELETE", reactionPath(f.bobReaction), nil} },
			func(bolaFixture) rq { return rq{"DELETE", reactionPath(missingID), nil} }, 404, notFound},
		{"remove a DM reaction", func(f bolaFixture) rq { return rq{"DELETE", reactionPath(f.dReaction), nil} },
			func(bolaFixture) rq { return rq{"DELETE", reactionPath(missingID + 1), nil} }, 404, notFound},

		// Calls.
		{"start a call", func(f bolaFixture) rq { return rq{"POST", callsPath(f.g), callBody("video")} },
			func(bolaFixture) rq { return rq{"POST", callsPath(missingID), callBody("video")} }, 404, notFound},
		{"read the active call", func(f bolaFixture) rq { return rq{"GET", activeCallPath(f.d), nil} },
			func(bolaFixture) rq { return rq{"GET", activeCallPath(missingID), nil} }, 404, notFound},
		{"accept a call", func(f bolaFixture) rq { return rq{"PUT", acceptPath(f.g, f.gc), nil} },
			func(f bolaFixture) rq { return rq{"PUT", acceptPath(f.g, missingID), nil} }, 404, notFound},
		{"accept a call with PATCH", func(f bolaFixture) rq { return rq{"PATCH", acceptPath(f.d, f.dc), nil} },
			func(f bolaFixture) rq { return rq{"PATCH", acceptPath(missingID, f.dc), nil} }, 404, notFound},
		{"accept a call under my own conversation", func(f bolaFixture) rq { return rq{"PUT", acceptPath(f.m, f.gc), nil} },
			func(f bolaFixture) rq { return rq{"PUT", acceptPath(f.m, missingID), nil} }, 404, notFound},
		{"decline a call", func(f bolaFixture) rq { return rq{"PUT", declinePath(f.g, f.gc), nil} },
			func(f bolaFixture) rq { return rq{"PUT", declinePath(f.g, missingID), nil} }, 404, notFound},
		{"decline a call with PATCH", func(f bolaFixture) rq { return rq{"PATCH", declinePath(f.d, f.dc), nil} },
			func(f bolaFixture) rq { return rq{"PATCH", declinePath(missingID, f.dc), nil} }, 404, notFound},
		{"decline a call under my own conversation", func(f bolaFixture) rq { return rq{"PUT", declinePath(f.m, f.dc), nil} },
			func(f bolaFixture) rq { return rq{"PUT", declinePath(f.m, missingID), nil} }, 404, notFound},
		{"end a call", func(f bolaFixture) rq { return rq{"DELETE", callPath(f.g, f.gc), nil} },
			func(f bolaFixture) rq { return rq{"DELETE", callPath(f.g, missingID), nil} }, 404, notFound},
		{"end a call under my own conversation", func(f bolaFixture) rq { return rq{"DELETE", callPath(f.m, f.dc), nil} },
			func(f bolaFixture) rq { return rq{"DELETE", callPath(f.m, missingID), nil} }, 404, notFound},
	}
}

// Every REST route, driven by an outsider with another user's ids: the
// contract's status, the same answer for an id that exists and one that
// does not (where the contract allows it), no change, no event.
func TestSecurityBOLARest(t *testing.T) {
	cases := bolaRestCases()
	eachMode(t, func(t *testing.T, m mode) {
		s := start(t, secConfig(t, m))
		f := s.bolaFixture(t)
		watchers := s.victimWatchers(t, f)
		self := s.cable(t, f.mallory)
		for _, id := range []string{convIdent(f.m), callIdent, userIdent} {
			self.mustConfirm(t, id)
		}
		before := s.victimState(t, f)
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				q := tc.req(f)
				r := s.do(q.method, q.path, f.mallory.token, q.body)
				require.Equal(t, tc.status, r.status, "%s %s: %s", q.method, q.path, r.raw)
				assert.JSONEq(t, tc.body, string(r.raw))
				if tc.missing != nil {
					p := tc.missing(f)
					rm := s.do(p.method, p.path, f.mallory.token, p.body)
					assert.Equal(t, r.status, rm.status, "an id that names nothing answers the same: %s %s: %s", p.method, p.path, rm.raw)
					assert.Equal(t, string(r.raw), string(rm.raw), "an id that names nothing answers the same")
				}
				assert.JSONEq(t, before, s.victimState(t, f), "nothing changed")
			})
		}

		t.Run("a public profile shows no private field", func(t *testing.T) {
			r := s.do("GET", "/api/v1/users/"+itoa(f.alice.id), f.mallory.token, nil)
			require.Equal(t, http.StatusOK, r.status, "%s", r.raw)
			assert.ElementsMatch(t, userPublicKeys, keys(r.json(t)))
		})
		t.Run("the list holds only my conversations", func(t *testing.T) {
			assert.Equal(t, []int64{f.m}, s.listConversations(t, f.mallory))
		})

		t.Run("a reply cannot name another conversation's message", func(t *testing.T) {
			r := s.do("POST", messagesPath(f.m), f.mallory.token, map[string]any{"content": "re", "parent_message_id": f.aliceMsg})
			assert.Equal(t, http.StatusUnprocessableEntity, r.status, "%s", r.raw)
			rm := s.do("POST", messagesPath(f.m), f.mallory.token, map[string]any{"content": "re", "parent_message_id": missingID})
			assert.Equal(t, r.status, rm.status, "a parent that does not exist answers the same: %s", rm.raw)
			assert.Equal(t, string(r.raw), string(rm.raw), "a parent that does not exist answers the same")
			assert.JSONEq(t, before, s.victimState(t, f), "nothing changed")
		})

		t.Run("no event reached anyone", func(t *testing.T) {
			for name, c := range watchers {
				c.quiet(t, name+" hears nothing of the attempts")
			}
			self.quiet(t, "the attacker hears nothing either")
		})
		t.Run("the watchers were listening", func(t *testing.T) {
			s.send(t, f.bob, f.g, "still here")
			watchers["alice"].expectEvent(t, convIdent(f.g), "new_message")
			s.send(t, f.alice, f.d, "me too")
			watchers["bob"].expectEvent(t, convIdent(f.d), "new_message")
		})

		// A DM with a user is found again rather than duplicated: the
		// lookup must be of the caller's DM, never of the victims' one.
		t.Run("a DM lookup never returns someone else's DM", func(t *testing.T) {
			for _, ids := range [][]int64{{f.alice.id, f.bob.id}, {f.bob.id, f.alice.id}, {f.alice.id}, {f.bob.id, f.bob.id}} {
				r := s.do("POST", conversationsPath, f.mallory.token, map[string]any{"conversation_type": "direct", "member_ids": ids})
				require.Less(t, r.status, 500, "%s", r.raw)
				if r.status < 300 {
					c := dataOf(t, r)
					assert.NotEqual(t, f.d, num(t, c["id"]), "member_ids %v: not alice and bob's DM", ids)
					assert.Contains(t, memberIDs(t, c), f.mallory.id, "member_ids %v: the caller is in it", ids)
					assert.Len(t, memberIDs(t, c), 2)
				}
			}
			assert.NotContains(t, s.listConversations(t, f.mallory), f.d)
			c := dataOf(t, s.do("GET", convPath(f.d), f.alice.token, nil))
			assert.ElementsMatch(t, []int64{f.alice.id, f.bob.id}, memberIDs(t, c), "d's members are unchanged")
			assert.Equal(t, http.StatusForbidden, s.do("GET", convPath(f.d), f.mallory.token, nil).status)
		})
	})
}

// GET and DELETE /conversations/:id answer 403 to a non-member, as api.md
// says, and 404 to an id that names nothing: these two routes tell an
// outsider which conversation ids exist. The nested routes do not.
func TestSecurityBOLAConversationProbe(t *testing.T) {
	eachMode(t, func(t *testing.T, m mode) {
		s := start(t, secConfig(t, m))
		f := s.bolaFixture(t)
		for _, method := range []string{"GET", "DELETE"} {
			r := s.do(method, convPath(f.g), f.mallory.token, nil)
			assert.Equal(t, http.StatusForbidden, r.status, "%s", r.raw)
			assert.JSONEq(t, notAuthorized, string(r.raw))
			r = s.do(method, convPath(missingID), f.mallory.token, nil)
			assert.Equal(t, http.StatusNotFound, r.status, "%s", r.raw)
			assert.JSONEq(t, notFound, string(r.raw))
		}
		assert.Equal(t, http.StatusOK, s.do("GET", convPath(f.g), f.bob.token, nil).status, "the group is still there")
	})
}

// Every channel subscription and action, driven by an outsider with another
// user's conversation and call ids, and signals aimed outside a call.
func TestSecurityBOLACable(t *testing.T) {
	eachMode(t, func(t *testing.T, m mode) {
		s := start(t, secConfig(t, m))
		f := s.bolaFixture(t)
		watchers := s.victimWatchers(t, f)
		mal := s.cable(t, f.mallory)
		mal.mustConfirm(t, callIdent)
		mal.mustConfirm(t, convIdent(f.m))
		oscar := s.cable(t, f.oscar)
		oscar.mustConfirm(t, callIdent)
		before := s.victimState(t, f)

		t.Run("subscriptions", func(t *testing.T) {
			for _, id := range []string{
				convIdent(f.g),
				convIdent(f.d),
				convIdent(missingID),
				`{"channel":"ConversationChannel","conversation_id":"` + itoa(f.g) + `"}`,
				`{"channel":"ConversationChannel","conversation_id":"` + itoa(missingID) + `"}`,
				`{"conversation_id":` + itoa(f.d) + `,"channel":"ConversationChannel"}`,
			} {
				mal.mustReject(t, id)
			}
			// A key given twice: parsers disagree on which one counts, so the
			// answer is free, but neither g's nor d's stream may be joined.
			for _, id := range []string{
				`{"channel":"ConversationChannel","conversation_id":` + itoa(f.m) + `,"conversation_id":` + itoa(f.g) + `}`,
				`{"channel":"ConversationChannel","conversation_id":` + itoa(f.d) + `,"conversation_id":` + itoa(f.m) + `}`,
			} {
				mal.subscribe(t, id)
			}
			// Typing on the refused identifiers, and on her own one while
			// naming g in the data, reaches nobody in g or d.
			for _, id := range []string{convIdent(f.g), convIdent(f.d)} {
				mal.perform(id, map[string]any{"action": "typing"})
				mal.perform(id, map[string]any{"action": "stop_typing"})
			}
			mal.perform(convIdent(f.m), map[string]any{"action": "typing", "conversation_id": f.g})
			mal.expectEvent(t, convIdent(f.m), "typing_start")
			mal.perform(convIdent(f.m), map[string]any{"action": "stop_typing", "conversation_id": f.g})
			mal.expectEvent(t, convIdent(f.m), "typing_stop")
			// Activity in g and d reaches the watchers only.
			s.send(t, f.bob, f.g, "secret in g")
			s.send(t, f.alice, f.d, "secret in d")
			watchers["alice"].expectEvent(t, convIdent(f.g), "new_message")
			watchers["bob"].expectEvent(t, convIdent(f.d), "new_message")
			for _, c := range watchers {
				c.expectNone(t, onIdent(convIdent(f.g), ofType("typing_start")), wsQuiet)
				c.expectNone(t, onIdent(convIdent(f.d), ofType("typing_start")), wsQuiet)
				c.discard()
			}
			// Her own typing may come back on the doubled identifiers that
			// landed on m; g's and d's messages may not.
			mal.expectNone(t, func(fr map[string]any) bool {
				msg, _ := fr["message"].(map[string]any)
				return msg != nil && msg["type"] != "typing_start" && msg["type"] != "typing_stop"
			}, wsQuiet)
			mal.discard()
			before = s.victimState(t, f) // the two messages above
		})

		t.Run("streams of other users", func(t *testing.T) {
			// Parameters naming another user cannot point a subscription at
			// their stream, whatever the answer.
			for _, id := range []string{
				`{"channel":"UserChannel","user_id":` + itoa(f.alice.id) + `}`,
				`{"channel":"CallChannel","user_id":` + itoa(f.alice.id) + `}`,
				`{"channel":"UserChannel","user_id":"` + itoa(f.bob.id) + `"}`,
			} {
				mal.subscribe(t, id)
			}
			k := num(t, s.createGroup(t, f.bob, "new", f.alice)["id"])
			watchers["alice"].expectEvent(t, userIdent, "new_conversation")
			kc := num(t, s.startCall(t, f.bob, k, "audio")["id"])
			expectCall(t, watchers["alice"], "incoming_call", kc)
			s.endCall(t, f.bob, k, kc)
			expectCall(t, watchers["alice"], "call_ended", kc)
			mal.expectNone(t, func(fr map[string]any) bool {
				_, isMsg := fr["message"]
				return isMsg && fr["identifier"] != convIdent(f.m)
			}, wsQuiet)
			mal.discard()
			for _, c := range watchers {
				c.discard()
			}
			before = s.victimState(t, f)
		})

		t.Run("call actions", func(t *testing.T) {
			actions := []struct {
				name string
				data func(call int64) map[string]any
			}{
				{"accept_call", func(call int64) map[string]any {
					return map[string]any{"action": "accept_call", "call_session_id": call}
				}},
				{"decline_call", func(call int64) map[string]any {
					return map[string]any{"action": "decline_call", "call_session_id": call}
				}},
				{"end_call", func(call int64) map[string]any { return map[string]any{"action": "end_call", "call_session_id": call} }},
				{"toggle_mute", func(call int64) map[string]any {
					return map[string]any{"action": "toggle_mute", "call_session_id": call, "muted": true}
				}},
				{"toggle_camera", func(call int64) map[string]any {
					return map[string]any{"action": "toggle_camera", "call_session_id": call, "camera_off": true}
				}},
				{"send_signal to the caller", func(call int64) map[string]any {
					return map[string]any{"action": "send_signal", "call_session_id": call, "target_user_id": f.alice.id, "signal": json.RawMessage(offerSignal)}
				}},
				{"send_signal to a callee", func(call int64) map[string]any {
					return map[string]any{"action": "send_signal", "call_session_id": call, "target_user_id": f.bob.id, "signal": json.RawMessage(iceSignal)}
				}},
				{"send_signal as a string id", func(call int64) map[string]any {
					return map[string]any{"action": "send_signal", "call_session_id": itoa(call), "target_user_id": itoa(f.bob.id), "signal": json.RawMessage(iceSignal)}
				}},
			}
			// Another conversation's call and a call that does not exist:
			// each is silence for everyone, the attacker included, so the
			// two cannot be told apart. One quiet period covers them all;
			// a leaked frame names its action by its type.
			for _, a := range actions {
				for _, call := range []int64{f.gc, f.dc, missingID} {
					mal.perform(callIdent, a.data(call))
				}
			}
			for name, c := range watchers {
				c.quiet(t, name+" hears nothing")
			}
			mal.quiet(t, "a call that exists and one that does not answer alike: nothing")
			assert.JSONEq(t, before, s.victimState(t, f), "nothing changed")
		})

		t.Run("signals to users outside the call", func(t *testing.T) {
			// A participant of a victim's call aims at the outsider.
			sendSignal(watchers["alice"], f.gc, f.mallory.id, offerSignal)
			sendSignal(watchers["bob"], f.dc, f.mallory.id, offerSignal)
			// The outsider's own call, aimed at a victim.
			sendSignal(mal, f.mc, f.alice.id, offerSignal)
			sendSignal(mal, f.mc, f.bob.id, iceSignal)
			noSignal(t, mal, f.gc)
			noSignal(t, mal, f.dc)
			noSignal(t, watchers["alice"], f.mc)
			noSignal(t, watchers["bob"], f.mc)
			// The control: inside a call the same action works.
			sendSignal(mal, f.mc, f.oscar.id, offerSignal)
			expectSignal(t, oscar, f.mc, f.mallory.id, offerSignal)
			sendSignal(watchers["alice"], f.gc, f.bob.id, answerSignal)
			expectSignal(t, watchers["bob"], f.gc, f.alice.id, answerSignal)
			for name, c := range watchers {
				c.quiet(t, name+" hears nothing else")
			}
			assert.JSONEq(t, before, s.victimState(t, f), "nothing changed")
		})

		t.Run("the owner's action still works", func(t *testing.T) {
			callAction(watchers["bob"], "accept_call", f.gc)
			checkAccepted(t, watchers["alice"], f.gc, f.bob)
			mal.quiet(t, "the attacker hears nothing of it")
		})
	})
}

// routesWithoutIDs name no object of another user: the caller's own
// account, the caller's list, public endpoints and the socket (whose
// subscriptions TestSecurityBOLACable covers).
var routesWithoutIDs = []string{
	"GET /up", "GET /readyz", "GET /metrics", "GET /cable",
	// The API reference (docs/api), the same for everyone.
	"GET /openapi.json", "GET /openapi.yaml", "GET /asyncapi.yaml", "GET /docs",
	"POST /auth/register", "POST /auth/login", "DELETE /auth/logout",
	"GET /api/v1/users", "GET /api/v1/users/me", "GET /api/v1/ice_servers",
	"GET /api/v1/conversations", "POST /api/v1/conversations",
	// A public profile: TestSecurityBOLARest checks it shows nothing private.
	"GET /api/v1/users/:id",
}

// The REST matrix covers every route the server registers: a new route
// with ids fails here until it has a row in bolaRestCases.
func TestSecurityBOLACoversEveryRoute(t *testing.T) {
	s := start(t, secConfig(t, modes[0]))
	srv, ok := s.app.Handler.(*httpport.Server)
	require.True(t, ok, "the app's handler is the REST server (%T)", s.app.Handler)
	e := srv.Echo()
	f := bolaFixture{alice: account{id: 1}, bob: account{id: 2}, mallory: account{id: 3}, oscar: account{id: 4},
		g: 5, d: 6, m: 7, aliceMsg: 8, bobMsg: 9, dMsg: 10, mMsg: 11, bobReaction: 12, dReaction: 13, mReaction: 14, gc: 15, dc: 16, mc: 17}
	covered := map[string]bool{}
	for _, tc := range bolaRestCases() {
		reqs := []bolaReq{tc.req(f)}
		if tc.missing != nil {
			reqs = append(reqs, tc.missing(f))
		}
		for _, q := range reqs {
			path, _, _ := strings.Cut(q.path, "?")
			c := e.NewContext(httptest.NewRequest(q.method, path, nil), httptest.NewRecorder())
			e.Router().Find(q.method, path, c)
			require.NotEmpty(t, c.Path(), "%s %s matches a route", q.method, path)
			covered[q.method+" "+c.Path()] = true
		}
	}
	for _, r := range routesWithoutIDs {
		covered[r] = true
	}
	var routes int
	for _, r := range e.Routes() {
		switch r.Method {
		case "GET", "POST", "PUT", "PATCH", "DELETE":
		default:
			continue // echo's own not-found and any-method routes
		}
		routes++
		assert.True(t, covered[r.Method+" "+r.Path], "%s %s has no row in the BOLA matrix", r.Method, r.Path)
	}
	assert.Greater(t, routes, 25, "the routes were listed")
}

package main_test

import (
	"net/http"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// missingID names nothing, in every table.
const missingID int64 = 987654321

// chatUsers are the actors of the authorization matrix, fresh for each case:
// alice creates (so administers) group g and group h; bob and carol are
// members of g; dave is a member of h only; eve created a DM with frank.
type chatUsers struct {
	alice, bob, carol, dave, eve, frank account
}

func (u chatUsers) byName(t *testing.T, name string) account {
	t.Helper()
	switch name {
	case "alice":
		return u.alice
	case "bob":
		return u.bob
	case "carol":
		return u.carol
	case "dave":
		return u.dave
	case "eve":
		return u.eve
	case "frank":
		return u.frank
	}
	t.Fatalf("unknown actor %q", name)
	return account{}
}

// userSeq keeps the usernames of fresh users unique within a server.
var userSeq atomic.Int64

// freshUsers registers a new set of actors.
func (s *stack) freshUsers() chatUsers {
	s.t.Helper()
	n := "_" + itoa(userSeq.Add(1))
	return chatUsers{
		alice: s.register("alice" + n), bob: s.register("bob" + n), carol: s.register("carol" + n),
		dave: s.register("dave" + n), eve: s.register("eve" + n), frank: s.register("frank" + n),
	}
}

// chatFixture is a fresh set of users, conversations, messages and reactions.
type chatFixture struct {
	chatUsers
	g, h, d int64
	// Messages: bob's and alice's in g, a deleted one of bob's in g,
	// alice's in h, eve's in d.
	bobMsg, aliceMsg, deletedMsg, hMsg, dMsg int64
	// Reactions: bob's and carol's on aliceMsg, alice's on hMsg, eve's on dMsg.
	bobReaction, carolReaction, hReaction, dReaction int64
}

func (s *stack) chatFixture(t *testing.T) chatFixture {
	t.Helper()
	f := chatFixture{chatUsers: s.freshUsers()}
	u := f.chatUsers
	f.g = num(t, s.createGroup(t, u.alice, "g", u.bob, u.carol)["id"])
	f.h = num(t, s.createGroup(t, u.alice, "h", u.dave)["id"])
	r := s.do("POST", conversationsPath, u.eve.token, map[string]any{"conversation_type": "direct", "member_ids": []int64{u.frank.id}})
	require.Equal(t, http.StatusCreated, r.status, "%s", r.raw)
	f.d = num(t, dataOf(t, r)["id"])
	f.bobMsg = num(t, s.send(t, u.bob, f.g, "bob in g")["id"])
	f.aliceMsg = num(t, s.send(t, u.alice, f.g, "alice in g")["id"])
	f.deletedMsg = num(t, s.send(t, u.bob, f.g, "deleted")["id"])
	r = s.do("DELETE", messagePath(f.g, f.deletedMsg), u.bob.token, nil)
	require.Equal(t, http.StatusOK, r.status, "%s", r.raw)
	f.hMsg = num(t, s.send(t, u.alice, f.h, "alice in h")["id"])
	f.dMsg = num(t, s.send(t, u.eve, f.d, "eve in d")["id"])
	f.bobReaction = num(t, s.react(t, u.bob, f.aliceMsg, "👍")["id"])
	f.carolReaction = num(t, s.react(t, u.carol, f.aliceMsg, "🎉")["id"])
	f.hReaction = num(t, s.react(t, u.alice, f.hMsg, "👍")["id"])
	f.dReaction = num(t, s.react(t, u.eve, f.dMsg, "👍")["id"])
	return f
}

type authzCase struct {
	name string
	as   string
	req  func(f chatFixture, u chatUsers) (method, path string, body any)
	// status is the expected status; body, when set, the exact JSON body.
	status int
	body   string
	// then checks the effect (or the absence of one) afterwards.
	then func(t *testing.T, s *stack, f chatFixture, u chatUsers)
}

const (
	notFound      = `{"error":"Not found"}`
	notAuthorized = `{"error":"Not authorized"}`
)

func get(path func(f chatFixture) string) func(chatFixture, chatUsers) (string, string, any) {
	return func(f chatFixture, _ chatUsers) (string, string, any) { return "GET", path(f), nil }
}

func del(path func(f chatFixture, u chatUsers) string) func(chatFixture, chatUsers) (string, string, any) {
	return func(f chatFixture, u chatUsers) (string, string, any) { return "DELETE", path(f, u), nil }
}

func sendIn(cid func(f chatFixture) int64) func(chatFixture, chatUsers) (string, string, any) {
	return func(f chatFixture, _ chatUsers) (string, string, any) {
		return "POST", messagesPath(cid(f)), map[string]any{"content": "hello"}
	}
}

func editMsg(path func(f chatFixture) string) func(chatFixture, chatUsers) (string, string, any) {
	return func(f chatFixture, _ chatUsers) (string, string, any) {
		return "PATCH", path(f), map[string]any{"content": "changed"}
	}
}

func addMember(cid func(f chatFixture) int64, uid func(u chatUsers) int64) func(chatFixture, chatUsers) (string, string, any) {
	return func(f chatFixture, u chatUsers) (string, string, any) {
		return "POST", membershipsPath(cid(f)), map[string]any{"user_id": uid(u)}
	}
}

func reactTo(mid func(f chatFixture) int64) func(chatFixture, chatUsers) (string, string, any) {
	return func(f chatFixture, _ chatUsers) (string, string, any) {
		return "POST", "/api/v1/reactions", map[string]any{"reaction": map[string]any{"message_id": mid(f), "emoji": "🔥"}}
	}
}

// expectStatus checks what actor gets for a request.
func expectStatus(as string, method string, path func(f chatFixture) string, status int) func(t *testing.T, s *stack, f chatFixture, u chatUsers) {
	return func(t *testing.T, s *stack, f chatFixture, u chatUsers) {
		t.Helper()
		r := s.do(method, path(f), u.byName(t, as).token, nil)
		assert.Equal(t, status, r.status, "then %s %s as %s: %s", method, path(f), as, r.raw)
	}
}

// messageContent returns the content of message mid in conversation cid as
// seen by a, or "" when it is not in the history.
func (s *stack) messageContent(t *testing.T, a account, cid, mid int64) string {
	t.Helper()
	m := findMessage(t, s.allHistory(t, a, cid, 100), mid)
	if m == nil {
		return ""
	}
	return m["content"].(string)
}

// reactionIDs returns the ids of the reactions on message mid of cid, as seen by a.
func (s *stack) reactionIDs(t *testing.T, a account, cid, mid int64) []int64 {
	t.Helper()
	m := findMessage(t, s.allHistory(t, a, cid, 100), mid)
	require.NotNil(t, m, "message %d is in the history", mid)
	return idsOf(t, objs(t, m["reactions"]))
}

func TestChatAuthorization(t *testing.T) {
	g := func(f chatFixture) int64 { return f.g }
	h := func(f chatFixture) int64 { return f.h }
	d := func(f chatFixture) int64 { return f.d }
	missing := func(chatFixture) int64 { return missingID }

	// contentIs checks message mid's content as seen by as; "" means it is not in the history.
	contentIs := func(cid func(chatFixture) int64, mid func(chatFixture) int64, as, content string) func(t *testing.T, s *stack, f chatFixture, u chatUsers) {
		return func(t *testing.T, s *stack, f chatFixture, u chatUsers) {
			t.Helper()
			assert.Equal(t, content, s.messageContent(t, u.byName(t, as), cid(f), mid(f)), "the message afterwards")
		}
	}
	membersOf := func(cid func(chatFixture) int64, as string, want ...string) func(t *testing.T, s *stack, f chatFixture, u chatUsers) {
		return func(t *testing.T, s *stack, f chatFixture, u chatUsers) {
			t.Helper()
			r := s.do("GET", convPath(cid(f)), u.byName(t, as).token, nil)
			require.Equal(t, http.StatusOK, r.status, "%s", r.raw)
			var ids []int64
			for _, name := range want {
				ids = append(ids, u.byName(t, name).id)
			}
			assert.ElementsMatch(t, ids, memberIDs(t, dataOf(t, r)), "members afterwards")
		}
	}

	cases := []authzCase{
		// GET /conversations/:id
		{name: "show/member", as: "bob", req: get(func(f chatFixture) string { return convPath(f.g) }), status: 200},
		{name: "show/admin", as: "alice", req: get(func(f chatFixture) string { return convPath(f.g) }), status: 200},
		{name: "show/non-member", as: "dave", req: get(func(f chatFixture) string { return convPath(f.g) }), status: 403, body: notAuthorized},
		{name: "show/third user on a DM", as: "alice", req: get(func(f chatFixture) string { return convPath(f.d) }), status: 403, body: notAuthorized},
		{name: "show/missing", as: "alice", req: get(func(chatFixture) string { return convPath(missingID) }), status: 404, body: notFound},

		// DELETE /conversations/:id
		{name: "delete conversation/creator", as: "alice", req: del(func(f chatFixture, _ chatUsers) string { return convPath(f.g) }), status: 200, body: `{"message":"Conversation deleted"}`,
			then: func(t *testing.T, s *stack, f chatFixture, u chatUsers) {
				expectStatus("bob", "GET", func(f chatFixture) string { return convPath(f.g) }, 404)(t, s, f, u)
				expectStatus("bob", "GET", func(f chatFixture) string { return messagesPath(f.g) }, 404)(t, s, f, u)
				expectStatus("alice", "GET", func(f chatFixture) string { return convPath(f.g) }, 404)(t, s, f, u)
				expectStatus("alice", "DELETE", func(f chatFixture) string { return reactionPath(f.bobReaction) }, 404)(t, s, f, u)
				assert.NotContains(t, s.listConversations(t, u.bob), f.g)
				assert.Contains(t, s.listConversations(t, u.alice), f.h, "other conversations stay")
			}},
		{name: "delete conversation/member", as: "bob", req: del(func(f chatFixture, _ chatUsers) string { return convPath(f.g) }), status: 403, body: notAuthorized,
			then: expectStatus("bob", "GET", func(f chatFixture) string { return convPath(f.g) }, 200)},
		{name: "delete conversation/non-member", as: "dave", req: del(func(f chatFixture, _ chatUsers) string { return convPath(f.g) }), status: 403, body: notAuthorized,
			then: expectStatus("bob", "GET", func(f chatFixture) string { return convPath(f.g) }, 200)},
		{name: "delete conversation/third user on a DM", as: "alice", req: del(func(f chatFixture, _ chatUsers) string { return convPath(f.d) }), status: 403, body: notAuthorized},
		{name: "delete conversation/DM creator", as: "eve", req: del(func(f chatFixture, _ chatUsers) string { return convPath(f.d) }), status: 200, body: `{"message":"Conversation deleted"}`,
			then: expectStatus("frank", "GET", func(f chatFixture) string { return convPath(f.d) }, 404)},
		{name: "delete conversation/DM other member", as: "frank", req: del(func(f chatFixture, _ chatUsers) string { return convPath(f.d) }), status: 403, body: notAuthorized},
		{name: "delete conversation/missing", as: "alice", req: del(func(chatFixture, chatUsers) string { return convPath(missingID) }), status: 404, body: notFound},

		// POST /conversations/:id/memberships
		{name: "add member/admin", as: "alice", req: addMember(g, func(u chatUsers) int64 { return u.dave.id }), status: 201, body: `{"message":"Member added"}`,
			then: func(t *testing.T, s *stack, f chatFixture, u chatUsers) {
				expectStatus("dave", "GET", func(f chatFixture) string { return convPath(f.g) }, 200)(t, s, f, u)
				expectStatus("dave", "GET", func(f chatFixture) string { return messagesPath(f.g) }, 200)(t, s, f, u)
				membersOf(g, "dave", "alice", "bob", "carol", "dave")(t, s, f, u)
				assert.Contains(t, s.listConversations(t, u.dave), f.g)
			}},
		{name: "add member/member", as: "bob", req: addMember(g, func(u chatUsers) int64 { return u.dave.id }), status: 403, body: notAuthorized,
			then: expectStatus("dave", "GET", func(f chatFixture) string { return messagesPath(f.g) }, 404)},
		{name: "add member/non-member adds self", as: "dave", req: addMember(g, func(u chatUsers) int64 { return u.dave.id }), status: 404, body: notFound,
			then: expectStatus("dave", "GET", func(f chatFixture) string { return messagesPath(f.g) }, 404)},
		{name: "add member/third user to a DM", as: "alice", req: addMember(d, func(u chatUsers) int64 { return u.alice.id }), status: 404, body: notFound},
		{name: "add member/DM creator to the DM", as: "eve", req: addMember(d, func(u chatUsers) int64 { return u.alice.id }), status: 422, body: `{"errors":["A direct conversation has exactly two members"]}`,
			then: membersOf(d, "eve", "eve", "frank")},
		{name: "add member/missing conversation", as: "alice", req: addMember(missing, func(u chatUsers) int64 { return u.dave.id }), status: 404, body: notFound},

		// DELETE /conversations/:id/memberships/:user_id
		{name: "remove member/admin removes member", as: "alice", req: del(func(f chatFixture, u chatUsers) string { return membershipPath(f.g, u.bob.id) }), status: 200, body: `{"message":"Left conversation"}`,
			then: func(t *testing.T, s *stack, f chatFixture, u chatUsers) {
				membersOf(g, "alice", "alice", "carol")(t, s, f, u)
				expectStatus("bob", "GET", func(f chatFixture) string { return messagesPath(f.g) }, 404)(t, s, f, u)
				r := s.do("POST", messagesPath(f.g), u.bob.token, map[string]any{"content": "still here?"})
				assert.Equal(t, http.StatusNotFound, r.status, "removed users cannot post: %s", r.raw)
				r = s.do("PATCH", messagePath(f.g, f.bobMsg), u.bob.token, map[string]any{"content": "x"})
				assert.Equal(t, http.StatusNotFound, r.status, "nor edit their old messages: %s", r.raw)
				r = s.do("DELETE", messagePath(f.g, f.bobMsg), u.bob.token, nil)
				assert.Equal(t, http.StatusNotFound, r.status, "nor delete them: %s", r.raw)
				r = s.do("POST", "/api/v1/reactions", u.bob.token, map[string]any{"reaction": map[string]any{"message_id": f.aliceMsg, "emoji": "🔥"}})
				assert.Equal(t, http.StatusNotFound, r.status, "nor react: %s", r.raw)
				r = s.do("DELETE", reactionPath(f.bobReaction), u.bob.token, nil)
				assert.Equal(t, http.StatusNotFound, r.status, "nor remove their reactions: %s", r.raw)
				r = s.do("DELETE", membershipPath(f.g, u.bob.id), u.bob.token, nil)
				assert.Equal(t, http.StatusNotFound, r.status, "nor leave again: %s", r.raw)
				r = s.do("GET", convPath(f.g), u.bob.token, nil)
				assert.Equal(t, http.StatusForbidden, r.status, "the conversation itself is 403: %s", r.raw)
				assert.NotContains(t, s.listConversations(t, u.bob), f.g)
			}},
		{name: "remove member/member leaves", as: "bob", req: del(func(f chatFixture, u chatUsers) string { return membershipPath(f.g, u.bob.id) }), status: 200, body: `{"message":"Left conversation"}`,
			then: func(t *testing.T, s *stack, f chatFixture, u chatUsers) {
				membersOf(g, "carol", "alice", "carol")(t, s, f, u)
				expectStatus("bob", "GET", func(f chatFixture) string { return messagesPath(f.g) }, 404)(t, s, f, u)
			}},
		{name: "remove member/admin leaves", as: "alice", req: del(func(f chatFixture, u chatUsers) string { return membershipPath(f.g, u.alice.id) }), status: 200, body: `{"message":"Left conversation"}`,
			then: membersOf(g, "bob", "bob", "carol")},
		{name: "remove member/member removes another member", as: "bob", req: del(func(f chatFixture, u chatUsers) string { return membershipPath(f.g, u.carol.id) }), status: 403, body: notAuthorized,
			then: membersOf(g, "bob", "alice", "bob", "carol")},
		{name: "remove member/member removes the admin", as: "bob", req: del(func(f chatFixture, u chatUsers) string { return membershipPath(f.g, u.alice.id) }), status: 403, body: notAuthorized,
			then: membersOf(g, "bob", "alice", "bob", "carol")},
		{name: "remove member/admin removes a non-member", as: "alice", req: del(func(f chatFixture, u chatUsers) string { return membershipPath(f.g, u.dave.id) }), status: 404, body: notFound},
		{name: "remove member/admin removes a missing user", as: "alice", req: del(func(f chatFixture, _ chatUsers) string { return membershipPath(f.g, missingID) }), status: 404, body: notFound},
		{name: "remove member/non-member removes a member", as: "dave", req: del(func(f chatFixture, u chatUsers) string { return membershipPath(f.g, u.bob.id) }), status: 404, body: notFound,
			then: membersOf(g, "bob", "alice", "bob", "carol")},
		{name: "remove member/non-member removes self", as: "dave", req: del(func(f chatFixture, u chatUsers) string { return membershipPath(f.g, u.dave.id) }), status: 404, body: notFound},
		{name: "remove member/third user on a DM", as: "alice", req: del(func(f chatFixture, u chatUsers) string { return membershipPath(f.d, u.eve.id) }), status: 404, body: notFound},
		{name: "remove member/leaving a DM", as: "eve", req: del(func(f chatFixture, u chatUsers) string { return membershipPath(f.d, u.eve.id) }), status: 422, body: `{"errors":["Members cannot leave a direct conversation"]}`,
			then: membersOf(d, "eve", "eve", "frank")},
		{name: "remove member/DM member leaving", as: "frank", req: del(func(f chatFixture, u chatUsers) string { return membershipPath(f.d, u.frank.id) }), status: 422, body: `{"errors":["Members cannot leave a direct conversation"]}`,
			then: membersOf(d, "frank", "eve", "frank")},
		{name: "remove member/DM admin removes the other", as: "eve", req: del(func(f chatFixture, u chatUsers) string { return membershipPath(f.d, u.frank.id) }), status: 422, body: `{"errors":["Members cannot leave a direct conversation"]}`,
			then: membersOf(d, "eve", "eve", "frank")},
		{name: "remove member/missing conversation", as: "alice", req: del(func(_ chatFixture, u chatUsers) string { return membershipPath(missingID, u.alice.id) }), status: 404, body: notFound},

		// GET /conversations/:id/messages
		{name: "history/member", as: "carol", req: get(func(f chatFixture) string { return messagesPath(f.g) }), status: 200},
		{name: "history/non-member", as: "dave", req: get(func(f chatFixture) string { return messagesPath(f.g) }), status: 404, body: notFound},
		{name: "history/third user on a DM", as: "alice", req: get(func(f chatFixture) string { return messagesPath(f.d) }), status: 404, body: notFound},
		{name: "history/missing conversation", as: "alice", req: get(func(chatFixture) string { return messagesPath(missingID) }), status: 404, body: notFound},

		// POST /conversations/:id/messages
		{name: "send/member", as: "carol", req: sendIn(g), status: 201},
		{name: "send/DM member", as: "frank", req: sendIn(d), status: 201},
		{name: "send/non-member", as: "dave", req: sendIn(g), status: 404, body: notFound,
			then: func(t *testing.T, s *stack, f chatFixture, u chatUsers) {
				assert.Len(t, s.allHistory(t, u.alice, f.g, 100), 2, "nothing was posted")
			}},
		{name: "send/third user on a DM", as: "alice", req: sendIn(d), status: 404, body: notFound,
			then: func(t *testing.T, s *stack, f chatFixture, u chatUsers) {
				assert.Len(t, s.allHistory(t, u.eve, f.d, 100), 1, "nothing was posted")
			}},
		{name: "send/missing conversation", as: "alice", req: sendIn(missing), status: 404, body: notFound},

		// PATCH /conversations/:id/messages/:mid
		{name: "edit/author", as: "bob", req: editMsg(func(f chatFixture) string { return messagePath(f.g, f.bobMsg) }), status: 200,
			then: contentIs(g, func(f chatFixture) int64 { return f.bobMsg }, "carol", "changed")},
		{name: "edit/admin on another's message", as: "alice", req: editMsg(func(f chatFixture) string { return messagePath(f.g, f.bobMsg) }), status: 403, body: notAuthorized,
			then: contentIs(g, func(f chatFixture) int64 { return f.bobMsg }, "carol", "bob in g")},
		{name: "edit/member on another's message", as: "carol", req: editMsg(func(f chatFixture) string { return messagePath(f.g, f.bobMsg) }), status: 403, body: notAuthorized,
			then: contentIs(g, func(f chatFixture) int64 { return f.bobMsg }, "carol", "bob in g")},
		{name: "edit/non-member", as: "dave", req: editMsg(func(f chatFixture) string { return messagePath(f.g, f.bobMsg) }), status: 404, body: notFound,
			then: contentIs(g, func(f chatFixture) int64 { return f.bobMsg }, "carol", "bob in g")},
		{name: "edit/third user on a DM", as: "alice", req: editMsg(func(f chatFixture) string { return messagePath(f.d, f.dMsg) }), status: 404, body: notFound,
			then: contentIs(d, func(f chatFixture) int64 { return f.dMsg }, "eve", "eve in d")},
		{name: "edit/own message of another conversation under this path", as: "alice", req: editMsg(func(f chatFixture) string { return messagePath(f.g, f.hMsg) }), status: 404, body: notFound,
			then: contentIs(h, func(f chatFixture) int64 { return f.hMsg }, "dave", "alice in h")},
		{name: "edit/a DM message under a conversation of mine", as: "alice", req: editMsg(func(f chatFixture) string { return messagePath(f.g, f.dMsg) }), status: 404, body: notFound},
		{name: "edit/deleted message", as: "bob", req: editMsg(func(f chatFixture) string { return messagePath(f.g, f.deletedMsg) }), status: 404, body: notFound,
			then: contentIs(g, func(f chatFixture) int64 { return f.deletedMsg }, "bob", "")},
		{name: "edit/missing message", as: "bob", req: editMsg(func(f chatFixture) string { return messagePath(f.g, missingID) }), status: 404, body: notFound},
		{name: "edit/missing conversation", as: "bob", req: editMsg(func(f chatFixture) string { return messagePath(missingID, f.bobMsg) }), status: 404, body: notFound},

		// DELETE /conversations/:id/messages/:mid
		{name: "delete message/author", as: "bob", req: del(func(f chatFixture, _ chatUsers) string { return messagePath(f.g, f.bobMsg) }), status: 200, body: `{"message":"Message deleted"}`,
			then: contentIs(g, func(f chatFixture) int64 { return f.bobMsg }, "carol", "")},
		{name: "delete message/admin on another's message", as: "alice", req: del(func(f chatFixture, _ chatUsers) string { return messagePath(f.g, f.bobMsg) }), status: 200, body: `{"message":"Message deleted"}`,
			then: contentIs(g, func(f chatFixture) int64 { return f.bobMsg }, "carol", "")},
		{name: "delete message/member on another's message", as: "carol", req: del(func(f chatFixture, _ chatUsers) string { return messagePath(f.g, f.bobMsg) }), status: 403, body: notAuthorized,
			then: contentIs(g, func(f chatFixture) int64 { return f.bobMsg }, "carol", "bob in g")},
		{name: "delete message/member on the admin's message", as: "bob", req: del(func(f chatFixture, _ chatUsers) string { return messagePath(f.g, f.aliceMsg) }), status: 403, body: notAuthorized,
			then: contentIs(g, func(f chatFixture) int64 { return f.aliceMsg }, "carol", "alice in g")},
		{name: "delete message/non-member", as: "dave", req: del(func(f chatFixture, _ chatUsers) string { return messagePath(f.g, f.bobMsg) }), status: 404, body: notFound,
			then: contentIs(g, func(f chatFixture) int64 { return f.bobMsg }, "carol", "bob in g")},
		{name: "delete message/third user on a DM", as: "alice", req: del(func(f chatFixture, _ chatUsers) string { return messagePath(f.d, f.dMsg) }), status: 404, body: notFound,
			then: contentIs(d, func(f chatFixture) int64 { return f.dMsg }, "frank", "eve in d")},
		{name: "delete message/DM member on the other's message", as: "frank", req: del(func(f chatFixture, _ chatUsers) string { return messagePath(f.d, f.dMsg) }), status: 403, body: notAuthorized},
		{name: "delete message/own message of another conversation under this path", as: "alice", req: del(func(f chatFixture, _ chatUsers) string { return messagePath(f.g, f.hMsg) }), status: 404, body: notFound,
			then: contentIs(h, func(f chatFixture) int64 { return f.hMsg }, "dave", "alice in h")},
		{name: "delete message/a DM message under a conversation of mine", as: "alice", req: del(func(f chatFixture, _ chatUsers) string { return messagePath(f.g, f.dMsg) }), status: 404, body: notFound,
			then: contentIs(d, func(f chatFixture) int64 { return f.dMsg }, "frank", "eve in d")},
		{name: "delete message/already deleted", as: "bob", req: del(func(f chatFixture, _ chatUsers) string { return messagePath(f.g, f.deletedMsg) }), status: 404, body: notFound},
		{name: "delete message/admin on an already deleted message", as: "alice", req: del(func(f chatFixture, _ chatUsers) string { return messagePath(f.g, f.deletedMsg) }), status: 404, body: notFound},
		{name: "delete message/missing", as: "bob", req: del(func(f chatFixture, _ chatUsers) string { return messagePath(f.g, missingID) }), status: 404, body: notFound},

		// POST /reactions
		{name: "react/member", as: "carol", req: reactTo(func(f chatFixture) int64 { return f.bobMsg }), status: 201,
			then: func(t *testing.T, s *stack, f chatFixture, u chatUsers) {
				assert.Len(t, s.reactionIDs(t, u.bob, f.g, f.bobMsg), 1)
			}},
		{name: "react/own message", as: "bob", req: reactTo(func(f chatFixture) int64 { return f.bobMsg }), status: 201},
		{name: "react/non-member", as: "dave", req: reactTo(func(f chatFixture) int64 { return f.bobMsg }), status: 404, body: notFound,
			then: func(t *testing.T, s *stack, f chatFixture, u chatUsers) {
				assert.Empty(t, s.reactionIDs(t, u.bob, f.g, f.bobMsg), "nothing was added")
			}},
		{name: "react/third user on a DM message", as: "alice", req: reactTo(func(f chatFixture) int64 { return f.dMsg }), status: 404, body: notFound,
			then: func(t *testing.T, s *stack, f chatFixture, u chatUsers) {
				assert.Equal(t, []int64{f.dReaction}, s.reactionIDs(t, u.eve, f.d, f.dMsg), "nothing was added")
			}},
		{name: "react/deleted message", as: "bob", req: reactTo(func(f chatFixture) int64 { return f.deletedMsg }), status: 404, body: notFound},
		{name: "react/missing message", as: "bob", req: reactTo(missing), status: 404, body: notFound},

		// DELETE /reactions/:id
		{name: "unreact/owner", as: "bob", req: del(func(f chatFixture, _ chatUsers) string { return reactionPath(f.bobReaction) }), status: 200, body: `{"message":"Reaction removed"}`,
			then: func(t *testing.T, s *stack, f chatFixture, u chatUsers) {
				assert.Equal(t, []int64{f.carolReaction}, s.reactionIDs(t, u.alice, f.g, f.aliceMsg))
			}},
		{name: "unreact/admin on another's reaction", as: "alice", req: del(func(f chatFixture, _ chatUsers) string { return reactionPath(f.bobReaction) }), status: 403, body: notAuthorized,
			then: func(t *testing.T, s *stack, f chatFixture, u chatUsers) {
				assert.ElementsMatch(t, []int64{f.bobReaction, f.carolReaction}, s.reactionIDs(t, u.alice, f.g, f.aliceMsg))
			}},
		{name: "unreact/member on another's reaction", as: "carol", req: del(func(f chatFixture, _ chatUsers) string { return reactionPath(f.bobReaction) }), status: 403, body: notAuthorized,
			then: func(t *testing.T, s *stack, f chatFixture, u chatUsers) {
				assert.ElementsMatch(t, []int64{f.bobReaction, f.carolReaction}, s.reactionIDs(t, u.alice, f.g, f.aliceMsg))
			}},
		{name: "unreact/non-member", as: "dave", req: del(func(f chatFixture, _ chatUsers) string { return reactionPath(f.bobReaction) }), status: 404, body: notFound,
			then: func(t *testing.T, s *stack, f chatFixture, u chatUsers) {
				assert.ElementsMatch(t, []int64{f.bobReaction, f.carolReaction}, s.reactionIDs(t, u.alice, f.g, f.aliceMsg))
			}},
		{name: "unreact/third user on a DM reaction", as: "alice", req: del(func(f chatFixture, _ chatUsers) string { return reactionPath(f.dReaction) }), status: 404, body: notFound,
			then: func(t *testing.T, s *stack, f chatFixture, u chatUsers) {
				assert.Equal(t, []int64{f.dReaction}, s.reactionIDs(t, u.eve, f.d, f.dMsg))
			}},
		{name: "unreact/DM member on the other's reaction", as: "frank", req: del(func(f chatFixture, _ chatUsers) string { return reactionPath(f.dReaction) }), status: 403, body: notAuthorized},
		{name: "unreact/missing", as: "bob", req: del(func(chatFixture, chatUsers) string { return reactionPath(missingID) }), status: 404, body: notFound},
	}

	eachMode(t, func(t *testing.T, m mode) {
		s := start(t, raised(m.config(t), "register_ip"))
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				f := s.chatFixture(t)
				u := f.chatUsers
				method, path, body := tc.req(f, u)
				r := s.do(method, path, u.byName(t, tc.as).token, body)
				require.Equal(t, tc.status, r.status, "%s %s as %s: %s", method, path, tc.as, r.raw)
				if tc.body != "" {
					assert.JSONEq(t, tc.body, string(r.raw))
				}
				if tc.then != nil {
					tc.then(t, s, f, u)
				}
			})
		}

		t.Run("unreact twice", func(t *testing.T) {
			f := s.chatFixture(t)
			u := f.chatUsers
			require.Equal(t, http.StatusOK, s.do("DELETE", reactionPath(f.bobReaction), u.bob.token, nil).status)
			r := s.do("DELETE", reactionPath(f.bobReaction), u.bob.token, nil)
			assert.Equal(t, http.StatusNotFound, r.status, "%s", r.raw)
			assert.JSONEq(t, notFound, string(r.raw))
		})

		t.Run("reactions on a deleted message", func(t *testing.T) {
			f := s.chatFixture(t)
			u := f.chatUsers
			require.Equal(t, http.StatusOK, s.do("DELETE", messagePath(f.g, f.aliceMsg), u.alice.token, nil).status)
			r := s.do("POST", "/api/v1/reactions", u.carol.token, map[string]any{"reaction": map[string]any{"message_id": f.aliceMsg, "emoji": "😢"}})
			assert.Equal(t, http.StatusNotFound, r.status, "%s", r.raw)
		})

		t.Run("unauthenticated", func(t *testing.T) {
			f := s.chatFixture(t)
			u := f.chatUsers
			for _, rt := range []struct{ method, path string }{
				{"GET", conversationsPath},
				{"POST", conversationsPath},
				{"GET", convPath(f.g)},
				{"DELETE", convPath(f.g)},
				{"POST", membershipsPath(f.g)},
				{"DELETE", membershipPath(f.g, u.bob.id)},
				{"GET", messagesPath(f.g)},
				{"POST", messagesPath(f.g)},
				{"PATCH", messagePath(f.g, f.bobMsg)},
				{"DELETE", messagePath(f.g, f.bobMsg)},
				{"POST", "/api/v1/reactions"},
				{"DELETE", reactionPath(f.bobReaction)},
			} {
				for _, token := range []string{"", "not-a-jwt"} {
					r := s.do(rt.method, rt.path, token, map[string]any{"content": "x", "user_id": u.dave.id, "message_id": f.bobMsg, "emoji": "x", "name": "x"})
					assert.Equal(t, http.StatusUnauthorized, r.status, "%s %s token %q: %s", rt.method, rt.path, token, r.raw)
				}
			}
			assert.Len(t, s.allHistory(t, u.bob, f.g, 100), 2, "nothing changed")
			assert.Len(t, s.reactionIDs(t, u.bob, f.g, f.aliceMsg), 2)
		})
	})
}

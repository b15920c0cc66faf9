package main_test

import (
	"net/http"
	"regexp"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// tsPattern is the Rails timestamp format: ISO 8601 UTC with milliseconds.
var tsPattern = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$`)

// The exact key sets of the blueprints.
var (
	conversationKeys = []string{"id", "name", "description", "conversation_type", "created_by_id", "created_at", "member_count", "members", "last_read_message_id", "unread_count", "unread_capped"}
	messageKeys      = []string{"id", "content", "edited_at", "created_at", "parent_message_id", "client_id", "message_type", "call_session", "user", "reactions"}
	userPublicKeys   = []string{"id", "username", "display_name", "avatar_url", "online"}
	reactionKeys     = []string{"id", "emoji", "message_id", "user_id"}
)

const conversationsPath = "/api/v1/conversations"

func convPath(id int64) string             { return conversationsPath + "/" + itoa(id) }
func messagesPath(cid int64) string        { return convPath(cid) + "/messages" }
func messagePath(cid, mid int64) string    { return messagesPath(cid) + "/" + itoa(mid) }
func membershipsPath(cid int64) string     { return convPath(cid) + "/memberships" }
func membershipPath(cid, uid int64) string { return membershipsPath(cid) + "/" + itoa(uid) }
func reactionPath(id int64) string         { return "/api/v1/reactions/" + itoa(id) }

// num reads a JSON number as an id.
func num(t *testing.T, v any) int64 {
	t.Helper()
	f, ok := v.(float64)
	require.True(t, ok, "want a JSON number, got %T %v", v, v)
	return int64(f)
}

// obj reads a JSON object.
func obj(t *testing.T, v any) map[string]any {
	t.Helper()
	m, ok := v.(map[string]any)
	require.True(t, ok, "want a JSON object, got %T %v", v, v)
	return m
}

// objs reads a JSON array of objects.
func objs(t *testing.T, v any) []map[string]any {
	t.Helper()
	l, ok := v.([]any)
	require.True(t, ok, "want a JSON array, got %T %v", v, v)
	out := make([]map[string]any, 0, len(l))
	for _, e := range l {
		out = append(out, obj(t, e))
	}
	return out
}

// dataOf returns the object under "data", checking that nothing else is beside it.
func dataOf(t *testing.T, r response) map[string]any {
	t.Helper()
	body := r.json(t)
	require.Equal(t, []string{"data"}, keys(body), "%s", r.raw)
	return obj(t, body["data"])
}

// idsOf returns the ids of the objects, in order.
func idsOf(t *testing.T, l []map[string]any) []int64 {
	t.Helper()
	out := make([]int64, 0, len(l))
	for _, m := range l {
		out = append(out, num(t, m["id"]))
	}
	return out
}

// stripOnline returns v without any "online" keys, at any depth: presence
// can change between a response and an event, nothing else may.
func stripOnline(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			if k != "online" {
				out[k] = stripOnline(e)
			}
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = stripOnline(e)
		}
		return out
	}
	return v
}

// assertSameObject compares two decoded JSON values, ignoring "online".
func assertSameObject(t *testing.T, want, got any, msgAndArgs ...any) {
	t.Helper()
	assert.Equal(t, stripOnline(want), stripOnline(got), msgAndArgs...)
}

func assertTimestamp(t *testing.T, v any, what string) {
	t.Helper()
	s, ok := v.(string)
	if assert.True(t, ok, "%s: want a timestamp string, got %T %v", what, v, v) {
		assert.Regexp(t, tsPattern, s, what)
	}
}

func assertUserPublic(t *testing.T, v any) {
	t.Helper()
	u := obj(t, v)
	assert.ElementsMatch(t, userPublicKeys, keys(u), "user public view: %v", u)
	num(t, u["id"])
	assert.IsType(t, "", u["username"])
	assert.IsType(t, false, u["online"])
}

func assertConversation(t *testing.T, v any) {
	t.Helper()
	c := obj(t, v)
	assert.ElementsMatch(t, conversationKeys, keys(c), "conversation: %v", c)
	num(t, c["id"])
	num(t, c["created_by_id"])
	assert.Contains(t, []any{"channel", "group", "direct"}, c["conversation_type"])
	assertTimestamp(t, c["created_at"], "conversation created_at")
	members := objs(t, c["members"])
	for _, m := range members {
		assertUserPublic(t, m)
	}
	assert.Equal(t, int64(len(members)), num(t, c["member_count"]), "member_count counts members")
}

func assertReaction(t *testing.T, v any) {
	t.Helper()
	r := obj(t, v)
	assert.ElementsMatch(t, reactionKeys, keys(r), "reaction: %v", r)
	num(t, r["id"])
	num(t, r["message_id"])
	num(t, r["user_id"])
	assert.IsType(t, "", r["emoji"])
}

func assertMessage(t *testing.T, v any) {
	t.Helper()
	m := obj(t, v)
	assert.ElementsMatch(t, messageKeys, keys(m), "message: %v", m)
	num(t, m["id"])
	assert.IsType(t, "", m["content"])
	assertTimestamp(t, m["created_at"], "message created_at")
	if m["edited_at"] != nil {
		assertTimestamp(t, m["edited_at"], "message edited_at")
	}
	if m["parent_message_id"] != nil {
		num(t, m["parent_message_id"])
	}
	assert.Contains(t, []any{"text", "image", "file", "call"}, m["message_type"])
	if m["message_type"] != "call" {
		assert.Nil(t, m["call_session"], "only call logs carry a call session")
	}
	assertUserPublic(t, m["user"])
	rs, ok := m["reactions"].([]any)
	if assert.True(t, ok, "reactions is an array, never null: %v", m["reactions"]) {
		for _, r := range rs {
			assertReaction(t, r)
		}
	}
}

// memberIDs returns the ids of a conversation's members.
func memberIDs(t *testing.T, conv map[string]any) []int64 {
	t.Helper()
	return idsOf(t, objs(t, conv["members"]))
}

// createGroup creates a group owned by owner with the members and returns it.
func (s *stack) createGroup(t *testing.T, owner account, name string, members ...account) map[string]any {
	t.Helper()
	ids := make([]int64, 0, len(members))
	for _, m := range members {
		ids = append(ids, m.id)
	}
	r := s.do("POST", conversationsPath, owner.token, map[string]any{"conversation_type": "group", "name": name, "member_ids": ids})
	require.Equal(t, http.StatusCreated, r.status, "create group: %s", r.raw)
	return dataOf(t, r)
}

// createDirect creates (or finds) the DM of a and b and returns it.
func (s *stack) createDirect(t *testing.T, a, b account) map[string]any {
	t.Helper()
	r := s.do("POST", conversationsPath, a.token, map[string]any{"conversation_type": "direct", "member_ids": []int64{b.id}})
	require.Contains(t, []int{http.StatusCreated, http.StatusOK}, r.status, "create DM: %s", r.raw)
	return dataOf(t, r)
}

// send posts a text message and returns it.
func (s *stack) send(t *testing.T, a account, cid int64, content string) map[string]any {
	t.Helper()
	r := s.do("POST", messagesPath(cid), a.token, map[string]any{"content": content})
	require.Equal(t, http.StatusCreated, r.status, "send: %s", r.raw)
	return dataOf(t, r)
}

// react adds a reaction and returns it.
func (s *stack) react(t *testing.T, a account, mid int64, emoji string) map[string]any {
	t.Helper()
	r := s.do("POST", "/api/v1/reactions", a.token, map[string]any{"reaction": map[string]any{"message_id": mid, "emoji": emoji}})
	require.Equal(t, http.StatusCreated, r.status, "react: %s", r.raw)
	return r.json(t)
}

// page reads one page of history. query is the raw query string, without "?".
func (s *stack) page(t *testing.T, a account, cid int64, query string) (msgs []map[string]any, next any) {
	t.Helper()
	path := messagesPath(cid)
	if query != "" {
		path += "?" + query
	}
	r := s.do("GET", path, a.token, nil)
	require.Equal(t, http.StatusOK, r.status, "history %s: %s", query, r.raw)
	d := dataOf(t, r)
	require.ElementsMatch(t, []string{"messages", "next_cursor"}, keys(d), "%s", r.raw)
	return objs(t, d["messages"]), d["next_cursor"]
}

// allHistory walks the whole history with limit and returns it oldest first,
// checking the paging rules on every page.
func (s *stack) allHistory(t *testing.T, a account, cid int64, limit int) []map[string]any {
	t.Helper()
	var pages [][]map[string]any
	query := "limit=" + itoa(int64(limit))
	for range 1000 {
		msgs, next := s.page(t, a, cid, query)
		require.LessOrEqual(t, len(msgs), limit)
		ids := idsOf(t, msgs)
		assert.True(t, slices.IsSorted(ids), "each page is oldest to newest: %v", ids)
		if len(msgs) == limit {
			require.NotNil(t, next, "a full page has a next_cursor")
			assert.Equal(t, ids[0], num(t, next), "next_cursor is the oldest message of the page")
		} else {
			assert.Nil(t, next, "a page that is not full is the last one")
		}
		pages = append(pages, msgs)
		if next == nil {
			break
		}
		query = "limit=" + itoa(int64(limit)) + "&cursor=" + itoa(num(t, next))
	}
	var all []map[string]any
	for i := len(pages) - 1; i >= 0; i-- {
		all = append(all, pages[i]...)
	}
	return all
}

// findMessage returns the message with id in msgs, or nil.
func findMessage(t *testing.T, msgs []map[string]any, id int64) map[string]any {
	t.Helper()
	for _, m := range msgs {
		if num(t, m["id"]) == id {
			return m
		}
	}
	return nil
}

// listConversations returns the ids of the caller's conversations, in order.
func (s *stack) listConversations(t *testing.T, a account) []int64 {
	t.Helper()
	r := s.do("GET", conversationsPath, a.token, nil)
	require.Equal(t, http.StatusOK, r.status, "%s", r.raw)
	body := r.json(t)
	require.Equal(t, []string{"data"}, keys(body), "%s", r.raw)
	convs := objs(t, body["data"])
	for _, c := range convs {
		assertConversation(t, c)
	}
	return idsOf(t, convs)
}

// The acceptance flow of the chat API: DMs, paging, edit, delete, reactions,
// groups, ordering and shapes.
func TestChatFlow(t *testing.T) {
	eachMode(t, func(t *testing.T, m mode) {
		s := start(t, raised(m.config(t), "messages"))
		alice := s.register("alice")
		bob := s.register("bob")
		carol := s.register("carol")

		// A DM: created once, then found again from either side and in either body form.
		r := s.do("POST", conversationsPath, alice.token, map[string]any{"conversation_type": "direct", "member_ids": []int64{bob.id}})
		require.Equal(t, http.StatusCreated, r.status, "%s", r.raw)
		dm := dataOf(t, r)
		assertConversation(t, dm)
		dmID := num(t, dm["id"])
		assert.Equal(t, "direct", dm["conversation_type"])
		assert.Nil(t, dm["name"])
		assert.Nil(t, dm["description"])
		assert.Equal(t, alice.id, num(t, dm["created_by_id"]))
		assert.Equal(t, int64(2), num(t, dm["member_count"]))
		assert.ElementsMatch(t, []int64{alice.id, bob.id}, memberIDs(t, dm))
		for _, again := range []struct {
			name string
			who  account
			body any
		}{
			{"same side", alice, map[string]any{"conversation_type": "direct", "member_ids": []int64{bob.id}}},
			{"other side", bob, map[string]any{"conversation_type": "direct", "member_ids": []int64{alice.id}}},
			{"nested body", bob, map[string]any{"conversation": map[string]any{"conversation_type": "direct", "member_ids": []int64{alice.id}}}},
			{"own id listed too", alice, map[string]any{"conversation_type": "direct", "member_ids": []int64{alice.id, bob.id}}},
		} {
			r := s.do("POST", conversationsPath, again.who.token, again.body)
			require.Equal(t, http.StatusOK, r.status, "%s: existing DM is 200: %s", again.name, r.raw)
			got := dataOf(t, r)
			assert.Equal(t, dmID, num(t, got["id"]), again.name)
			assertSameObject(t, dm, got, again.name)
		}
		r = s.do("GET", convPath(dmID), bob.token, nil)
		require.Equal(t, http.StatusOK, r.status, "%s", r.raw)
		assertSameObject(t, dm, dataOf(t, r), "show returns the same conversation")

		// 120 messages, alternating authors.
		var sent []map[string]any
		for i := range 120 {
			who := alice
			if i%2 == 1 {
				who = bob
			}
			msg := s.send(t, who, dmID, "message "+itoa(int64(i)))
			sent = append(sent, msg)
		}
		first := sent[0]
		assertMessage(t, first)
		assert.Equal(t, "message 0", first["content"])
		assert.Equal(t, "text", first["message_type"])
		assert.Nil(t, first["edited_at"])
		assert.Nil(t, first["parent_message_id"])
		assert.Nil(t, first["call_session"])
		assert.Equal(t, []any{}, first["reactions"])
		assert.Equal(t, alice.id, num(t, obj(t, first["user"])["id"]))
		assert.Equal(t, "alice", obj(t, first["user"])["username"])
		assert.Equal(t, "Alice", obj(t, first["user"])["display_name"])
		ids := idsOf(t, sent)
		require.True(t, slices.IsSorted(ids), "ids grow with time")
		require.Len(t, slices.Compact(slices.Clone(ids)), 120, "ids are unique")

		t.Run("paging", func(t *testing.T) {
			msgs, next := s.page(t, bob, dmID, "")
			require.Len(t, msgs, 50, "default limit is 50")
			assert.Equal(t, ids[70:], idsOf(t, msgs), "first page is the newest 50, oldest first")
			assert.Equal(t, ids[70], num(t, next))
			for i, msg := range msgs {
				assertMessage(t, msg)
				assertSameObject(t, sent[70+i], msg, "history renders messages as create did")
			}
			msgs, next = s.page(t, bob, dmID, "cursor="+itoa(ids[70]))
			assert.Equal(t, ids[20:70], idsOf(t, msgs))
			assert.Equal(t, ids[20], num(t, next))
			msgs, next = s.page(t, alice, dmID, "cursor="+itoa(ids[20]))
			assert.Equal(t, ids[:20], idsOf(t, msgs))
			assert.Nil(t, next, "last page")

			assert.Equal(t, ids, idsOf(t, s.allHistory(t, alice, dmID, 50)), "no gaps, no duplicates")
			assert.Equal(t, ids, idsOf(t, s.allHistory(t, alice, dmID, 7)), "odd page size")
			assert.Equal(t, ids, idsOf(t, s.allHistory(t, alice, dmID, 60)), "pages exactly fill the history: the last full page is followed by an empty one")
		})

		t.Run("limit clamping", func(t *testing.T) {
			for _, tc := range []struct {
				name  string
				query string
				want  []int64
				next  int64 // 0: null
			}{
				{"zero is one", "limit=0", ids[119:], ids[119]},
				{"negative is one", "limit=-5", ids[119:], ids[119]},
				{"one", "limit=1", ids[119:], ids[119]},
				{"hundred", "limit=100", ids[20:], ids[20]},
				{"over the max is 100", "limit=1000", ids[20:], ids[20]},
				{"with a cursor", "limit=3&cursor=" + itoa(ids[10]), ids[7:10], ids[7]},
				{"short last page", "limit=50&cursor=" + itoa(ids[20]), ids[:20], 0},
				{"cursor at the oldest", "cursor=" + itoa(ids[0]), []int64{}, 0},
			} {
				t.Run(tc.name, func(t *testing.T) {
					msgs, next := s.page(t, alice, dmID, tc.query)
					assert.Equal(t, tc.want, idsOf(t, msgs))
					if tc.next == 0 {
						assert.Nil(t, next)
					} else if assert.NotNil(t, next) {
						assert.Equal(t, tc.next, num(t, next))
					}
				})
			}
		})

		t.Run("reply and types", func(t *testing.T) {
			r := s.do("POST", messagesPath(dmID), bob.token, map[string]any{"message": map[string]any{"content": "a reply", "parent_message_id": ids[0], "message_type": "image"}})
			require.Equal(t, http.StatusCreated, r.status, "%s", r.raw)
			reply := dataOf(t, r)
			assertMessage(t, reply)
			assert.Equal(t, ids[0], num(t, reply["parent_message_id"]))
			assert.Equal(t, "image", reply["message_type"])
			assert.Equal(t, bob.id, num(t, obj(t, reply["user"])["id"]))
			r = s.do("POST", messagesPath(dmID), bob.token, map[string]any{"content": "a file", "message_type": "file"})
			require.Equal(t, http.StatusCreated, r.status, "%s", r.raw)
			assert.Equal(t, "file", dataOf(t, r)["message_type"])
			sent = append(sent, reply, dataOf(t, r))
			ids = append(ids, num(t, reply["id"]), num(t, dataOf(t, r)["id"]))
		})

		t.Run("edit", func(t *testing.T) {
			target := sent[100] // alice's
			r := s.do("PATCH", messagePath(dmID, ids[100]), alice.token, map[string]any{"content": "edited: hello"})
			require.Equal(t, http.StatusOK, r.status, "%s", r.raw)
			edited := r.json(t)
			assertMessage(t, edited) // bare, no "data"
			assert.Equal(t, ids[100], num(t, edited["id"]))
			assert.Equal(t, "edited: hello", edited["content"])
			assertTimestamp(t, edited["edited_at"], "edited_at is set")
			assert.Equal(t, target["created_at"], edited["created_at"])
			assert.Equal(t, target["message_type"], edited["message_type"])
			assertSameObject(t, target["user"], edited["user"])

			r = s.do("PATCH", messagePath(dmID, ids[100]), alice.token, map[string]any{"message": map[string]any{"content": "edited twice"}})
			require.Equal(t, http.StatusOK, r.status, "nested body: %s", r.raw)
			edited = r.json(t)
			assert.Equal(t, "edited twice", edited["content"])

			msgs, _ := s.page(t, bob, dmID, "limit=100")
			inHistory := findMessage(t, msgs, ids[100])
			require.NotNil(t, inHistory)
			assertSameObject(t, edited, inHistory, "history shows the edit")
		})

		t.Run("delete", func(t *testing.T) {
			r := s.do("DELETE", messagePath(dmID, ids[101]), bob.token, nil)
			require.Equal(t, http.StatusOK, r.status, "%s", r.raw)
			assert.JSONEq(t, `{"message":"Message deleted"}`, string(r.raw))
			want := slices.Delete(slices.Clone(ids), 101, 102)
			assert.Equal(t, want, idsOf(t, s.allHistory(t, alice, dmID, 50)), "deleted messages never appear")
			assert.Equal(t, want, idsOf(t, s.allHistory(t, bob, dmID, 13)))
			msgs, next := s.page(t, alice, dmID, "limit=2&cursor="+itoa(ids[103]))
			assert.Equal(t, []int64{ids[100], ids[102]}, idsOf(t, msgs), "paging skips deleted messages")
			assert.Equal(t, ids[100], num(t, next))
			assert.Equal(t, http.StatusNotFound, s.do("DELETE", messagePath(dmID, ids[101]), bob.token, nil).status, "deleting again")
		})

		t.Run("react and unreact", func(t *testing.T) {
			mid := ids[100]
			r := s.do("POST", "/api/v1/reactions", bob.token, map[string]any{"reaction": map[string]any{"message_id": mid, "emoji": "👍"}})
			require.Equal(t, http.StatusCreated, r.status, "%s", r.raw)
			thumbs := r.json(t)
			assertReaction(t, thumbs)
			assert.Equal(t, "👍", thumbs["emoji"])
			assert.Equal(t, mid, num(t, thumbs["message_id"]))
			assert.Equal(t, bob.id, num(t, thumbs["user_id"]))

			r = s.do("POST", "/api/v1/reactions", alice.token, map[string]any{"message_id": mid, "emoji": "🎉"})
			require.Equal(t, http.StatusCreated, r.status, "top-level body: %s", r.raw)
			party := r.json(t)
			assertReaction(t, party)
			assert.Equal(t, alice.id, num(t, party["user_id"]))
			same := s.react(t, alice, mid, "👍")

			msgs, _ := s.page(t, alice, dmID, "limit=100")
			msg := findMessage(t, msgs, mid)
			require.NotNil(t, msg)
			assertMessage(t, msg)
			assert.ElementsMatch(t, []any{thumbs, party, same}, msg["reactions"], "history carries the reactions")
			other := findMessage(t, msgs, ids[102])
			require.NotNil(t, other)
			assert.Equal(t, []any{}, other["reactions"], "reactions belong to their message only")

			r = s.do("DELETE", reactionPath(num(t, thumbs["id"])), bob.token, nil)
			require.Equal(t, http.StatusOK, r.status, "%s", r.raw)
			assert.JSONEq(t, `{"message":"Reaction removed"}`, string(r.raw))
			msgs, _ = s.page(t, bob, dmID, "limit=100")
			msg = findMessage(t, msgs, mid)
			require.NotNil(t, msg)
			assert.ElementsMatch(t, []any{party, same}, msg["reactions"], "the removed reaction is gone")
			assert.Equal(t, http.StatusNotFound, s.do("DELETE", reactionPath(num(t, thumbs["id"])), bob.token, nil).status, "removing again")
			again := s.react(t, bob, mid, "👍")
			assert.NotEqual(t, thumbs["id"], again["id"], "the same emoji can be added again after removal")
		})

		t.Run("groups", func(t *testing.T) {
			r := s.do("POST", conversationsPath, alice.token, map[string]any{
				"conversation_type": "group", "name": "Team", "description": "All of us",
				"member_ids": []int64{bob.id, carol.id, alice.id, 987654321},
			})
			require.Equal(t, http.StatusCreated, r.status, "%s", r.raw)
			team := dataOf(t, r)
			assertConversation(t, team)
			assert.Equal(t, "Team", team["name"])
			assert.Equal(t, "All of us", team["description"])
			assert.Equal(t, "group", team["conversation_type"])
			assert.Equal(t, alice.id, num(t, team["created_by_id"]))
			assert.Equal(t, int64(3), num(t, team["member_count"]), "unknown ids ignored, creator counted once")
			assert.ElementsMatch(t, []int64{alice.id, bob.id, carol.id}, memberIDs(t, team))

			r = s.do("POST", conversationsPath, carol.token, map[string]any{"name": "Defaults"})
			require.Equal(t, http.StatusCreated, r.status, "%s", r.raw)
			def := dataOf(t, r)
			assert.Equal(t, "group", def["conversation_type"], "group by default")
			assert.Equal(t, int64(1), num(t, def["member_count"]))
			assert.Equal(t, []int64{carol.id}, memberIDs(t, def), "the creator is always a member")
			assert.Nil(t, def["description"])

			r = s.do("POST", conversationsPath, carol.token, map[string]any{"conversation": map[string]any{"conversation_type": "channel", "name": "general", "member_ids": []int64{bob.id}}})
			require.Equal(t, http.StatusCreated, r.status, "%s", r.raw)
			ch := dataOf(t, r)
			assert.Equal(t, "channel", ch["conversation_type"])
			assert.Equal(t, "general", ch["name"])
			assert.ElementsMatch(t, []int64{carol.id, bob.id}, memberIDs(t, ch))

			r = s.do("GET", convPath(num(t, team["id"])), carol.token, nil)
			require.Equal(t, http.StatusOK, r.status, "%s", r.raw)
			assertSameObject(t, team, dataOf(t, r))
		})

		t.Run("ordering", func(t *testing.T) {
			team := s.createGroup(t, alice, "Ordering", bob)
			teamID := num(t, team["id"])
			list := s.listConversations(t, alice)
			require.GreaterOrEqual(t, len(list), 2)
			assert.Equal(t, teamID, list[0], "a new conversation is the most recently active")
			assert.Contains(t, list, dmID)

			s.send(t, bob, dmID, "bump")
			list = s.listConversations(t, alice)
			assert.Equal(t, dmID, list[0], "a new message moves the DM to the top")
			assert.Equal(t, teamID, list[1])
			assert.Equal(t, dmID, s.listConversations(t, bob)[0], "for every member")

			s.send(t, alice, teamID, "bump")
			list = s.listConversations(t, alice)
			assert.Equal(t, []int64{teamID, dmID}, list[:2])

			carolsList := s.listConversations(t, carol)
			assert.NotContains(t, carolsList, dmID, "only the caller's conversations")
			assert.NotContains(t, carolsList, teamID)

			dave := s.register("dave")
			assert.Equal(t, []int64{}, s.listConversations(t, dave), "no conversations is an empty array")
		})

		t.Run("timestamps", func(t *testing.T) {
			msg := s.send(t, alice, dmID, "when?")
			created, err := time.Parse("2006-01-02T15:04:05.000Z", msg["created_at"].(string))
			require.NoError(t, err)
			assert.WithinDuration(t, time.Now(), created, time.Minute, "created_at is UTC now")
		})
	})
}

// Racing requests that can only succeed once: exactly one wins, the others
// get the answer the sequential case gets (never a 409 or a 5xx).
func TestChatRaces(t *testing.T) {
	eachMode(t, func(t *testing.T, m mode) {
		s := start(t, raised(m.config(t), "register_ip"))
		const n = 12
		race := func(fn func(i int) response) []response {
			t.Helper()
			out := make([]response, n)
			var wg sync.WaitGroup
			for i := range n {
				wg.Add(1)
				go func() {
					defer wg.Done()
					out[i] = fn(i)
				}()
			}
			wg.Wait()
			return out
		}
		count := func(rs []response, status int) int {
			c := 0
			for _, r := range rs {
				if r.status == status {
					c++
				}
			}
			return c
		}

		t.Run("same DM from both sides", func(t *testing.T) {
			u := s.freshUsers()
			aliceUser, bobUser := s.subscribe(t, userStream(u.alice)), s.subscribe(t, userStream(u.bob))
			rs := race(func(i int) response {
				a, b := u.alice, u.bob
				if i%2 == 1 {
					a, b = b, a
				}
				return s.do("POST", conversationsPath, a.token, map[string]any{"conversation_type": "direct", "member_ids": []int64{b.id}})
			})
			assert.Equal(t, 1, count(rs, http.StatusCreated), "exactly one create")
			assert.Equal(t, n-1, count(rs, http.StatusOK), "the others find it")
			var ids []int64
			for _, r := range rs {
				if r.status < 300 {
					ids = append(ids, num(t, dataOf(t, r)["id"]))
				} else {
					t.Errorf("status %d: %s", r.status, r.raw)
				}
			}
			require.NotEmpty(t, ids)
			for _, id := range ids {
				assert.Equal(t, ids[0], id, "one DM")
			}
			assert.Len(t, s.listConversations(t, u.alice), 1)
			assert.Equal(t, 1, len(aliceUser.drain())+len(bobUser.drain()), "one new_conversation in all")
		})

		t.Run("same reaction", func(t *testing.T) {
			u := s.freshUsers()
			g := num(t, s.createGroup(t, u.alice, "g", u.bob)["id"])
			mid := num(t, s.send(t, u.alice, g, "race me")["id"])
			gs := s.subscribe(t, convStream(g))
			rs := race(func(int) response {
				return s.do("POST", "/api/v1/reactions", u.bob.token, map[string]any{"reaction": map[string]any{"message_id": mid, "emoji": "🏁"}})
			})
			assert.Equal(t, 1, count(rs, http.StatusCreated), "exactly one reaction")
			for _, r := range rs {
				if r.status != http.StatusCreated {
					assert.Equal(t, http.StatusUnprocessableEntity, r.status, "%s", r.raw)
					assert.JSONEq(t, `{"errors":["Emoji has already been taken"]}`, string(r.raw))
				}
			}
			assert.Len(t, s.reactionIDs(t, u.alice, g, mid), 1)
			assert.Len(t, gs.drain(), 1, "one reaction_added")
		})

		t.Run("same member", func(t *testing.T) {
			u := s.freshUsers()
			g := num(t, s.createGroup(t, u.alice, "g", u.bob)["id"])
			gs := s.subscribe(t, convStream(g))
			rs := race(func(int) response {
				return s.do("POST", membershipsPath(g), u.alice.token, map[string]any{"user_id": u.carol.id})
			})
			assert.Equal(t, 1, count(rs, http.StatusCreated), "exactly one add")
			for _, r := range rs {
				if r.status != http.StatusCreated {
					assert.Equal(t, http.StatusUnprocessableEntity, r.status, "%s", r.raw)
					assert.JSONEq(t, `{"errors":["User is already a member"]}`, string(r.raw))
				}
			}
			r := s.do("GET", convPath(g), u.carol.token, nil)
			require.Equal(t, http.StatusOK, r.status, "%s", r.raw)
			assert.Equal(t, int64(3), num(t, dataOf(t, r)["member_count"]))
			assert.Len(t, gs.drain(), 1, "one member_joined")
		})

		t.Run("same reaction removed twice", func(t *testing.T) {
			u := s.freshUsers()
			g := num(t, s.createGroup(t, u.alice, "g", u.bob)["id"])
			mid := num(t, s.send(t, u.alice, g, "react")["id"])
			rid := num(t, s.react(t, u.bob, mid, "👍")["id"])
			gs := s.subscribe(t, convStream(g))
			rs := race(func(int) response { return s.do("DELETE", reactionPath(rid), u.bob.token, nil) })
			assert.Equal(t, 1, count(rs, http.StatusOK), "exactly one removal")
			assert.Equal(t, n-1, count(rs, http.StatusNotFound), "the others find nothing")
			assert.Len(t, gs.drain(), 1, "one reaction_removed")
		})

		t.Run("same member removed twice", func(t *testing.T) {
			u := s.freshUsers()
			g := num(t, s.createGroup(t, u.alice, "g", u.bob, u.carol)["id"])
			gs := s.subscribe(t, convStream(g))
			rs := race(func(i int) response {
				who := u.carol // leaving
				if i%2 == 1 {
					who = u.alice // removing
				}
				return s.do("DELETE", membershipPath(g, u.carol.id), who.token, nil)
			})
			assert.Equal(t, 1, count(rs, http.StatusOK), "exactly one removal")
			for _, r := range rs {
				assert.Contains(t, []int{http.StatusOK, http.StatusNotFound}, r.status, "%s", r.raw)
			}
			assert.Len(t, gs.drain(), 1, "one member_left")
		})

		t.Run("same message deleted twice", func(t *testing.T) {
			u := s.freshUsers()
			g := num(t, s.createGroup(t, u.alice, "g", u.bob)["id"])
			mid := num(t, s.send(t, u.bob, g, "delete me")["id"])
			gs := s.subscribe(t, convStream(g))
			rs := race(func(i int) response {
				who := u.bob
				if i%2 == 1 {
					who = u.alice
				}
				return s.do("DELETE", messagePath(g, mid), who.token, nil)
			})
			assert.Equal(t, 1, count(rs, http.StatusOK), "exactly one delete")
			assert.Equal(t, n-1, count(rs, http.StatusNotFound), "the others find nothing")
			assert.Len(t, gs.drain(), 1, "one message_deleted")
		})
	})
}

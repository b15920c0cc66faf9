package main_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// chatBad is one bad request and what it must get.
type chatBad struct {
	name string
	body any // string: sent verbatim
	// status is the expected status; 0 means any 4xx (the contract leaves the choice open).
	status int
	// want, when set, must be one of the 422 errors (or part of the error of other statuses).
	want string
}

// checkBad asserts a rejected request's status and error body.
func checkBad(t *testing.T, r response, status int, want string) {
	t.Helper()
	if status == 0 {
		assert.True(t, r.status >= 400 && r.status < 500, "want a 4xx, got %d: %s", r.status, r.raw)
	} else {
		assert.Equal(t, status, r.status, "%s", r.raw)
	}
	if r.status < 400 || r.status >= 500 {
		return
	}
	body := r.json(t)
	if r.status == http.StatusUnprocessableEntity {
		assert.Equal(t, []string{"errors"}, keys(body), "422 bodies list errors: %s", r.raw)
		errs := objsOrStrings(t, body["errors"])
		assert.NotEmpty(t, errs)
		if want != "" {
			found := false
			for _, e := range errs {
				found = found || strings.Contains(e, want)
			}
			assert.True(t, found, "errors %q should include %q", errs, want)
		}
		return
	}
	assert.Equal(t, []string{"error"}, keys(body), "%s", r.raw)
	assert.NotEmpty(t, body["error"])
	if want != "" {
		assert.Contains(t, body["error"], want)
	}
}

func objsOrStrings(t *testing.T, v any) []string {
	t.Helper()
	l, ok := v.([]any)
	require.True(t, ok, "errors is an array: %v", v)
	out := make([]string, 0, len(l))
	for _, e := range l {
		s, ok := e.(string)
		require.True(t, ok, "errors are strings: %v", v)
		out = append(out, s)
	}
	return out
}

// okCase is an unusual request that must succeed.
type okCase struct {
	name string
	body any
	// status is the expected status; 0 means "anything but a 5xx", and
	// check then only runs on success.
	status int
	check  func(t *testing.T, got map[string]any)
}

// Metacharacters that must reach the database as data and come back verbatim.
var verbatimContents = map[string]string{
	"sql quote":        `'); DROP TABLE messages; --`,
	"sql comment":      `1; SELECT pg_sleep(5) /* */ --`,
	"like wildcards":   `100% of _all_ \ backslashes \\ %_`,
	"html script":      `<script>alert("xss")</script><img src=x onerror=alert(1)>`,
	"html entities":    `&lt;b&gt; &amp; &quot; &#39;`,
	"json-looking":     `{"content": "nested", "id": 1}`,
	"newlines and tab": "line one\nline two\r\n\tindented",
	"unicode mix":      "Zoë 🚀 שלום мир 中文 \u200b\u202e reversed",
	"emoji zwj":        "👩‍👩‍👧‍👦🏳️‍🌈",
	"printf verbs":     "%s %d %v %n %x",
	"ruby interp":      `#{User.destroy_all} ${7*7} {{7*7}}`,
}

func TestConversationCreateBadInput(t *testing.T) {
	eachMode(t, func(t *testing.T, m mode) {
		s := start(t, raised(m.config(t), "conversations"))
		u := s.freshUsers()
		type jo = map[string]any
		group := func(fields jo) jo {
			base := jo{"conversation_type": "group", "name": "Team"}
			for k, v := range fields {
				base[k] = v
			}
			return base
		}
		direct := func(ids ...any) jo { return jo{"conversation_type": "direct", "member_ids": ids} }

		cases := []chatBad{
			{"malformed json", `{"name": `, 400, ""},
			{"trailing garbage", `{"name": "x"} {`, 400, ""},
			{"array body", `[{"name": "x"}]`, 400, ""},
			{"string body", `"Team"`, 400, ""},
			{"number body", `42`, 400, ""},
			{"empty body", "", 422, "Name can't be blank"},
			{"empty object", "{}", 422, "Name can't be blank"},
			{"null body", "null", 422, "Name can't be blank"},
			{"name missing", jo{"conversation_type": "group"}, 422, "Name can't be blank"},
			{"name null", group(jo{"name": nil}), 422, "Name can't be blank"},
			{"name empty", group(jo{"name": ""}), 422, "Name can't be blank"},
			{"name whitespace", group(jo{"name": "  \t\n "}), 422, "Name can't be blank"},
			{"channel name blank", jo{"conversation_type": "channel", "name": ""}, 422, "Name can't be blank"},
			{"name a number", group(jo{"name": 5}), 422, "Name must be a string"},
			{"name an object", group(jo{"name": jo{"$ne": nil}}), 422, "Name must be a string"},
			{"name an array", group(jo{"name": []string{"a"}}), 422, "Name must be a string"},
			{"name a bool", group(jo{"name": true}), 422, "Name must be a string"},
			{"name 101 chars", group(jo{"name": strings.Repeat("n", 101)}), 422, "Name is too long (maximum is 100 characters)"},
			{"name 101 multibyte chars", group(jo{"name": strings.Repeat("é", 101)}), 422, "Name is too long (maximum is 100 characters)"},
			{"description 1001 chars", group(jo{"description": strings.Repeat("d", 1001)}), 422, "Description is too long (maximum is 1000 characters)"},
			{"description a number", group(jo{"description": 5}), 422, "Description must be a string"},
			{"description an object", group(jo{"description": jo{}}), 422, "Description must be a string"},
			{"unknown type", group(jo{"conversation_type": "bogus"}), 422, "Conversation type is not included in the list"},
			{"type in capitals", group(jo{"conversation_type": "GROUP"}), 422, "Conversation type is not included in the list"},
			{"type a number", group(jo{"conversation_type": 1}), 422, "Conversation type"},
			{"type an array", group(jo{"conversation_type": []string{"group"}}), 422, "Conversation type"},
			{"member_ids a string", group(jo{"member_ids": "1,2"}), 422, "Member ids must be an array of user ids"},
			{"member_ids a number", group(jo{"member_ids": u.bob.id}), 422, "Member ids must be an array of user ids"},
			{"member_ids an object", group(jo{"member_ids": jo{"0": u.bob.id}}), 422, "Member ids must be an array of user ids"},
			{"member_ids of strings", group(jo{"member_ids": []string{"abc"}}), 422, "Member ids must be an array of user ids"},
			{"member_ids of fractions", group(jo{"member_ids": []float64{1.5}}), 422, "Member ids must be an array of user ids"},
			{"member_ids of arrays", group(jo{"member_ids": [][]int64{{u.bob.id}}}), 422, "Member ids must be an array of user ids"},
			{"member_ids of objects", group(jo{"member_ids": []jo{{"id": u.bob.id}}}), 422, "Member ids must be an array of user ids"},
			{"member_ids with null", group(jo{"member_ids": []any{nil}}), 422, "Member ids must be an array of user ids"},
			{"member_ids with a bool", group(jo{"member_ids": []any{true}}), 422, "Member ids must be an array of user ids"},
			{"direct without members", jo{"conversation_type": "direct"}, 422, "A direct conversation needs exactly one other member"},
			{"direct with empty members", direct(), 422, "A direct conversation needs exactly one other member"},
			{"direct with self only", direct(u.alice.id), 422, "A direct conversation needs exactly one other member"},
			{"direct with an unknown user", direct(missingID), 422, "A direct conversation needs exactly one other member"},
			{"direct with a negative id", direct(-1), 422, "A direct conversation needs exactly one other member"},
			{"direct with two others", direct(u.bob.id, u.carol.id), 422, "A direct conversation needs exactly one other member"},
			{"direct with bad member_ids", jo{"conversation_type": "direct", "member_ids": "x"}, 422, "Member ids must be an array of user ids"},
			{"nested name a number", jo{"conversation": jo{"name": 5}}, 422, "Name must be a string"},
			{"nested name blank", jo{"conversation": jo{"name": " "}}, 422, "Name can't be blank"},
			{"conversation key a string", jo{"conversation": "Team"}, 422, "Name can't be blank"},
			{"huge body", `{"name":"` + strings.Repeat("a", 2<<20) + `"}`, 413, ""},
		}
		before := len(s.listConversations(t, u.alice))
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				r := s.do("POST", conversationsPath, u.alice.token, tc.body)
				checkBad(t, r, tc.status, tc.want)
			})
		}
		t.Run("nothing was created", func(t *testing.T) {
			assert.Len(t, s.listConversations(t, u.alice), before, "failed creates leave nothing behind")
			assert.Empty(t, s.listConversations(t, u.carol), "not even a DM")
		})

		oks := []okCase{
			{"name 100 multibyte chars", group(jo{"name": strings.Repeat("é", 100)}), 201, func(t *testing.T, c map[string]any) {
				assert.Equal(t, strings.Repeat("é", 100), c["name"])
			}},
			{"description 1000 chars", group(jo{"description": strings.Repeat("d", 1000)}), 201, func(t *testing.T, c map[string]any) {
				assert.Equal(t, strings.Repeat("d", 1000), c["description"])
			}},
			{"description null", group(jo{"description": nil}), 201, func(t *testing.T, c map[string]any) {
				assert.Nil(t, c["description"])
			}},
			{"member_ids empty", group(jo{"member_ids": []int64{}}), 201, func(t *testing.T, c map[string]any) {
				assert.Equal(t, []int64{u.alice.id}, memberIDs(t, c))
			}},
			{"unknown, zero, negative and large member ids", group(jo{"member_ids": []int64{-1, 0, missingID, 1<<53 - 1}}), 201, func(t *testing.T, c map[string]any) {
				assert.Equal(t, []int64{u.alice.id}, memberIDs(t, c), "unknown ids are ignored")
				assert.Equal(t, int64(1), num(t, c["member_count"]))
			}},
			{"member id beyond int64", `{"name":"Big","member_ids":[99999999999999999999]}`, 0, func(t *testing.T, c map[string]any) {
				assert.Equal(t, []int64{u.alice.id}, memberIDs(t, c))
			}},
			{"member_ids of numeric strings", group(jo{"member_ids": []string{itoa(u.bob.id)}}), 0, func(t *testing.T, c map[string]any) {
				assert.ElementsMatch(t, []int64{u.alice.id, u.bob.id}, memberIDs(t, c), "when accepted, the strings name users")
			}},
			{"nul character in name and description", group(jo{"name": "a\x00b", "description": "c\x00d"}), 0, func(t *testing.T, c map[string]any) {
				assert.Equal(t, "a\x00b", c["name"], "when accepted, stored verbatim")
			}},
			{"repeated member ids", group(jo{"member_ids": []int64{u.bob.id, u.bob.id, u.alice.id, u.alice.id}}), 0, func(t *testing.T, c map[string]any) {
				assert.ElementsMatch(t, []int64{u.alice.id, u.bob.id}, memberIDs(t, c), "each user is a member once")
				assert.Equal(t, int64(2), num(t, c["member_count"]))
			}},
			{"ignored fields", group(jo{"id": 1, "created_by_id": u.bob.id, "member_count": 99, "members": []jo{{"id": u.dave.id}}, "created_at": "2000-01-01T00:00:00.000Z", "role": "admin"}), 201, func(t *testing.T, c map[string]any) {
				assert.Equal(t, u.alice.id, num(t, c["created_by_id"]))
				assert.Equal(t, []int64{u.alice.id}, memberIDs(t, c))
				assert.NotEqual(t, "2000-01-01T00:00:00.000Z", c["created_at"])
			}},
			{"direct ignoring unknown ids and self", direct(u.carol.id, u.alice.id, missingID), 201, func(t *testing.T, c map[string]any) {
				assert.Equal(t, "direct", c["conversation_type"])
				assert.ElementsMatch(t, []int64{u.alice.id, u.carol.id}, memberIDs(t, c))
			}},
			{"direct with a name", jo{"conversation_type": "direct", "name": strings.Repeat("x", 100), "member_ids": []int64{u.dave.id}}, 201, func(t *testing.T, c map[string]any) {
				assert.Equal(t, "direct", c["conversation_type"])
			}},
		}
		for name, content := range verbatimContents {
			if len([]rune(content)) > 100 {
				continue
			}
			oks = append(oks, okCase{"name " + name, group(jo{"name": content, "description": content}), 201, func(t *testing.T, c map[string]any) {
				assert.Equal(t, content, c["name"], "returned verbatim")
				assert.Equal(t, content, c["description"], "returned verbatim")
				r := s.do("GET", convPath(num(t, c["id"])), u.alice.token, nil)
				require.Equal(t, http.StatusOK, r.status, "%s", r.raw)
				assert.Equal(t, content, dataOf(t, r)["name"], "stored verbatim")
			}})
		}
		for _, tc := range oks {
			t.Run(tc.name, func(t *testing.T) {
				r := s.do("POST", conversationsPath, u.alice.token, tc.body)
				if tc.status != 0 {
					require.Equal(t, tc.status, r.status, "%s", r.raw)
				} else if r.status >= 300 {
					assert.Less(t, r.status, 500, "%s", r.raw)
					return
				}
				c := dataOf(t, r)
				assertConversation(t, c)
				tc.check(t, c)
			})
		}
	})
}

func TestMessageBadInput(t *testing.T) {
	eachMode(t, func(t *testing.T, m mode) {
		s := start(t, raised(m.config(t), "messages"))
		u := s.freshUsers()
		g := num(t, s.createGroup(t, u.alice, "g", u.bob)["id"])
		h := num(t, s.createGroup(t, u.alice, "h", u.dave)["id"])
		first := num(t, s.send(t, u.bob, g, "first")["id"])
		hMsg := num(t, s.send(t, u.alice, h, "in h")["id"])
		type jo = map[string]any
		msg := func(fields jo) jo {
			base := jo{"content": "hello"}
			for k, v := range fields {
				if v == "<absent>" {
					delete(base, k)
				} else {
					base[k] = v
				}
			}
			return base
		}

		t.Run("create", func(t *testing.T) {
			cases := []chatBad{
				{"malformed json", `{"content": `, 400, ""},
				{"array body", `[{"content": "hi"}]`, 400, ""},
				{"string body", `"hi"`, 400, ""},
				{"empty body", "", 422, "Content can't be blank"},
				{"empty object", "{}", 422, "Content can't be blank"},
				{"null body", "null", 422, "Content can't be blank"},
				{"content null", msg(jo{"content": nil}), 422, "Content can't be blank"},
				{"content empty", msg(jo{"content": ""}), 422, "Content can't be blank"},
				{"content whitespace", msg(jo{"content": " \n\t "}), 422, "Content can't be blank"},
				{"content a number", msg(jo{"content": 5}), 422, "Content must be a string"},
				{"content an object", msg(jo{"content": jo{"text": "hi"}}), 422, "Content must be a string"},
				{"content an array", msg(jo{"content": []string{"hi"}}), 422, "Content must be a string"},
				{"content a bool", msg(jo{"content": false}), 422, "Content must be a string"},
				{"content 4001 chars", msg(jo{"content": strings.Repeat("a", 4001)}), 422, "Content is too long (maximum is 4000 characters)"},
				{"content 4001 emoji", msg(jo{"content": strings.Repeat("😀", 4001)}), 422, "Content is too long (maximum is 4000 characters)"},
				{"message_type call", msg(jo{"message_type": "call"}), 422, "Message type call is reserved for call logs"},
				{"message_type unknown", msg(jo{"message_type": "video"}), 422, "Message type is not included in the list"},
				{"message_type capitals", msg(jo{"message_type": "TEXT"}), 422, "Message type is not included in the list"},
				{"message_type a number", msg(jo{"message_type": 0}), 422, "Message type must be a string"},
				{"message_type an object", msg(jo{"message_type": jo{}}), 422, "Message type must be a string"},
				{"parent in another conversation", msg(jo{"parent_message_id": hMsg}), 422, "Parent message must belong to this conversation"},
				{"parent missing", msg(jo{"parent_message_id": missingID}), 422, "Parent message must belong to this conversation"},
				{"parent negative", msg(jo{"parent_message_id": -1}), 422, "Parent message must belong to this conversation"},
				{"parent a string", msg(jo{"parent_message_id": "abc"}), 422, "Parent message"},
				{"parent a fraction", msg(jo{"parent_message_id": 1.5}), 422, "Parent message"},
				{"parent an object", msg(jo{"parent_message_id": jo{"id": first}}), 422, "Parent message"},
				{"parent an array", msg(jo{"parent_message_id": []int64{first}}), 422, "Parent message"},
				{"parent beyond int64", `{"content":"x","parent_message_id":99999999999999999999}`, 422, "Parent message"},
				{"nested content a number", jo{"message": jo{"content": 5}}, 422, "Content must be a string"},
				{"nested content blank", jo{"message": jo{"content": ""}}, 422, "Content can't be blank"},
				{"huge body", `{"content":"` + strings.Repeat("a", 2<<20) + `"}`, 413, ""},
			}
			for _, tc := range cases {
				t.Run(tc.name, func(t *testing.T) {
					r := s.do("POST", messagesPath(g), u.bob.token, tc.body)
					checkBad(t, r, tc.status, tc.want)
				})
			}
			assert.Equal(t, []int64{first}, idsOf(t, s.allHistory(t, u.bob, g, 100)), "nothing was stored")
		})

		t.Run("create accepted", func(t *testing.T) {
			oks := []okCase{
				{"content 4000 chars", msg(jo{"content": strings.Repeat("a", 4000)}), 201, nil},
				{"content 4000 emoji", msg(jo{"content": strings.Repeat("😀", 4000)}), 201, nil},
				{"content 4000 accented", msg(jo{"content": strings.Repeat("é", 4000)}), 201, nil},
				{"content of one char", msg(jo{"content": "."}), 201, nil},
				{"message_type text", msg(jo{"message_type": "text"}), 201, func(t *testing.T, m map[string]any) {
					assert.Equal(t, "text", m["message_type"])
				}},
				{"parent null", msg(jo{"parent_message_id": nil}), 201, func(t *testing.T, m map[string]any) {
					assert.Nil(t, m["parent_message_id"])
				}},
				{"parent of this conversation", msg(jo{"parent_message_id": first}), 201, func(t *testing.T, m map[string]any) {
					assert.Equal(t, first, num(t, m["parent_message_id"]))
				}},
				{"ignored fields", msg(jo{"id": 1, "user_id": u.alice.id, "conversation_id": h, "edited_at": "2000-01-01T00:00:00.000Z", "deleted_at": "2000-01-01T00:00:00.000Z", "created_at": "2000-01-01T00:00:00.000Z", "call_session_id": 1, "call_session": jo{"id": 1}, "reactions": []jo{{"emoji": "x"}}}), 201, func(t *testing.T, m map[string]any) {
					assert.Equal(t, u.bob.id, num(t, obj(t, m["user"])["id"]))
					assert.Nil(t, m["edited_at"])
					assert.Nil(t, m["call_session"])
					assert.Equal(t, []any{}, m["reactions"])
					assert.NotEqual(t, "2000-01-01T00:00:00.000Z", m["created_at"])
				}},
				{"nul character", msg(jo{"content": "a\x00b"}), 0, nil},
			}
			for name, content := range verbatimContents {
				oks = append(oks, okCase{"verbatim " + name, msg(jo{"content": content}), 201, nil})
			}
			for _, tc := range oks {
				t.Run(tc.name, func(t *testing.T) {
					r := s.do("POST", messagesPath(g), u.bob.token, tc.body)
					if tc.status != 0 {
						require.Equal(t, tc.status, r.status, "%s", r.raw)
					} else if r.status >= 300 {
						assert.Less(t, r.status, 500, "%s", r.raw)
						return
					}
					got := dataOf(t, r)
					assertMessage(t, got)
					if c, ok := tc.body.(jo)["content"].(string); ok {
						assert.Equal(t, c, got["content"], "returned verbatim")
						stored := findMessage(t, s.allHistory(t, u.alice, g, 100), num(t, got["id"]))
						if assert.NotNil(t, stored) {
							assert.Equal(t, c, stored["content"], "stored verbatim")
						}
					}
					if tc.check != nil {
						tc.check(t, got)
					}
				})
			}
		})

		t.Run("edit", func(t *testing.T) {
			mid := num(t, s.send(t, u.bob, g, "original")["id"])
			cases := []chatBad{
				{"malformed json", `{"content": `, 400, ""},
				{"array body", `["x"]`, 400, ""},
				{"empty body", "", 422, "Content can't be blank"},
				{"empty object", "{}", 422, "Content can't be blank"},
				{"content null", jo{"content": nil}, 422, "Content can't be blank"},
				{"content empty", jo{"content": ""}, 422, "Content can't be blank"},
				{"content whitespace", jo{"content": "   "}, 422, "Content can't be blank"},
				{"content a number", jo{"content": 1}, 422, "Content must be a string"},
				{"content an object", jo{"content": jo{}}, 422, "Content must be a string"},
				{"content 4001 chars", jo{"content": strings.Repeat("x", 4001)}, 422, "Content is too long (maximum is 4000 characters)"},
				{"nested content a number", jo{"message": jo{"content": 1}}, 422, "Content must be a string"},
			}
			for _, tc := range cases {
				t.Run(tc.name, func(t *testing.T) {
					r := s.do("PATCH", messagePath(g, mid), u.bob.token, tc.body)
					checkBad(t, r, tc.status, tc.want)
				})
			}
			stored := findMessage(t, s.allHistory(t, u.bob, g, 100), mid)
			require.NotNil(t, stored)
			assert.Equal(t, "original", stored["content"], "failed edits change nothing")
			assert.Nil(t, stored["edited_at"])

			for name, content := range map[string]string{"4000 emoji": strings.Repeat("🎉", 4000), "sql": verbatimContents["sql quote"], "html": verbatimContents["html script"]} {
				t.Run("accepted "+name, func(t *testing.T) {
					r := s.do("PATCH", messagePath(g, mid), u.bob.token, jo{"content": content})
					require.Equal(t, http.StatusOK, r.status, "%s", r.raw)
					assert.Equal(t, content, r.json(t)["content"])
				})
			}
			t.Run("nul character", func(t *testing.T) {
				r := s.do("PATCH", messagePath(g, mid), u.bob.token, jo{"content": "a\x00b"})
				assert.Less(t, r.status, 500, "%s", r.raw)
			})
			t.Run("ignored fields", func(t *testing.T) {
				r := s.do("PATCH", messagePath(g, mid), u.bob.token, jo{"content": "final", "user_id": u.alice.id, "message_type": "image", "conversation_id": h, "parent_message_id": first, "edited_at": nil})
				require.Equal(t, http.StatusOK, r.status, "%s", r.raw)
				got := r.json(t)
				assertMessage(t, got)
				assert.Equal(t, "final", got["content"])
				assert.Equal(t, u.bob.id, num(t, obj(t, got["user"])["id"]))
				assert.Equal(t, "text", got["message_type"])
				assert.Nil(t, got["parent_message_id"])
				assertTimestamp(t, got["edited_at"], "edited_at")
				assert.NotNil(t, findMessage(t, s.allHistory(t, u.bob, g, 100), mid), "still in g")
			})
		})

		t.Run("history query", func(t *testing.T) {
			deleted := num(t, s.send(t, u.bob, g, "to delete")["id"])
			require.Equal(t, http.StatusOK, s.do("DELETE", messagePath(g, deleted), u.bob.token, nil).status)
			for _, tc := range []struct {
				name   string
				query  string
				status int
			}{
				{"limit a word", "limit=abc", 400},
				{"limit a fraction", "limit=1.5", 400},
				{"limit with sql", "limit=1%20OR%201=1", 400},
				{"limit hex", "limit=0x10", 400},
				{"limit beyond int64", "limit=99999999999999999999", 0},
				{"cursor a word", "cursor=abc", 400},
				{"cursor a fraction", "cursor=1.5", 400},
				{"cursor with sql", "cursor=1%3B%20DROP%20TABLE%20messages", 400},
				{"cursor beyond int64", "cursor=99999999999999999999", 0},
				{"cursor missing message", "cursor=" + itoa(missingID), 422},
				{"cursor negative", "cursor=-1", 0},
				{"cursor zero", "cursor=0", 0},
				{"cursor from another conversation", "cursor=" + itoa(hMsg), 422},
			} {
				t.Run(tc.name, func(t *testing.T) {
					r := s.do("GET", messagesPath(g)+"?"+tc.query, u.bob.token, nil)
					checkBad(t, r, tc.status, "")
				})
			}
		})
	})
}

func TestReactionBadInput(t *testing.T) {
	eachMode(t, func(t *testing.T, m mode) {
		s := start(t, m.config(t))
		u := s.freshUsers()
		g := num(t, s.createGroup(t, u.alice, "g", u.bob)["id"])
		mid := num(t, s.send(t, u.alice, g, "react here")["id"])
		s.react(t, u.bob, mid, "👍")
		type jo = map[string]any
		reaction := func(fields jo) jo {
			base := jo{"message_id": mid, "emoji": "🔥"}
			for k, v := range fields {
				if v == "<absent>" {
					delete(base, k)
				} else {
					base[k] = v
				}
			}
			return jo{"reaction": base}
		}

		cases := []chatBad{
			{"malformed json", `{"reaction": {`, 400, ""},
			{"array body", `[{"message_id": 1}]`, 400, ""},
			{"empty body", "", 0, ""},
			{"empty object", "{}", 0, ""},
			{"emoji missing", reaction(jo{"emoji": "<absent>"}), 422, "Emoji can't be blank"},
			{"emoji null", reaction(jo{"emoji": nil}), 422, "Emoji can't be blank"},
			{"emoji empty", reaction(jo{"emoji": ""}), 422, "Emoji can't be blank"},
			{"emoji whitespace", reaction(jo{"emoji": "  "}), 422, "Emoji can't be blank"},
			{"emoji a number", reaction(jo{"emoji": 1}), 422, "Emoji must be a string"},
			{"emoji an object", reaction(jo{"emoji": jo{}}), 422, "Emoji must be a string"},
			{"emoji an array", reaction(jo{"emoji": []string{"👍"}}), 422, "Emoji must be a string"},
			{"emoji 11 emoji", reaction(jo{"emoji": strings.Repeat("👍", 11)}), 422, "Emoji is too long (maximum is 10 characters)"},
			{"emoji 11 letters", reaction(jo{"emoji": "abcdefghijk"}), 422, "Emoji is too long (maximum is 10 characters)"},
			{"emoji repeated", reaction(jo{"emoji": "👍"}), 422, "Emoji has already been taken"},
			{"emoji repeated top-level", jo{"message_id": mid, "emoji": "👍"}, 422, "Emoji has already been taken"},
			{"message_id missing", reaction(jo{"message_id": "<absent>"}), 0, ""},
			{"message_id null", reaction(jo{"message_id": nil}), 0, ""},
			{"message_id a word", reaction(jo{"message_id": "abc"}), 0, ""},
			{"message_id a fraction", reaction(jo{"message_id": 1.5}), 0, ""},
			{"message_id an object", reaction(jo{"message_id": jo{"id": mid}}), 0, ""},
			{"message_id an array", reaction(jo{"message_id": []int64{mid}}), 0, ""},
			{"message_id negative", reaction(jo{"message_id": -1}), 404, "Not found"},
			{"message_id zero", reaction(jo{"message_id": 0}), 0, ""},
			{"message_id missing message", reaction(jo{"message_id": missingID}), 404, "Not found"},
			{"message_id beyond 2^53", reaction(jo{"message_id": int64(1) << 60}), 0, ""},
			{"message_id beyond int64", `{"reaction":{"message_id":99999999999999999999,"emoji":"x"}}`, 0, ""},
			{"nested emoji a number", jo{"reaction": jo{"message_id": mid, "emoji": 7}}, 422, "Emoji must be a string"},
			{"huge body", `{"reaction":{"message_id":1,"emoji":"` + strings.Repeat("a", 2<<20) + `"}}`, 413, ""},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				r := s.do("POST", "/api/v1/reactions", u.bob.token, tc.body)
				checkBad(t, r, tc.status, tc.want)
			})
		}
		assert.Len(t, s.reactionIDs(t, u.bob, g, mid), 1, "nothing was stored")

		oks := []okCase{
			{"10 emoji", reaction(jo{"emoji": strings.Repeat("👍", 10)}), 201, nil},
			{"10 letters", reaction(jo{"emoji": "abcdefghij"}), 201, nil},
			{"sql", reaction(jo{"emoji": "' OR 1=1"}), 201, nil},
			{"like", reaction(jo{"emoji": "%_\\"}), 201, nil},
			{"html", reaction(jo{"emoji": "<b>x</b>"}), 201, nil},
			{"top-level body", jo{"message_id": mid, "emoji": "🎉"}, 201, nil},
			{"another user's emoji again", reaction(jo{"emoji": "👍", "user_id": u.bob.id}), 201, nil},
			{"ignored fields", reaction(jo{"emoji": "🙂", "id": 1, "user_id": u.bob.id, "message_created_at": "2000-01-01T00:00:00.000Z"}), 201, nil},
		}
		for _, tc := range oks {
			t.Run(tc.name, func(t *testing.T) {
				who := u.alice
				r := s.do("POST", "/api/v1/reactions", who.token, tc.body)
				require.Equal(t, tc.status, r.status, "%s", r.raw)
				got := r.json(t)
				assertReaction(t, got)
				want := tc.body.(jo)
				if inner, ok := want["reaction"].(jo); ok {
					want = inner
				}
				assert.Equal(t, want["emoji"], got["emoji"], "returned verbatim")
				assert.Equal(t, u.alice.id, num(t, got["user_id"]), "the caller's reaction")
				assert.Equal(t, mid, num(t, got["message_id"]))
			})
		}
		t.Run("nul character", func(t *testing.T) {
			r := s.do("POST", "/api/v1/reactions", u.alice.token, reaction(jo{"emoji": "a\x00"}))
			assert.Less(t, r.status, 500, "%s", r.raw)
			if r.status == http.StatusCreated {
				require.Equal(t, http.StatusOK, s.do("DELETE", reactionPath(num(t, r.json(t)["id"])), u.alice.token, nil).status)
			}
		})
		t.Run("stored verbatim", func(t *testing.T) {
			msgs := s.allHistory(t, u.bob, g, 100)
			msg := findMessage(t, msgs, mid)
			require.NotNil(t, msg)
			var emoji []any
			for _, r := range objs(t, msg["reactions"]) {
				emoji = append(emoji, r["emoji"])
			}
			assert.ElementsMatch(t, []any{"👍", strings.Repeat("👍", 10), "abcdefghij", "' OR 1=1", "%_\\", "<b>x</b>", "🎉", "👍", "🙂"}, emoji)
		})
	})
}

func TestMembershipBadInput(t *testing.T) {
	eachMode(t, func(t *testing.T, m mode) {
		s := start(t, m.config(t))
		u := s.freshUsers()
		g := num(t, s.createGroup(t, u.alice, "g", u.bob)["id"])
		type jo = map[string]any
		cases := []chatBad{
			{"malformed json", `{"user_id": `, 400, ""},
			{"array body", `[1]`, 400, ""},
			{"empty body", "", 422, "User can't be blank"},
			{"empty object", "{}", 422, "User can't be blank"},
			{"user_id null", jo{"user_id": nil}, 422, "User can't be blank"},
			{"user_id a word", jo{"user_id": "abc"}, 422, "User must be a user id"},
			{"user_id a fraction", jo{"user_id": 1.5}, 422, "User must be a user id"},
			{"user_id an object", jo{"user_id": jo{"id": u.carol.id}}, 422, "User must be a user id"},
			{"user_id an array", jo{"user_id": []int64{u.carol.id}}, 422, "User must be a user id"},
			{"user_id a bool", jo{"user_id": true}, 422, "User must be a user id"},
			{"user_id sql", jo{"user_id": "1 OR 1=1"}, 422, "User must be a user id"},
			{"user_id negative", jo{"user_id": -1}, 422, "User does not exist"},
			{"user_id missing user", jo{"user_id": missingID}, 422, "User does not exist"},
			{"user_id beyond 2^53", jo{"user_id": int64(1) << 60}, 422, "User"},
			{"user_id beyond int64", `{"user_id":99999999999999999999}`, 422, "User"},
			{"already a member", jo{"user_id": u.bob.id}, 422, "User is already a member"},
			{"the admin", jo{"user_id": u.alice.id}, 422, "User is already a member"},
			{"huge body", `{"user_id":1,"x":"` + strings.Repeat("a", 2<<20) + `"}`, 413, ""},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				r := s.do("POST", membershipsPath(g), u.alice.token, tc.body)
				checkBad(t, r, tc.status, tc.want)
			})
		}
		t.Run("members unchanged", func(t *testing.T) {
			r := s.do("GET", convPath(g), u.alice.token, nil)
			require.Equal(t, http.StatusOK, r.status, "%s", r.raw)
			assert.ElementsMatch(t, []int64{u.alice.id, u.bob.id}, memberIDs(t, dataOf(t, r)))
		})
		t.Run("ignored fields", func(t *testing.T) {
			r := s.do("POST", membershipsPath(g), u.alice.token, jo{"user_id": u.carol.id, "role": "admin", "conversation_id": 1})
			require.Equal(t, http.StatusCreated, r.status, "%s", r.raw)
			assert.JSONEq(t, `{"message":"Member added"}`, string(r.raw))
			r = s.do("POST", membershipsPath(g), u.carol.token, jo{"user_id": u.dave.id})
			assert.Equal(t, http.StatusForbidden, r.status, "role is not mass-assigned: %s", r.raw)
		})
	})
}

// Path ids that are not positive integers below 2^53 are 404, never 500.
func TestChatBadPathIDs(t *testing.T) {
	eachMode(t, func(t *testing.T, m mode) {
		s := start(t, m.config(t))
		f := s.chatFixture(t)
		bad := []string{"abc", "-1", "0", "1.5", "1e3", "0x10", "99999999999999999999", "9223372036854775808", "9007199254740993", "1%20OR%201=1", "%27", "1;DROP"}
		g, mid := itoa(f.g), itoa(f.bobMsg)
		for _, id := range bad {
			for _, rt := range []struct {
				method, path string
				body         any
			}{
				{"GET", "/api/v1/conversations/" + id, nil},
				{"DELETE", "/api/v1/conversations/" + id, nil},
				{"POST", "/api/v1/conversations/" + id + "/memberships", map[string]any{"user_id": f.dave.id}},
				{"DELETE", "/api/v1/conversations/" + id + "/memberships/" + itoa(f.bob.id), nil},
				{"DELETE", "/api/v1/conversations/" + g + "/memberships/" + id, nil},
				{"GET", "/api/v1/conversations/" + id + "/messages", nil},
				{"POST", "/api/v1/conversations/" + id + "/messages", map[string]any{"content": "x"}},
				{"PATCH", "/api/v1/conversations/" + id + "/messages/" + mid, map[string]any{"content": "x"}},
				{"PATCH", "/api/v1/conversations/" + g + "/messages/" + id, map[string]any{"content": "x"}},
				{"DELETE", "/api/v1/conversations/" + id + "/messages/" + mid, nil},
				{"DELETE", "/api/v1/conversations/" + g + "/messages/" + id, nil},
				{"DELETE", "/api/v1/reactions/" + id, nil},
			} {
				t.Run(rt.method+" "+rt.path, func(t *testing.T) {
					// alice administers g and wrote nothing the body could touch; bob authored mid.
					for _, who := range []account{f.alice, f.bob} {
						r := s.do(rt.method, rt.path, who.token, rt.body)
						assert.Equal(t, http.StatusNotFound, r.status, "%s", r.raw)
						assert.JSONEq(t, notFound, string(r.raw))
					}
				})
			}
		}
		assert.Len(t, s.allHistory(t, f.bob, f.g, 100), 2, "nothing changed")
		assert.Len(t, s.reactionIDs(t, f.bob, f.g, f.aliceMsg), 2)
	})
}

package main_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestChatIdempotentSend drives sends with a client_id: a retry, however
// many run at once, answers the message the first one stored and publishes
// nothing more, and the message shows its client_id wherever it is rendered.
func TestChatIdempotentSend(t *testing.T) {
	eachMode(t, func(t *testing.T, m mode) {
		s := start(t, raised(m.config(t), "messages"))
		u := s.freshUsers()
		g := num(t, s.createGroup(t, u.alice, "retries", u.bob)["id"])
		h := num(t, s.createGroup(t, u.alice, "elsewhere", u.bob)["id"])

		t.Run("20 concurrent sends of one client_id store one message", func(t *testing.T) {
			const n = 20
			events := s.subscribe(t, convStream(g))
			id := "3d6f0a52-9c1e-4b7a-8f21-5e0c7b9d4a16"
			body, err := json.Marshal(map[string]any{"message": map[string]any{"content": "once", "client_id": id}})
			require.NoError(t, err)

			statuses := make([]int, n)
			raws := make([][]byte, n)
			errs := make([]error, n)
			var wg sync.WaitGroup
			for i := range n {
				// Not s.do: a failed require must not run off the test's goroutine.
				wg.Go(func() { statuses[i], raws[i], errs[i] = s.post(messagesPath(g), u.alice.token, body) })
			}
			wg.Wait()

			created := 0
			var first map[string]any
			for i := range n {
				require.NoError(t, errs[i])
				require.Contains(t, []int{http.StatusCreated, http.StatusOK}, statuses[i], "%s", raws[i])
				if statuses[i] == http.StatusCreated {
					created++
				}
				got := dataOf(t, response{status: statuses[i], raw: raws[i]})
				if first == nil {
					first = got
				}
				assertSameObject(t, first, got, "answer %d is the same message", i)
			}
			assert.Equal(t, 1, created, "one 201, the rest 200")
			assertMessage(t, first)
			assert.Equal(t, id, first["client_id"])
			assertEvent(t, events.one(t), "new_message", "message", first)

			msgs, _ := s.page(t, u.bob, g, "")
			require.Len(t, msgs, 1)
			assertSameObject(t, first, msgs[0], "history has the one message, with its client_id")
		})

		t.Run("a retry answers the message as history renders it now", func(t *testing.T) {
			events := s.subscribe(t, convStream(g))
			body := map[string]any{"content": "top-level body", "client_id": "retry-1"}
			r := s.do("POST", messagesPath(g), u.bob.token, body)
			require.Equal(t, http.StatusCreated, r.status, "%s", r.raw)
			sent := dataOf(t, r)
			events.one(t)
			s.react(t, u.alice, num(t, sent["id"]), "👍")
			events.drain()

			body["content"] = "changed before the retry"
			r = s.do("POST", messagesPath(g), u.bob.token, body)

			require.Equal(t, http.StatusOK, r.status, "%s", r.raw)
			again := dataOf(t, r)
			assert.Equal(t, num(t, sent["id"]), num(t, again["id"]))
			assert.Equal(t, "top-level body", again["content"], "the first send's message")
			msgs, _ := s.page(t, u.bob, g, "limit=100")
			require.NotEmpty(t, msgs)
			newest := msgs[len(msgs)-1]
			assert.Len(t, objs(t, newest["reactions"]), 1)
			assertSameObject(t, newest, again, "reactions included")
			events.none(t, "a retry publishes nothing")
		})

		t.Run("client ids are per user", func(t *testing.T) {
			a := s.do("POST", messagesPath(g), u.alice.token, map[string]any{"content": "a", "client_id": "shared"})
			b := s.do("POST", messagesPath(g), u.bob.token, map[string]any{"content": "b", "client_id": "shared"})

			require.Equal(t, http.StatusCreated, a.status, "%s", a.raw)
			require.Equal(t, http.StatusCreated, b.status, "%s", b.raw)
			assert.NotEqual(t, num(t, dataOf(t, a)["id"]), num(t, dataOf(t, b)["id"]))
		})

		t.Run("a client_id of another conversation is 409", func(t *testing.T) {
			events := s.subscribe(t, convStream(h))
			r := s.do("POST", messagesPath(g), u.alice.token, map[string]any{"content": "here", "client_id": "moved"})
			require.Equal(t, http.StatusCreated, r.status, "%s", r.raw)

			r = s.do("POST", messagesPath(h), u.alice.token, map[string]any{"content": "there", "client_id": "moved"})

			assert.Equal(t, http.StatusConflict, r.status, "%s", r.raw)
			assert.Equal(t, map[string]any{"error": "Client id was already used for another conversation"}, r.json(t))
			events.none(t, "nothing sent")
			msgs, _ := s.page(t, u.alice, h, "")
			assert.Empty(t, msgs)
		})

		t.Run("without client_id the message says null", func(t *testing.T) {
			for _, body := range []map[string]any{
				{"content": "no key"},
				{"content": "null key", "client_id": nil},
				{"message": map[string]any{"content": "wrapped, no key"}},
			} {
				r := s.do("POST", messagesPath(g), u.alice.token, body)
				require.Equal(t, http.StatusCreated, r.status, "%v: %s", body, r.raw)
				got := dataOf(t, r)
				assert.Contains(t, got, "client_id")
				assert.Nil(t, got["client_id"], "%v", body)
			}
		})

		t.Run("a bad client_id is 422 and stores nothing", func(t *testing.T) {
			const charset = "Client id may contain only letters, digits, '-', '_', '.' and ':'"
			before, _ := s.page(t, u.alice, g, "limit=100")
			for _, tc := range []struct {
				name    string
				id      any
				problem string
			}{
				{"empty", "", "Client id can't be blank"},
				{"65 characters", strings.Repeat("a", 65), "Client id is too long (maximum is 64 characters)"},
				{"a space", "a b", charset},
				{"a slash", "a/b", charset},
				{"non-ASCII", "clé", charset},
				{"a number", 42, "Client id must be a string"},
				{"an object", map[string]any{"id": "x"}, "Client id must be a string"},
			} {
				t.Run(tc.name, func(t *testing.T) {
					for _, body := range []map[string]any{
						{"content": "x", "client_id": tc.id},
						{"message": map[string]any{"content": "x", "client_id": tc.id}},
					} {
						r := s.do("POST", messagesPath(g), u.alice.token, body)

						require.Equal(t, http.StatusUnprocessableEntity, r.status, "%s", r.raw)
						assert.Equal(t, map[string]any{"errors": []any{tc.problem}}, r.json(t))
					}
				})
			}
			after, _ := s.page(t, u.alice, g, "limit=100")
			assert.Equal(t, idsOf(t, before), idsOf(t, after))
		})
	})
}

// post sends a JSON body without failing the test, so that it may run on
// any goroutine.
func (s *stack) post(path, token string, body []byte) (status int, raw []byte, err error) {
	req, err := http.NewRequest(http.MethodPost, s.srv.URL+path, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := s.srv.Client().Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	raw, err = io.ReadAll(resp.Body)
	return resp.StatusCode, raw, err
}

package main_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// rawStatus sends a request and returns its status. Unlike stack.do it may
// run on a goroutine of its own: it reports failures with Errorf (0 then).
func rawStatus(t *testing.T, s *stack, method, path, token string, body any) int {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Errorf("encoding %v: %v", body, err)
			return 0
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, s.srv.URL+path, rd)
	if err != nil {
		t.Errorf("%s %s: %v", method, path, err)
		return 0
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := s.srv.Client().Do(req)
	if err != nil {
		t.Errorf("%s %s: %v", method, path, err)
		return 0
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode
}

// editOrderTries is how many times the edit race runs.
const editOrderTries = 50

// Two edits of one message at once, from two tabs (memory: one instance) or
// through two instances (real: two servers on one PostgreSQL and Redis):
// every subscriber, on either instance, gets both message_edited events in
// the order the edits were stored, so the last one shows the stored text.
func TestEditOrder(t *testing.T) {
	eachMode(t, func(t *testing.T, m mode) {
		cfg := raised(m.config(t), "register_ip", "messages")
		a := start(t, cfg)
		b := a
		if m.name == "real" {
			b = start(t, cfg)
		}
		u := a.freshUsers()
		g := num(t, a.createGroup(t, u.alice, "g", u.bob, u.carol)["id"])
		watchers := []*wsClient{a.cable(t, u.bob), b.cable(t, u.carol)}
		for _, w := range watchers {
			w.mustConfirm(t, convIdent(g))
		}

		for try := range editOrderTries {
			mid := num(t, a.send(t, u.alice, g, fmt.Sprintf("original %d", try))["id"])
			edits := []string{fmt.Sprintf("try %d via A", try), fmt.Sprintf("try %d via B", try)}
			statuses := make([]int, len(edits))
			var wg sync.WaitGroup
			ready := make(chan struct{})
			for i, via := range []*stack{a, b} {
				wg.Go(func() {
					<-ready
					statuses[i] = rawStatus(t, via, "PATCH", messagePath(g, mid), u.alice.token, map[string]any{"content": edits[i]})
				})
			}
			close(ready)
			wg.Wait()
			require.Equal(t, []int{http.StatusOK, http.StatusOK}, statuses, "try %d", try)

			msgs, _ := a.page(t, u.alice, g, "limit=1")
			require.Len(t, msgs, 1)
			require.Equal(t, mid, num(t, msgs[0]["id"]))
			stored := msgs[0]["content"].(string)
			for i, w := range watchers {
				var seen []string
				for range edits {
					ev := w.expectMessage(t, convIdent(g), func(msg map[string]any) bool {
						return msg["type"] == "message_edited" && num(t, obj(t, msg["message"])["id"]) == mid
					})
					seen = append(seen, obj(t, ev["message"])["content"].(string))
				}
				assert.ElementsMatch(t, edits, seen, "try %d, watcher %d: each edit once", try, i)
				assert.Equal(t, stored, seen[len(seen)-1], "try %d, watcher %d: the last event shows the stored text (events %q)", try, i, seen)
				w.discard()
			}
		}
	})
}

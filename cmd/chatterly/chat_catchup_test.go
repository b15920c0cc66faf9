package main_test

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestChatCatchup drives history with after=<id>, the page forward a client
// reads to catch up on what it missed: oldest first, the cursor excluded,
// next_cursor to pass back as after, rendered as history renders.
func TestChatCatchup(t *testing.T) {
	eachMode(t, func(t *testing.T, m mode) {
		s := start(t, m.config(t))
		u := s.freshUsers()
		g := num(t, s.createGroup(t, u.alice, "catch-up", u.bob)["id"])
		h := num(t, s.createGroup(t, u.alice, "elsewhere", u.bob)["id"])
		other := num(t, s.send(t, u.alice, h, "not in g")["id"])
		var ids []int64
		for i := range 7 {
			from := u.alice
			if i%2 == 1 {
				from = u.bob
			}
			ids = append(ids, num(t, s.send(t, from, g, "message "+itoa(int64(i)))["id"]))
		}
		s.react(t, u.bob, ids[4], "👍")

		t.Run("pages forward to the end, oldest first", func(t *testing.T) {
			var pages [][]int64
			var nexts []any
			after := ids[2]
			for range 10 {
				msgs, next := s.page(t, u.bob, g, "limit=2&after="+itoa(after))
				pages = append(pages, idsOf(t, msgs))
				nexts = append(nexts, next)
				if next == nil {
					break
				}
				after = num(t, next)
			}

			assert.Equal(t, [][]int64{{ids[3], ids[4]}, {ids[5], ids[6]}, {}}, pages)
			assert.Equal(t, []any{float64(ids[4]), float64(ids[6]), nil}, nexts,
				"a full page's next_cursor is its newest message; the empty page ends it")
		})

		t.Run("rendered as history renders", func(t *testing.T) {
			history, _ := s.page(t, u.bob, g, "")
			caughtUp, next := s.page(t, u.bob, g, "after="+itoa(ids[2]))

			assert.Nil(t, next, "a short page is the last")
			require.Len(t, caughtUp, 4)
			assertSameObject(t, history[3:], caughtUp)
			assert.Len(t, objs(t, caughtUp[1]["reactions"]), 1, "reactions come along")
		})

		t.Run("deleted messages are left out, and may be the cursor", func(t *testing.T) {
			require.Equal(t, http.StatusOK, s.do("DELETE", messagePath(g, ids[5]), u.alice.token, nil).status)

			msgs, _ := s.page(t, u.bob, g, "after="+itoa(ids[2]))
			assert.Equal(t, []int64{ids[3], ids[4], ids[6]}, idsOf(t, msgs))
			msgs, _ = s.page(t, u.bob, g, "after="+itoa(ids[5]))
			assert.Equal(t, []int64{ids[6]}, idsOf(t, msgs))
		})

		t.Run("bad input is answered as a bad cursor is", func(t *testing.T) {
			for _, tc := range []struct {
				name   string
				query  string
				status int
			}{
				{"after a word", "after=abc", 400},
				{"after a fraction", "after=1.5", 400},
				{"after negative", "after=-1", 400},
				{"after zero", "after=0", 400},
				{"after beyond int64", "after=99999999999999999999", 400},
				{"after a missing message", "after=" + itoa(missingID), 422},
				{"after a message of another conversation", "after=" + itoa(other), 422},
				{"after and cursor together", "after=" + itoa(ids[2]) + "&cursor=" + itoa(ids[4]), 400},
				{"after and a bad limit", "after=" + itoa(ids[2]) + "&limit=abc", 400},
			} {
				t.Run(tc.name, func(t *testing.T) {
					checkBad(t, s.do("GET", messagesPath(g)+"?"+tc.query, u.bob.token, nil), tc.status, "")
				})
			}
		})

		t.Run("strangers get 404", func(t *testing.T) {
			for _, tc := range []struct {
				name string
				cid  int64
			}{
				{"a conversation of others", g},
				{"a missing conversation", missingID},
			} {
				t.Run(tc.name, func(t *testing.T) {
					r := s.do("GET", messagesPath(tc.cid)+"?after="+itoa(ids[2]), u.carol.token, nil)

					assert.Equal(t, http.StatusNotFound, r.status, "%s", r.raw)
				})
			}
		})
	})
}

package main_test

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/chatterly/chatterly/adapters/memory"
	"github.com/chatterly/chatterly/adapters/redis/redistest"
	main "github.com/chatterly/chatterly/cmd/chatterly"
)

// The handshake: subprotocol, welcome, origins.
func TestWSHandshake(t *testing.T) {
	eachMode(t, func(t *testing.T, m mode) {
		s := start(t, m.config(t))
		a := s.register("alice")

		t.Run("welcome first, and nothing else unasked", func(t *testing.T) {
			c := dial(t, s, a.token, nil)
			assert.Equal(t, "actioncable-v1-json", c.conn.Subprotocol())
			assert.Equal(t, "actioncable-v1-json", c.resp.Header.Get("Sec-WebSocket-Protocol"))
			f, ok := c.frame(wsWait)
			require.True(t, ok, "no welcome")
			require.NoError(t, f.err)
			assert.Equal(t, websocket.TextMessage, f.kind)
			assert.JSONEq(t, welcomeFrame, string(f.raw))
			c.quiet(t, "only pings follow the welcome")
		})

		t.Run("the JSON protocol is chosen whatever the offer's order", func(t *testing.T) {
			d := cableDialer()
			d.Subprotocols = []string{"actioncable-unsupported", "actioncable-v1-json"}
			c := dialWith(t, d, s, a.token, nil)
			assert.Equal(t, "actioncable-v1-json", c.conn.Subprotocol())
			c.expectWelcome(t)
		})

		origins := []struct {
			name   string
			origin string
			ok     bool
		}{
			{"no origin", "", true},
			{"allowed frontend", "http://localhost:3000", true},
			{"same host", sameOrigin(s), true},
			{"foreign", "https://evil.example", false},
			{"allowed host on another port", "http://localhost:3001", false},
			{"allowed origin as a prefix", "http://localhost:3000.evil.example", false},
			{"allowed origin over https", "https://localhost:3000", false},
			{"null", "null", false},
		}
		for _, tc := range origins {
			t.Run("origin "+tc.name, func(t *testing.T) {
				h := http.Header{}
				if tc.origin != "" {
					h.Set("Origin", tc.origin)
				}
				conn, resp, err := dialCable(cableDialer(), cableURL(s, a.token), h)
				if tc.ok {
					require.NoError(t, err)
					c := newClient(t, conn, resp)
					c.expectWelcome(t)
					return
				}
				if conn != nil {
					conn.Close()
				}
				require.ErrorIs(t, err, websocket.ErrBadHandshake)
				require.NotNil(t, resp)
				assert.Equal(t, http.StatusForbidden, resp.StatusCode)
				body, _ := io.ReadAll(resp.Body)
				assert.JSONEq(t, `{"error":"Origin not allowed"}`, string(body))
			})
		}
	})
}

// Pings come every 3 s with the server's unix time, never decreasing.
func TestWSPing(t *testing.T) {
	t.Parallel()
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			t.Parallel()
			s := start(t, m.config(t))
			c := s.cable(t, s.register("alice"))
			welcomed := time.Now()
			var pings []wsFrame
			deadline := welcomed.Add(7 * time.Second)
			for len(pings) < 2 && time.Now().Before(deadline) {
				f, ok := c.frame(time.Until(deadline))
				if !ok {
					break
				}
				require.NoError(t, f.err)
				require.True(t, f.isPing(), "only pings arrive unasked: %s", f.raw)
				assert.ElementsMatch(t, []string{"type", "message"}, keys(f.m), "ping: %s", f.raw)
				pings = append(pings, f)
			}
			require.GreaterOrEqual(t, len(pings), 2, "two pings within 7 s of the welcome")
			assert.Less(t, pings[0].at.Sub(welcomed), 3500*time.Millisecond, "the first ping within ~3 s")
			var last int64
			for i, p := range pings {
				v, ok := p.m["message"].(float64)
				require.True(t, ok, "message is a number: %s", p.raw)
				require.Equal(t, float64(int64(v)), v, "message is an integer: %s", p.raw)
				assert.InDelta(t, time.Now().Unix(), int64(v), 10, "unix seconds")
				assert.GreaterOrEqual(t, int64(v), last, "never decreasing")
				last = int64(v)
				if i > 0 {
					gap := p.at.Sub(pings[i-1].at)
					assert.InDelta(t, 3*time.Second, gap, float64(700*time.Millisecond), "pings about every 3 s: %s", gap)
				}
			}
		})
	}
}

// Bad credentials upgrade, then hear unauthorized and are closed; no welcome.
func TestWSUnauthorized(t *testing.T) {
	eachMode(t, func(t *testing.T, m mode) {
		s := start(t, m.config(t))
		a := s.register("alice")
		revoked := s.register("bob")
		require.Equal(t, http.StatusOK, s.do("DELETE", "/auth/logout", revoked.token, nil).status)

		cases := []struct {
			name  string
			token string
			raw   string // raw query, when token is not enough to say it
		}{
			{"no token", "", ""},
			{"empty token", "", "token="},
			{"garbage", "not-a-jwt", ""},
			{"bad signature", badSignature(a.token), ""},
			{"expired", tokenFor(a.id, time.Now().Add(-time.Minute)), ""},
			{"logged out", revoked.token, ""},
			{"unknown user", tokenFor(missingID, time.Now().Add(time.Hour)), ""},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				u := cableURL(s, tc.token)
				if tc.raw != "" {
					u += "?" + tc.raw
				}
				conn, resp, err := dialCable(cableDialer(), u, nil)
				require.NoError(t, err, "the upgrade completes (a 401 would make the client retry forever)")
				assert.Equal(t, http.StatusSwitchingProtocols, resp.StatusCode)
				c := newClient(t, conn, resp)
				c.expectDisconnect(t, unauthorizedFrame)
			})
		}

		t.Run("the control connects", func(t *testing.T) {
			c := s.cable(t, a)
			c.mustConfirm(t, userIdent)
		})
	})
}

// A token that expires while its socket is open is cut off.
func TestWSTokenExpiresWhileOpen(t *testing.T) {
	eachMode(t, func(t *testing.T, m mode) {
		s := start(t, m.config(t))
		a := s.register("alice")
		exp := time.Now().Add(2 * time.Second)
		c := dial(t, s, tokenFor(a.id, exp), nil)
		c.expectWelcome(t)
		c.mustConfirm(t, userIdent)
		c.expectDisconnect(t, unauthorizedFrame)
		assert.WithinDuration(t, exp, time.Now(), 2*time.Second, "closed within a second or so of exp")
	})
}

// When the denylist cannot be checked, the client is told to retry, not to sign out.
func TestWSDenylistDown(t *testing.T) {
	t.Run("memory", func(t *testing.T) {
		dl := memory.NewDenylist()
		s := start(t, modes[0].config(t), func(a *main.Adapters) { a.Denylist = dl })
		a := s.register("alice")
		dl.SetUnavailable(true)
		dial(t, s, a.token, nil).expectDisconnect(t, restartFrame)
		dl.SetUnavailable(false)
		s.cable(t, a).mustConfirm(t, userIdent)
	})
	t.Run("real", func(t *testing.T) {
		cfg := modes[1].config(t)
		target, err := url.Parse(redistest.URL(t))
		require.NoError(t, err)
		proxy := newProxy(t, target.Host)
		cfg.RedisURL = "redis://" + proxy.addr() + "/0"
		s := start(t, cfg)
		a := s.register("alice")
		s.cable(t, a).close()
		proxy.stop()
		started := time.Now()
		dial(t, s, a.token, nil).expectDisconnect(t, restartFrame)
		assert.Less(t, time.Since(started), 10*time.Second, "fails fast")
	})
}

// Subscriptions: identifiers echoed byte for byte, duplicates, rejections, retries.
func TestWSSubscribe(t *testing.T) {
	eachMode(t, func(t *testing.T, m mode) {
		s := start(t, raised(m.config(t), "register_ip"))

		t.Run("identifiers are echoed byte for byte", func(t *testing.T) {
			u := s.freshUsers()
			g := num(t, s.createGroup(t, u.alice, "g", u.bob)["id"])
			c := s.cable(t, u.bob)
			idents := []string{
				convIdent(g),
				`{"conversation_id":` + itoa(g) + `, "channel":"ConversationChannel"}`,
				`{"channel":"ConversationChannel","conversation_id":"` + itoa(g) + `"}`,
				`{ "channel" : "ConversationChannel" ,  "conversation_id" : ` + itoa(g) + ` }`,
				`{"channel":"ConversationChannel","conversation_id":` + itoa(g) + `,"extra":"é\u00e9"}`,
			}
			for _, id := range idents {
				c.send(map[string]any{"command": "subscribe", "identifier": id})
				f := c.expect(t, func(m map[string]any) bool {
					return m["type"] == "confirm_subscription" || m["type"] == "reject_subscription"
				})
				assert.Equal(t, map[string]any{"identifier": id, "type": "confirm_subscription"}, f, "reply to %s", id)
			}
			c.quiet(t, "one reply per subscribe")

			msg := s.send(t, u.alice, g, "to every identifier")
			seen := map[string]bool{}
			for range idents {
				f := c.expect(t, func(m map[string]any) bool { _, ok := m["message"]; return ok })
				id := f["identifier"].(string)
				assert.Contains(t, idents, id)
				assert.False(t, seen[id], "one frame per identifier: %s", id)
				seen[id] = true
				assertEvent(t, f["message"].(map[string]any), "new_message", "message", msg)
			}
			c.quiet(t, "one frame per identifier")
		})

		t.Run("every channel confirms", func(t *testing.T) {
			u := s.freshUsers()
			c := s.cable(t, u.alice)
			for _, id := range []string{presenceIdent, userIdent, callIdent} {
				c.mustConfirm(t, id)
			}
		})

		t.Run("a second subscribe is ignored", func(t *testing.T) {
			u := s.freshUsers()
			g := num(t, s.createGroup(t, u.alice, "g", u.bob)["id"])
			c := s.cable(t, u.bob)
			c.mustConfirm(t, convIdent(g))
			c.send(map[string]any{"command": "subscribe", "identifier": convIdent(g)})
			c.quiet(t, "no second confirm")
			msg := s.send(t, u.alice, g, "once")
			assertEvent(t, c.expectEvent(t, convIdent(g), "new_message"), "new_message", "message", msg)
			c.quiet(t, "delivered once, not once per subscribe")
		})

		t.Run("unknown channel is rejected", func(t *testing.T) {
			u := s.freshUsers()
			c := s.cable(t, u.alice)
			const nope = `{"channel":"NopeChannel"}`
			c.send(map[string]any{"command": "subscribe", "identifier": nope})
			assert.Equal(t, map[string]any{"identifier": nope, "type": "reject_subscription"}, c.next(t))
			c.mustReject(t, nope) // forgotten, so answered again
			c.mustConfirm(t, userIdent)
		})

		t.Run("ConversationChannel rejects", func(t *testing.T) {
			u := s.freshUsers()
			g := num(t, s.createGroup(t, u.alice, "g", u.bob)["id"])
			gone := num(t, s.createGroup(t, u.dave, "gone", u.eve)["id"])
			require.Equal(t, http.StatusOK, s.do("DELETE", convPath(gone), u.dave.token, nil).status)
			c := s.cable(t, u.dave)
			for _, tc := range []struct{ name, ident string }{
				{"non-member", convIdent(g)},
				{"deleted conversation", convIdent(gone)},
				{"missing conversation", convIdent(missingID)},
				{"no conversation_id", `{"channel":"ConversationChannel"}`},
				{"null", `{"channel":"ConversationChannel","conversation_id":null}`},
				{"not a number", `{"channel":"ConversationChannel","conversation_id":"abc"}`},
				{"empty string", `{"channel":"ConversationChannel","conversation_id":""}`},
				{"zero", `{"channel":"ConversationChannel","conversation_id":0}`},
				{"negative", `{"channel":"ConversationChannel","conversation_id":-1}`},
				{"fraction", `{"channel":"ConversationChannel","conversation_id":` + itoa(g) + `.5}`},
				{"array", `{"channel":"ConversationChannel","conversation_id":[` + itoa(g) + `]}`},
				{"object", `{"channel":"ConversationChannel","conversation_id":{"id":` + itoa(g) + `}}`},
				{"huge", `{"channel":"ConversationChannel","conversation_id":99999999999999999999999}`},
			} {
				t.Run(tc.name, func(t *testing.T) {
					c.mustReject(t, tc.ident)
				})
			}
			c.quiet(t, "nothing after the rejections")

			r := s.do("POST", membershipsPath(g), u.alice.token, map[string]any{"user_id": u.dave.id})
			require.Equal(t, http.StatusCreated, r.status, "%s", r.raw)
			c.mustConfirm(t, convIdent(g))
			msg := s.send(t, u.bob, g, "welcome, dave")
			assertEvent(t, c.expectEvent(t, convIdent(g), "new_message"), "new_message", "message", msg)
		})

		t.Run("unsubscribe stops the events", func(t *testing.T) {
			u := s.freshUsers()
			g := num(t, s.createGroup(t, u.alice, "g", u.bob)["id"])
			c := s.cable(t, u.bob)
			c.mustConfirm(t, convIdent(g))
			c.mustConfirm(t, userIdent)
			s.send(t, u.alice, g, "before")
			c.expectEvent(t, convIdent(g), "new_message")

			c.unsubscribe(convIdent(g))
			c.unsubscribe(`{"channel":"ConversationChannel","conversation_id":` + itoa(missingID) + `}`)
			c.quiet(t, "unsubscribe has no reply")
			s.send(t, u.alice, g, "after")
			c.quiet(t, "no events after unsubscribe")

			s.createGroup(t, u.alice, "still here", u.bob)
			c.expectEvent(t, userIdent, "new_conversation")

			c.mustConfirm(t, convIdent(g))
			msg := s.send(t, u.alice, g, "again")
			assertEvent(t, c.expectEvent(t, convIdent(g), "new_message"), "new_message", "message", msg)
		})

		t.Run("actions on identifiers not subscribed are ignored", func(t *testing.T) {
			u := s.freshUsers()
			g := num(t, s.createGroup(t, u.alice, "g", u.bob)["id"])
			h := num(t, s.createGroup(t, u.alice, "h")["id"])
			watcher := s.cable(t, u.alice)
			watcher.mustConfirm(t, convIdent(g))
			watcher.mustConfirm(t, convIdent(h))
			c := s.cable(t, u.bob)
			c.perform(convIdent(g), map[string]any{"action": "typing"})
			c.perform(convIdent(h), map[string]any{"action": "typing"})
			watcher.quiet(t, "bob did not subscribe")
			c.mustReject(t, convIdent(h))
			c.perform(convIdent(h), map[string]any{"action": "typing"})
			watcher.quiet(t, "a rejected subscription performs nothing")
		})

		t.Run("malformed frames are ignored", func(t *testing.T) {
			u := s.freshUsers()
			g := num(t, s.createGroup(t, u.alice, "g", u.bob)["id"])
			watcher := s.cable(t, u.alice)
			watcher.mustConfirm(t, convIdent(g))
			c := s.cable(t, u.bob)
			c.mustConfirm(t, convIdent(g))
			id := convIdent(g)
			enc := func(v any) string { b, _ := json.Marshal(v); return string(b) }
			for _, tc := range []struct{ name, frame string }{
				{"not JSON", `{"command":`},
				{"plain text", `hello`},
				{"empty", ``},
				{"array", `[]`},
				{"string", `"subscribe"`},
				{"null", `null`},
				{"unknown command", enc(map[string]any{"command": "bogus", "identifier": id})},
				{"no command", enc(map[string]any{"identifier": id})},
				{"command not a string", enc(map[string]any{"command": 1, "identifier": id})},
				{"subscribe without identifier", `{"command":"subscribe"}`},
				{"identifier not a string", enc(map[string]any{"command": "subscribe", "identifier": map[string]any{"channel": "UserChannel"}})},
				{"message without identifier", enc(map[string]any{"command": "message", "data": `{"action":"typing"}`})},
				{"message without data", enc(map[string]any{"command": "message", "identifier": id})},
				{"data not a string", enc(map[string]any{"command": "message", "identifier": id, "data": map[string]any{"action": "typing"}})},
				{"data not JSON", enc(map[string]any{"command": "message", "identifier": id, "data": "typing"})},
				{"data without action", enc(map[string]any{"command": "message", "identifier": id, "data": `{}`})},
				{"unknown action", enc(map[string]any{"command": "message", "identifier": id, "data": `{"action":"launch"}`})},
				{"action not a string", enc(map[string]any{"command": "message", "identifier": id, "data": `{"action":["typing"]}`})},
				{"unsubscribe without identifier", `{"command":"unsubscribe"}`},
				{"identifier not JSON", enc(map[string]any{"command": "unsubscribe", "identifier": "nope"})},
			} {
				t.Run(tc.name, func(t *testing.T) {
					c.sendRaw(tc.frame)
					c.probe(t)
				})
			}
			t.Run("binary frame", func(t *testing.T) {
				b, _ := json.Marshal(map[string]any{"command": "subscribe", "identifier": userIdent})
				c.write(websocket.BinaryMessage, b)
				c.probe(t)
			})
			c.quiet(t, "no late replies")
			watcher.quiet(t, "malformed frames perform nothing")

			t.Run("the connection still answers", func(t *testing.T) {
				c.mustConfirm(t, userIdent)
				msg := s.send(t, u.alice, g, "still subscribed")
				assertEvent(t, c.expectEvent(t, id, "new_message"), "new_message", "message", msg)
			})
		})

		t.Run("frame size limit", func(t *testing.T) {
			u := s.freshUsers()
			c := s.cable(t, u.alice)
			pad := func(n int) string {
				return `{"command":"message","identifier":"{\"channel\":\"UserChannel\"}","data":"{\"action\":\"x\",\"pad\":\"` + strings.Repeat("a", n) + `\"}"}`
			}
			under := pad(60 << 10)
			require.Less(t, len(under), 64<<10)
			c.sendRaw(under)
			c.quiet(t, "a large frame under the limit is fine")
			c.mustConfirm(t, userIdent)

			over := pad(65 << 10)
			require.Greater(t, len(over), 64<<10)
			c.sendRaw(over)
			frames, err := c.untilClosed(t)
			assert.Empty(t, frames)
			var ce *websocket.CloseError
			if assert.True(t, errors.As(err, &ce), "a close frame: %v", err) {
				assert.Equal(t, websocket.CloseMessageTooBig, ce.Code)
			}
		})
	})
}

// badSignature changes the first character of a JWT's signature.
func badSignature(token string) string {
	i := strings.LastIndex(token, ".") + 1
	return token[:i] + flip(token[i:])
}

// probeSeq makes every probe identifier new.
var probeSeq atomic.Int64

// probe checks that the connection still answers, and that nothing came
// before the answer: commands are handled in order, so a reply to an earlier
// frame would have arrived first.
func (c *wsClient) probe(t *testing.T) {
	t.Helper()
	id := `{"channel":"UserChannel","probe":` + itoa(probeSeq.Add(1)) + `}`
	c.subscribe(t, id)
	assert.Empty(t, c.pending(), "no reply before the probe's")
	c.discard()
	c.unsubscribe(id)
}

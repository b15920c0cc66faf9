package main_test

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/gorilla/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Cross-site WebSocket hijacking: a page on another site that opens /cable
// in the victim's browser is refused before the upgrade, whatever token it
// carries; pages of the frontend, of the server itself and clients that
// send no Origin are let in. TestWSHandshake covers the basic table; this
// one checks what a refusal leaves behind.
func TestSecurityCrossSiteWebSocket(t *testing.T) {
	eachMode(t, func(t *testing.T, m mode) {
		s := start(t, secConfig(t, m))
		victim := s.register("victim")
		friend := s.register("friend")
		revoked := s.register("revoked")
		require.Equal(t, http.StatusOK, s.do("DELETE", "/auth/logout", revoked.token, nil).status)
		g := num(t, s.createGroup(t, friend, "friends", victim)["id"])
		// The friend watches the victim's presence: a hijacked socket
		// subscribing PresenceChannel would show the victim online.
		watch := s.cable(t, friend)
		watch.mustConfirm(t, presenceIdent)
		watch.expectEvent(t, presenceIdent, "initial_presence")

		foreign := []string{
			"https://evil.example",
			"http://evil.example:3000",
			"http://localhost:3000.evil.example",
			"http://localhost:3000@evil.example",
			"http://localhost",
			"https://localhost:3000",
			"http://127.0.0.1:3000",
			"null",
			"file://",
			sameOrigin(s) + ".evil.example",
		}
		tokens := map[string]string{"valid": victim.token, "revoked": revoked.token, "garbage": "not-a-jwt", "none": ""}
		for _, origin := range foreign {
			for kind, token := range tokens {
				t.Run(origin+"/"+kind+" token", func(t *testing.T) {
					h := http.Header{"Origin": {origin}}
					conn, resp, err := dialCable(cableDialer(), cableURL(s, token), h)
					if conn != nil {
						conn.Close()
					}
					require.ErrorIs(t, err, websocket.ErrBadHandshake, "no upgrade")
					require.NotNil(t, resp)
					defer resp.Body.Close()
					assert.Equal(t, http.StatusForbidden, resp.StatusCode, "refused before authentication")
					assert.Empty(t, resp.Header.Get("Upgrade"))
					assert.Empty(t, resp.Header.Get("Sec-WebSocket-Accept"))
					assert.Empty(t, resp.Header.Get("Sec-WebSocket-Protocol"))
					assert.Empty(t, resp.Header.Get("Access-Control-Allow-Origin"), "no CORS grant to the foreign origin")
					assert.Equal(t, "application/json", strings.Split(resp.Header.Get("Content-Type"), ";")[0])
					body, _ := io.ReadAll(resp.Body)
					assert.JSONEq(t, `{"error":"Origin not allowed"}`, string(body))
				})
			}
		}
		t.Run("a plain GET from a foreign origin is refused too", func(t *testing.T) {
			r := s.do("GET", "/cable?token="+victim.token, "", nil, "Origin", "https://evil.example")
			assert.Equal(t, http.StatusForbidden, r.status, "%s", r.raw)
		})
		t.Run("the refusals left no trace", func(t *testing.T) {
			watch.expectNone(t, onIdent(presenceIdent, presenceOf(victim, "online")), wsQuiet)
			assert.False(t, s.isOnline(t, friend, victim))
		})

		for name, origin := range map[string]string{
			"the frontend":              "http://localhost:3000",
			"the server's own host":     sameOrigin(s),
			"no Origin (not a browser)": "",
		} {
			t.Run("accepted: "+name, func(t *testing.T) {
				h := http.Header{}
				if origin != "" {
					h.Set("Origin", origin)
				}
				c := dial(t, s, victim.token, h)
				assert.Equal(t, http.StatusSwitchingProtocols, c.resp.StatusCode)
				c.expectWelcome(t)
				c.mustConfirm(t, convIdent(g))
				c.close()
			})
		}
		t.Run("an accepted origin still needs a valid token", func(t *testing.T) {
			h := http.Header{"Origin": {"http://localhost:3000"}}
			dial(t, s, revoked.token, h).expectDisconnect(t, unauthorizedFrame)
			dial(t, s, "", h).expectDisconnect(t, unauthorizedFrame)
		})
	})
}

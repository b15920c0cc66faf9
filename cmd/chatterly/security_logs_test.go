package main_test

import (
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A session's worth of traffic, good and bad, logged at debug level (the
// harness's logger): no token, password or key reaches a log line.
func TestSecurityNoSecretsInLogs(t *testing.T) {
	eachMode(t, func(t *testing.T, m mode) {
		s := start(t, secConfig(t, m))
		var secrets []string
		keep := func(v ...string) {
			for _, x := range v {
				require.NotEmpty(t, x)
				secrets = append(secrets, x)
			}
		}

		alice := s.register("alice")
		bob := s.register("bob")
		keep(alice.token, alice.password, bob.token, bob.password)

		login := s.login(t, alice)
		keep(login)
		g := num(t, s.createGroup(t, alice, "g", bob)["id"])
		mid := num(t, s.send(t, alice, g, "hello")["id"])
		s.react(t, bob, mid, "👍")
		require.Equal(t, http.StatusOK, s.do("PATCH", "/api/v1/users/"+itoa(alice.id), login, map[string]any{"display_name": "A"}).status)
		require.Equal(t, http.StatusNotFound, s.do("GET", "/api/v1/nothing-here", login, nil).status)
		// A token in the query string of a REST call: refused and not logged.
		require.Equal(t, http.StatusUnauthorized, s.do("GET", "/api/v1/users/me?token="+login, "", nil).status)

		// The socket: a good connection, then bad tokens of every kind.
		c := dial(t, s, login, nil)
		c.expectWelcome(t)
		c.mustConfirm(t, convIdent(g))
		c.mustConfirm(t, presenceIdent)
		c.perform(convIdent(g), map[string]any{"action": "typing"})
		c.perform(presenceIdent, map[string]any{"action": "ping"})
		c.sendRaw(`{"command":"message","identifier":"{\"channel\":\"Nope\"}","data":"{\"token\":\"` + login + `\"}"}`)
		forged := forge(map[string]any{"alg": "HS256", "typ": "JWT"}, map[string]any{
			"sub": itoa(alice.id), "jti": uuid.NewString(), "exp": time.Now().Add(time.Hour).Unix(),
		}, sha256.New, []byte("an-attackers-secret-0123456789abcdef"))
		expired := tokenFor(alice.id, time.Now().Add(-time.Minute))
		garbage := "garbage-token-" + uuid.NewString()
		keep(forged, expired, garbage)
		for _, tok := range []string{forged, expired, garbage} {
			dial(t, s, tok, nil).expectDisconnect(t, unauthorizedFrame)
			require.Equal(t, http.StatusUnauthorized, s.do("GET", "/api/v1/users/me", tok, nil).status)
		}
		conn, resp, err := dialCable(cableDialer(), cableURL(s, login), http.Header{"Origin": {"https://evil.example"}})
		if conn != nil {
			conn.Close()
		}
		require.Error(t, err)
		require.NotNil(t, resp)
		require.Equal(t, http.StatusForbidden, resp.StatusCode)
		resp.Body.Close()

		// Logout, after which the token is refused on both ports.
		require.Equal(t, http.StatusOK, s.do("DELETE", "/auth/logout", login, nil).status)
		require.Equal(t, http.StatusUnauthorized, s.do("GET", "/api/v1/users/me", login, nil).status)
		dial(t, s, login, nil).expectDisconnect(t, unauthorizedFrame)
		// The connection opened with that token is cut off too.
		frames, err := c.untilClosed(t)
		assertClosedByServer(t, err)
		if assert.NotEmpty(t, frames) {
			assert.JSONEq(t, unauthorizedFrame, frames[len(frames)-1])
		}

		// Failed logins and registrations carrying passwords.
		wrong := "wrong-" + uuid.NewString()
		unknownPw := "unknown-" + uuid.NewString()
		longPw := strings.Repeat("L", 80) + uuid.NewString()
		dupPw := "duplicate-" + uuid.NewString()
		shortPw := "s" + uuid.NewString()[:5]
		keep(wrong, unknownPw, longPw, dupPw, shortPw)
		for _, q := range []struct {
			email, pw string
		}{{alice.email, wrong}, {"nobody@example.com", unknownPw}, {alice.email, longPw}, {"nobody@example.com", longPw}} {
			r := s.do("POST", "/auth/login", "", map[string]any{"user": map[string]any{"email": q.email, "password": q.pw}})
			require.Equal(t, http.StatusUnauthorized, r.status, "%s", r.raw)
		}
		r := s.do("POST", "/auth/login", "", `{"user":{"email":"`+alice.email+`","password":"`+wrong+`"`) // malformed JSON
		require.Equal(t, http.StatusBadRequest, r.status)
		r = s.do("POST", "/auth/register", "", map[string]any{"user": map[string]any{"email": alice.email, "password": dupPw, "username": "alice2"}})
		require.Equal(t, http.StatusUnprocessableEntity, r.status, "%s", r.raw)
		r = s.do("POST", "/auth/register", "", map[string]any{"user": map[string]any{"email": "new@example.com", "password": shortPw, "username": "newbie"}})
		require.Equal(t, http.StatusUnprocessableEntity, r.status, "%s", r.raw)

		logs := s.logs.String()
		// The scenario was logged: the requests, the socket's story.
		for _, want := range []string{`"path":"/auth/login"`, `"path":"/cable"`, `"path":"/api/v1/users/me"`, `"path":"/auth/logout"`, `"status":401`, `"user_id":` + itoa(alice.id)} {
			assert.Contains(t, logs, want, "the scenario reached the logs")
		}

		secrets = append(secrets, string(testSecret), base64.StdEncoding.EncodeToString(testSecret), base64.RawURLEncoding.EncodeToString(testSecret))
		for _, secret := range secrets {
			assert.NotContains(t, logs, secret)
			if parts := strings.Split(secret, "."); len(parts) == 3 && parts[2] != "" {
				// A JWT's signature alone lets nobody in, but its presence
				// means the token was logged, perhaps cut short.
				assert.NotContains(t, logs, parts[2], "a token's signature")
			}
		}
		assert.NotContains(t, logs, "token=", "no query string with a token")
		assert.NotContains(t, strings.ToLower(logs), "bearer ", "no Authorization header")
		assert.NotContains(t, strings.ToLower(logs), "password\":\"", "no password field")
		if t.Failed() {
			t.Logf("logs:\n%s", logs)
		}
	})
}

package main_test

import (
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// attackSecret is a key that is not the server's.
var attackSecret = []byte("an-attackers-own-secret-0123456789abcdef")

// jwtAttack is a token an attacker could present and why it must fail.
type jwtAttack struct{ name, token string }

// jwtAttacks forges, for the user a, every kind of bad token; revoked is a
// token that was logged out, other a real user's id for tampering.
func jwtAttacks(a account, revoked string, other int64) []jwtAttack {
	now := time.Now().Unix()
	claims := func(edit func(c map[string]any)) map[string]any {
		c := map[string]any{"sub": itoa(a.id), "jti": uuid.NewString(), "iat": now, "exp": now + 3600, "scp": "user"}
		if edit != nil {
			edit(c)
		}
		return c
	}
	hs256 := map[string]any{"alg": "HS256", "typ": "JWT"}
	ours := func(edit func(c map[string]any)) string { return forge(hs256, claims(edit), sha256.New, testSecret) }
	unsigned := func(alg string) string { return forge(map[string]any{"alg": alg, "typ": "JWT"}, claims(nil), nil, nil) }
	b64 := func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
	parts := strings.Split(a.token, ".")
	return []jwtAttack{
		{"alg none", unsigned("none")},
		{"alg None", unsigned("None")},
		{"alg NONE", unsigned("NONE")},
		{"alg none with our signature kept", strings.TrimSuffix(unsigned("none"), ".") + "." + parts[2]},
		{"alg empty", unsigned("")},
		{"HS384 with our secret", forge(map[string]any{"alg": "HS384", "typ": "JWT"}, claims(nil), sha512.New384, testSecret)},
		{"HS512 with our secret", forge(map[string]any{"alg": "HS512", "typ": "JWT"}, claims(nil), sha512.New, testSecret)},
		{"HS256 header, HS512 signature", forge(hs256, claims(nil), sha512.New, testSecret)},
		{"RS256 header, HMAC with our secret", forge(map[string]any{"alg": "RS256", "typ": "JWT"}, claims(nil), sha256.New, testSecret)},
		{"ES256 header, HMAC with our secret", forge(map[string]any{"alg": "ES256", "typ": "JWT"}, claims(nil), sha256.New, testSecret)},
		{"hs256 in lower case", forge(map[string]any{"alg": "hs256", "typ": "JWT"}, claims(nil), sha256.New, testSecret)},
		{"wrong key", forge(hs256, claims(nil), sha256.New, attackSecret)},
		{"wrong key named by jku", forge(map[string]any{"alg": "HS256", "jku": "https://evil.example/jwks.json", "kid": "evil"}, claims(nil), sha256.New, attackSecret)},
		{"wrong key embedded as jwk", forge(map[string]any{"alg": "HS256", "jwk": map[string]any{"kty": "oct", "k": base64.RawURLEncoding.EncodeToString(attackSecret)}}, claims(nil), sha256.New, attackSecret)},
		{"empty key", forge(hs256, claims(nil), sha256.New, []byte{})},
		{"expired", ours(func(c map[string]any) { c["exp"] = now - 5 })},
		{"expired long ago", ours(func(c map[string]any) { c["exp"] = 1 })},
		{"exp zero", ours(func(c map[string]any) { c["exp"] = 0 })},
		{"exp missing", ours(func(c map[string]any) { delete(c, "exp") })},
		{"exp a word", ours(func(c map[string]any) { c["exp"] = "tomorrow" })},
		{"exp a string of a past time", ours(func(c map[string]any) { c["exp"] = itoa(now - 5) })},
		{"not valid before an hour from now", ours(func(c map[string]any) { c["nbf"] = now + 3600 })},
		{"sub missing", ours(func(c map[string]any) { delete(c, "sub") })},
		{"sub empty", ours(func(c map[string]any) { c["sub"] = "" })},
		{"sub zero", ours(func(c map[string]any) { c["sub"] = "0" })},
		{"sub a name", ours(func(c map[string]any) { c["sub"] = "alice" })},
		{"sub of an unknown user", ours(func(c map[string]any) { c["sub"] = itoa(missingID) })},
		{"sub past 2^63", ours(func(c map[string]any) { c["sub"] = "9223372036854775808" })},
		{"jti missing", ours(func(c map[string]any) { delete(c, "jti") })},
		{"jti empty", ours(func(c map[string]any) { c["jti"] = "" })},
		{"payload tampered: another sub", parts[0] + "." + b64(`{"sub":"`+itoa(other)+`","jti":"`+uuid.NewString()+`","exp":`+itoa(now+3600)+`}`) + "." + parts[2]},
		{"payload tampered: later exp", parts[0] + "." + b64(`{"sub":"`+itoa(a.id)+`","jti":"`+uuid.NewString()+`","exp":9999999999}`) + "." + parts[2]},
		{"signature tampered", parts[0] + "." + parts[1] + "." + flip(parts[2])},
		{"signature stripped", parts[0] + "." + parts[1] + "."},
		{"signature padded", a.token + "="},
		{"header and payload only", parts[0] + "." + parts[1]},
		{"four parts", a.token + "." + parts[2]},
		{"logged out (denylisted jti)", revoked},
		{"garbage", "garbage"},
		{"dots only", ".."},
		{"base64 garbage", b64("{") + "." + b64("{") + "." + b64("x")},
		{"oversized", ours(func(c map[string]any) { c["pad"] = strings.Repeat("x", 16<<10) })},
		{"whitespace inside", parts[0] + ". " + parts[1] + "." + parts[2]},
	}
}

// The JWT attack table, at the component level: every bad token is refused
// by REST (401, nothing done) and by /cable (upgrade, then unauthorized
// with reconnect false, no welcome). TestJWTAttacks and TestWSUnauthorized
// hold the first versions; this one runs one table through both ports.
func TestSecurityJWTAttackTable(t *testing.T) {
	eachMode(t, func(t *testing.T, m mode) {
		s := start(t, secConfig(t, m))
		alice := s.register("alice")
		bob := s.register("bob")
		revoked := s.register("carol")
		require.Equal(t, http.StatusOK, s.do("DELETE", "/auth/logout", revoked.token, nil).status)
		g := num(t, s.createGroup(t, alice, "g", bob)["id"])

		// The controls: a hand-forged token with every claim right is let in
		// on both ports, so each refusal below is for the defect it names.
		control := tokenFor(alice.id, time.Now().Add(time.Hour))
		require.Equal(t, http.StatusOK, s.do("GET", "/api/v1/users/me", control, nil).status)
		c := dial(t, s, control, nil)
		c.expectWelcome(t)
		c.close()

		for _, at := range jwtAttacks(alice, revoked.token, bob.id) {
			t.Run(at.name, func(t *testing.T) {
				for _, q := range []struct{ method, path string }{
					{"GET", "/api/v1/users/me"},
					{"GET", messagesPath(g)},
					{"POST", messagesPath(g)},
					{"DELETE", "/auth/logout"},
				} {
					r := s.do(q.method, q.path, at.token, map[string]any{"content": "forged"})
					assert.Equal(t, http.StatusUnauthorized, r.status, "%s %s: %s", q.method, q.path, r.raw)
					assert.NotEmpty(t, r.json(t)["error"])
					assert.Empty(t, r.header.Get("Authorization"), "no token is handed out")
				}
				// The upgrade completes: a 401 would make the client retry forever.
				c := dial(t, s, at.token, nil)
				assert.Equal(t, http.StatusSwitchingProtocols, c.resp.StatusCode)
				c.expectDisconnect(t, unauthorizedFrame)
			})
		}

		t.Run("nothing was done", func(t *testing.T) {
			assert.Empty(t, s.allHistory(t, bob, g, 100), "no forged message stored")
			assert.Equal(t, http.StatusOK, s.do("GET", "/api/v1/users/me", alice.token, nil).status, "no attack logged alice out")
		})

		t.Run("REST takes the token from the header only", func(t *testing.T) {
			for _, path := range []string{"/api/v1/users/me?token=" + alice.token, "/api/v1/users/me?access_token=" + alice.token, "/api/v1/users/me?jwt=" + alice.token} {
				r := s.do("GET", path, "", nil)
				assert.Equal(t, http.StatusUnauthorized, r.status, "%s: %s", path, r.raw)
			}
			r := s.do("GET", "/api/v1/users/me", "", nil, "Cookie", "token="+alice.token+"; jwt="+alice.token)
			assert.Equal(t, http.StatusUnauthorized, r.status, "nor from cookies: %s", r.raw)
			r = s.do("GET", "/api/v1/users/me", "", nil, "Authorization", "Token "+alice.token)
			assert.Equal(t, http.StatusUnauthorized, r.status, "only the Bearer scheme: %s", r.raw)
			r = s.do("GET", "/api/v1/users/me", "", nil, "Authorization", alice.token)
			assert.Equal(t, http.StatusUnauthorized, r.status, "a bare token is no Bearer: %s", r.raw)
		})

		t.Run("a token of a user deleted since", func(t *testing.T) {
			if m.name != "real" {
				t.Skip("users can only be deleted in the database")
			}
			ghost := s.register("ghost")
			conn, err := pgx.Connect(context.Background(), s.cfg.DatabaseURL)
			require.NoError(t, err)
			defer conn.Close(context.Background())
			_, err = conn.Exec(context.Background(), "DELETE FROM users WHERE id = $1", ghost.id)
			require.NoError(t, err)
			assert.Equal(t, http.StatusUnauthorized, s.do("GET", "/api/v1/users/me", ghost.token, nil).status)
			dial(t, s, ghost.token, nil).expectDisconnect(t, unauthorizedFrame)
		})
	})
}

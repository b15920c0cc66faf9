package main_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"hash"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// forge builds a JWT by hand, so that tests can make the tokens an attacker would.
func forge(header, claims map[string]any, h func() hash.Hash, secret []byte) string {
	enc := func(v any) string {
		b, _ := json.Marshal(v)
		return base64.RawURLEncoding.EncodeToString(b)
	}
	signing := enc(header) + "." + enc(claims)
	if h == nil {
		return signing + "."
	}
	mac := hmac.New(h, secret)
	mac.Write([]byte(signing))
	return signing + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

func TestJWTAttacks(t *testing.T) {
	eachMode(t, func(t *testing.T, m mode) {
		s := start(t, m.config(t))
		a := s.register("alice")
		revoked := s.register("bob")
		require.Equal(t, http.StatusOK, s.do("DELETE", "/auth/logout", revoked.token, nil).status)

		now := time.Now().Unix()
		sub := strconv.FormatInt(a.id, 10)
		valid := func() map[string]any {
			return map[string]any{"sub": sub, "jti": "9b2f6c1e-0000-4000-8000-000000000001", "iat": now, "exp": now + 3600}
		}
		without := func(k string) map[string]any { c := valid(); delete(c, k); return c }
		with := func(k string, v any) map[string]any { c := valid(); c[k] = v; return c }
		hs256 := map[string]any{"alg": "HS256", "typ": "JWT"}

		// The control: a hand-forged token with our secret and every claim is accepted,
		// so each rejection below is for the defect it names.
		control := forge(hs256, valid(), sha256.New, testSecret)
		require.Equal(t, http.StatusOK, s.do("GET", "/api/v1/users/me", control, nil).status)

		parts := strings.Split(a.token, ".")
		require.Len(t, parts, 3)
		cases := []struct{ name, token string }{
			{"no token", ""},
			{"garbage", "not-a-jwt"},
			{"two dots only", ".."},
			{"alg none", forge(map[string]any{"alg": "none", "typ": "JWT"}, valid(), nil, nil)},
			{"alg None", forge(map[string]any{"alg": "None"}, valid(), nil, nil)},
			{"HS512 with our secret", forge(map[string]any{"alg": "HS512"}, valid(), sha512.New, testSecret)},
			{"HS384 with our secret", forge(map[string]any{"alg": "HS384"}, valid(), sha512.New384, testSecret)},
			{"HS256 header, HS512 signature", forge(hs256, valid(), sha512.New, testSecret)},
			{"RS256 header, HMAC signature", forge(map[string]any{"alg": "RS256"}, valid(), sha256.New, testSecret)},
			{"another secret", forge(hs256, valid(), sha256.New, []byte("some-other-secret-0123456789abcdefgh"))},
			{"tampered payload", parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(`{"sub":"`+strconv.FormatInt(revoked.id, 10)+`","jti":"x","exp":9999999999}`)) + "." + parts[2]},
			{"tampered signature", parts[0] + "." + parts[1] + "." + flip(parts[2])},
			{"signature stripped", parts[0] + "." + parts[1] + "."},
			{"expired", forge(hs256, with("exp", now-10), sha256.New, testSecret)},
			{"exp missing", forge(hs256, without("exp"), sha256.New, testSecret)},
			{"exp a string", forge(hs256, with("exp", "tomorrow"), sha256.New, testSecret)},
			{"jti missing", forge(hs256, without("jti"), sha256.New, testSecret)},
			{"jti empty", forge(hs256, with("jti", ""), sha256.New, testSecret)},
			{"sub missing", forge(hs256, without("sub"), sha256.New, testSecret)},
			{"sub not a number", forge(hs256, with("sub", "alice"), sha256.New, testSecret)},
			{"sub unknown user", forge(hs256, with("sub", "987654321"), sha256.New, testSecret)},
			{"sub negative", forge(hs256, with("sub", "-1"), sha256.New, testSecret)},
			{"denylisted", revoked.token},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				for _, path := range []string{"/api/v1/users/me", "/api/v1/users?search=a"} {
					r := s.do("GET", path, tc.token, nil)
					assert.Equal(t, http.StatusUnauthorized, r.status, "%s: %s", path, r.raw)
					assert.NotEmpty(t, r.json(t)["error"])
				}
			})
		}
		t.Run("scheme other than Bearer", func(t *testing.T) {
			r := s.do("GET", "/api/v1/users/me", "", nil, "Authorization", "Basic "+a.token)
			assert.Equal(t, http.StatusUnauthorized, r.status)
		})
		t.Run("bearer in any case", func(t *testing.T) {
			r := s.do("GET", "/api/v1/users/me", "", nil, "Authorization", "bearer "+a.token)
			assert.Equal(t, http.StatusOK, r.status)
		})
		if m.name == "real" {
			t.Run("deleted user", func(t *testing.T) {
				conn, err := pgx.Connect(context.Background(), s.cfg.DatabaseURL)
				require.NoError(t, err)
				defer conn.Close(context.Background())
				_, err = conn.Exec(context.Background(), "DELETE FROM users WHERE id = $1", a.id)
				require.NoError(t, err)
				// Deleted outside the server, so its user cache may answer
				// for up to USER_CACHE_TTL (1 s) more.
				deleted := time.Now()
				require.Eventually(t, func() bool {
					return s.do("GET", "/api/v1/users/me", a.token, nil).status == http.StatusUnauthorized
				}, 3*time.Second, 20*time.Millisecond)
				assert.Less(t, time.Since(deleted), 2*time.Second)
			})
		}
	})
}

// flip changes the first character of a base64url string.
func flip(s string) string {
	if s[0] == 'A' {
		return "B" + s[1:]
	}
	return "A" + s[1:]
}

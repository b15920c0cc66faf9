package main_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	main "github.com/chatterly/chatterly/cmd/chatterly"
)

// The acceptance flow: register, login, me, logout, token refused.
func TestAuthFlow(t *testing.T) {
	eachMode(t, func(t *testing.T, m mode) {
		s := start(t, m.config(t))

		r := s.do("POST", "/auth/register", "", map[string]any{"user": map[string]any{
			"email": "Alice@Example.com", "password": "correct horse", "username": "Alice", "display_name": "Alice A.",
		}}, "Origin", "http://localhost:3000")
		require.Equal(t, http.StatusCreated, r.status, "%s", r.raw)
		regToken := tokenOf(t, r)
		body := r.json(t)
		assert.Equal(t, "Registered successfully", body["message"])
		user := body["user"].(map[string]any)
		assert.ElementsMatch(t, []string{"id", "username", "display_name", "avatar_url", "online", "email", "last_seen_at"}, keys(user))
		assert.Equal(t, "alice", user["username"])
		assert.Equal(t, "alice@example.com", user["email"])
		assert.Equal(t, "Alice A.", user["display_name"])
		assert.Nil(t, user["avatar_url"])
		assert.Equal(t, false, user["online"])
		assert.Contains(t, strings.Split(r.header.Get("Access-Control-Expose-Headers"), ","), "Authorization")
		assert.Equal(t, "application/json", strings.Split(r.header.Get("Content-Type"), ";")[0])

		r = s.do("POST", "/auth/login", "", map[string]any{"user": map[string]any{"email": "alice@example.com", "password": "correct horse"}})
		require.Equal(t, http.StatusOK, r.status, "%s", r.raw)
		token := tokenOf(t, r)
		assert.NotEqual(t, regToken, token)
		assert.Equal(t, user["id"], r.json(t)["user"].(map[string]any)["id"])

		r = s.do("GET", "/api/v1/users/me", token, nil)
		require.Equal(t, http.StatusOK, r.status, "%s", r.raw)
		me := r.json(t)
		assert.Equal(t, "alice@example.com", me["email"])
		assert.Equal(t, user["id"], me["id"])

		r = s.do("DELETE", "/auth/logout", token, nil)
		require.Equal(t, http.StatusOK, r.status, "%s", r.raw)
		assert.Equal(t, "Logged out successfully", r.json(t)["message"])

		r = s.do("GET", "/api/v1/users/me", token, nil)
		assert.Equal(t, http.StatusUnauthorized, r.status)
		assert.NotEmpty(t, r.json(t)["error"])
		assert.Equal(t, http.StatusUnauthorized, s.do("DELETE", "/auth/logout", token, nil).status)
		assert.Equal(t, http.StatusOK, s.do("GET", "/api/v1/users/me", regToken, nil).status, "other tokens stay valid")

		r = s.do("POST", "/auth/login", "", `{"email":"alice@example.com","password":"correct horse"}`)
		assert.Equal(t, http.StatusOK, r.status, "top-level bodies are accepted too: %s", r.raw)

		assert.NotContains(t, s.logs.String(), token, "tokens never reach the logs")
		assert.NotContains(t, s.logs.String(), "correct horse")
	})
}

func keys(m map[string]any) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

func TestLoginFailuresLookAlike(t *testing.T) {
	eachMode(t, func(t *testing.T, m mode) {
		s := start(t, m.config(t))
		s.register("alice")
		wrong := s.do("POST", "/auth/login", "", map[string]any{"user": map[string]any{"email": "alice@example.com", "password": "not-her-password"}})
		unknown := s.do("POST", "/auth/login", "", map[string]any{"user": map[string]any{"email": "nobody@example.com", "password": "not-her-password"}})
		assert.Equal(t, http.StatusUnauthorized, wrong.status)
		assert.Equal(t, wrong.status, unknown.status)
		assert.JSONEq(t, string(wrong.raw), string(unknown.raw))
		assert.JSONEq(t, `{"error":"Invalid Email or password."}`, string(wrong.raw))
		assert.Empty(t, wrong.header.Get("Authorization"))
	})
}

func TestLockoutOverHTTP(t *testing.T) {
	eachMode(t, func(t *testing.T, m mode) {
		s := start(t, m.config(t))
		a := s.register("alice")
		login := func(pw string) response {
			return s.do("POST", "/auth/login", "", map[string]any{"user": map[string]any{"email": a.email, "password": pw}})
		}
		for range 10 {
			require.Equal(t, http.StatusUnauthorized, login("wrong-password").status)
		}
		r := login(a.password)
		assert.Equal(t, http.StatusUnauthorized, r.status)
		assert.JSONEq(t, `{"error":"Your account is locked."}`, string(r.raw))
		assert.Equal(t, http.StatusOK, s.do("GET", "/api/v1/users/me", a.token, nil).status, "existing sessions are not ended by a lock")
	})
}

// An account and its token survive a restart of the durable stack.
func TestRestartKeepsAccounts(t *testing.T) {
	cfg := modes[1].config(t)
	s := start(t, cfg)
	a := s.register("alice")
	s.stop()

	s2 := start(t, cfg)
	r := s2.do("GET", "/api/v1/users/me", a.token, nil)
	require.Equal(t, http.StatusOK, r.status, "%s", r.raw)
	assert.Equal(t, a.email, r.json(t)["email"])
	r = s2.do("POST", "/auth/login", "", map[string]any{"user": map[string]any{"email": a.email, "password": a.password}})
	assert.Equal(t, http.StatusOK, r.status)
	assert.Equal(t, http.StatusUnprocessableEntity, s2.do("POST", "/auth/register", "", map[string]any{"user": map[string]any{
		"email": a.email, "password": "password123", "username": "alice2"}}).status)
}

// Instances starting together on a fresh database migrate it once, without errors.
func TestConcurrentStartsMigrateOnce(t *testing.T) {
	cfg := modes[1].config(t)
	errs := make(chan error, 3)
	for range 3 {
		go func() {
			app, err := main.Build(context.Background(), cfg, discardLogger())
			if err == nil {
				app.Close()
			}
			errs <- err
		}()
	}
	for range 3 {
		require.NoError(t, <-errs)
	}
}

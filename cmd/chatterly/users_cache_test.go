package main_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A client's repeated requests find its user in memory (users.Cache), and a
// profile change shows at once on the instance that made it.
func TestUserCache(t *testing.T) {
	eachMode(t, func(t *testing.T, m mode) {
		s := start(t, m.config(t))
		u := s.freshUsers()
		g := num(t, s.createGroup(t, u.alice, "g", u.bob)["id"])
		hits, misses := s.metric(t, "chatterly_user_cache_hits_total"), s.metric(t, "chatterly_user_cache_misses_total")
		for range 5 {
			s.send(t, u.alice, g, "hello")
		}
		assert.GreaterOrEqual(t, s.metric(t, "chatterly_user_cache_hits_total")-hits, 4.0, "sends after the first find alice in memory")
		assert.LessOrEqual(t, s.metric(t, "chatterly_user_cache_misses_total")-misses, 1.0)

		r := s.do("PATCH", "/api/v1/users/"+itoa(u.alice.id), u.alice.token, map[string]any{"user": map[string]any{"display_name": "Alice A."}})
		require.Equal(t, http.StatusOK, r.status, "%s", r.raw)
		msg := s.send(t, u.alice, g, "renamed")
		assert.Equal(t, "Alice A.", msg["user"].(map[string]any)["display_name"], "the next send renders the new name")
		me := s.do("GET", "/api/v1/users/me", u.alice.token, nil).json(t)
		assert.Equal(t, "Alice A.", me["display_name"])
	})
}

// Another instance shows a profile change within its cache's TTL.
func TestUserCacheAcrossInstances(t *testing.T) {
	a, b := startPair(t)
	u := a.freshUsers()
	for range 2 {
		require.Equal(t, http.StatusOK, b.do("GET", "/api/v1/users/me", u.alice.token, nil).status) // cached on B
	}
	changed := time.Now()
	r := a.do("PATCH", "/api/v1/users/"+itoa(u.alice.id), u.alice.token, map[string]any{"user": map[string]any{"display_name": "Alice A."}})
	require.Equal(t, http.StatusOK, r.status, "%s", r.raw)
	require.Eventually(t, func() bool {
		return b.do("GET", "/api/v1/users/me", u.alice.token, nil).json(t)["display_name"] == "Alice A."
	}, 3*time.Second, 20*time.Millisecond)
	assert.Less(t, time.Since(changed), 2*time.Second, "within USER_CACHE_TTL (1 s) and a poll")
}

package main_test

import (
	"maps"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// longAgo is the timestamp attackers try to plant.
const longAgo = "2000-01-01T00:00:00.000Z"

// hostileFields are the attributes no client may set, with values that
// would each be noticed if they stuck: another user as owner, author or
// initiator, an admin role, planted times, a foreign conversation, a
// finished call, a locked or unlocked account, another email.
func hostileFields(u chatUsers, foreignConv int64) map[string]any {
	return map[string]any{
		"id": missingID, "user_id": u.bob.id, "created_by_id": u.bob.id, "initiator_id": u.bob.id,
		"role": "admin", "admin": true, "created_at": longAgo, "updated_at": longAgo,
		"email": "evil@example.com", "edited_at": longAgo, "deleted_at": longAgo,
		"conversation_id": foreignConv, "status": "ended", "started_at": longAgo, "ended_at": longAgo,
		"locked_at": longAgo, "failed_attempts": 99, "password_hash": "$2a$04$notahash", "encrypted_password": "x",
		"last_seen_at": longAgo, "online": true, "member_count": 99, "participants": []int64{u.bob.id},
		"message_created_at": longAgo,
	}
}

// with returns legit with the hostile fields added, in the top-level form,
// or wrapped under resource beside the hostile fields at the top level too.
func massBody(resource string, wrapped bool, legit, hostile map[string]any) map[string]any {
	inner := maps.Clone(hostile)
	maps.Copy(inner, legit)
	if !wrapped {
		return inner
	}
	outer := maps.Clone(hostile)
	outer[resource] = inner
	return outer
}

// recent checks that a stored timestamp is the server's, not a planted one.
func recent(t *testing.T, v any, what string) {
	t.Helper()
	ts := parseTS(t, v)
	assert.WithinDuration(t, time.Now(), ts, 5*time.Minute, "%s is the server's time, not a planted one", what)
}

// Fields in bodies that the contract does not list change nothing: each
// request is sent top-level and wrapped, and the stored state is read back
// afterwards as its owner.
func TestSecurityMassAssignment(t *testing.T) {
	type env struct {
		s *stack
		u chatUsers
		// g is alice's group with bob; h is carol's group with dave, the
		// foreign conversation the bodies point at.
		g, h int64
	}
	cases := []struct {
		name     string
		resource string
		run      func(t *testing.T, e env, body func(legit map[string]any) map[string]any)
	}{
		{"register", "user", func(t *testing.T, e env, body func(map[string]any) map[string]any) {
			n := "mass" + itoa(userSeq.Add(1))
			r := e.s.do("POST", "/auth/register", "", body(map[string]any{
				"email": n + "@example.com", "password": "password-" + n, "username": n, "display_name": "Mass",
			}))
			require.Equal(t, http.StatusCreated, r.status, "%s", r.raw)
			me := e.s.do("GET", "/api/v1/users/me", tokenOf(t, r), nil).json(t)
			assert.NotEqual(t, missingID, num(t, me["id"]))
			assert.Equal(t, n+"@example.com", me["email"])
			assert.Nil(t, me["last_seen_at"])
			assert.Nil(t, me["avatar_url"])
			// Neither the hash nor the lock was planted: the password works.
			r = e.s.do("POST", "/auth/login", "", map[string]any{"user": map[string]any{"email": n + "@example.com", "password": "password-" + n}})
			assert.Equal(t, http.StatusOK, r.status, "%s", r.raw)
			// And failed_attempts was not planted near the lock: nine
			// failures leave the account open.
			for range 9 {
				e.s.do("POST", "/auth/login", "", map[string]any{"user": map[string]any{"email": n + "@example.com", "password": "wrong-password"}})
			}
			r = e.s.do("POST", "/auth/login", "", map[string]any{"user": map[string]any{"email": n + "@example.com", "password": "password-" + n}})
			assert.Equal(t, http.StatusOK, r.status, "%s", r.raw)
		}},
		{"update own profile", "user", func(t *testing.T, e env, body func(map[string]any) map[string]any) {
			a := e.u.alice
			legit := map[string]any{"display_name": "Renamed"}
			b := body(legit)
			b["username"], b["password"], b["password_confirmation"] = "root", "hijacked-password", "hijacked-password"
			if inner, ok := b["user"].(map[string]any); ok {
				inner["username"], inner["password"] = "root", "hijacked-password"
			}
			r := e.s.do("PATCH", "/api/v1/users/"+itoa(a.id), a.token, b)
			require.Equal(t, http.StatusOK, r.status, "%s", r.raw)
			me := e.s.do("GET", "/api/v1/users/me", a.token, nil).json(t)
			assert.Equal(t, "Renamed", me["display_name"])
			assert.Equal(t, a.id, num(t, me["id"]))
			assert.Equal(t, a.email, me["email"])
			assert.Equal(t, strings.TrimSuffix(a.email, "@example.com"), me["username"])
			assert.Nil(t, me["last_seen_at"])
			assert.Equal(t, http.StatusOK, e.s.do("POST", "/auth/login", "", map[string]any{"user": map[string]any{"email": a.email, "password": a.password}}).status, "the password is unchanged")
			assert.Equal(t, http.StatusUnauthorized, e.s.do("POST", "/auth/login", "", map[string]any{"user": map[string]any{"email": a.email, "password": "hijacked-password"}}).status)
			assert.Equal(t, e.u.bob.email, e.s.do("GET", "/api/v1/users/me", e.u.bob.token, nil).json(t)["email"], "user_id named bob: bob is untouched")
			assert.NotEqual(t, "Renamed", e.s.displayName(t, e.u.bob))
		}},
		{"create a conversation", "conversation", func(t *testing.T, e env, body func(map[string]any) map[string]any) {
			r := e.s.do("POST", conversationsPath, e.u.alice.token, body(map[string]any{
				"conversation_type": "group", "name": "mass", "member_ids": []int64{e.u.bob.id},
			}))
			require.Equal(t, http.StatusCreated, r.status, "%s", r.raw)
			cid := num(t, dataOf(t, r)["id"])
			assert.NotEqual(t, missingID, cid)
			c := dataOf(t, e.s.do("GET", convPath(cid), e.u.bob.token, nil))
			assert.Equal(t, e.u.alice.id, num(t, c["created_by_id"]))
			recent(t, c["created_at"], "created_at")
			assert.ElementsMatch(t, []int64{e.u.alice.id, e.u.bob.id}, memberIDs(t, c))
			assert.Equal(t, int64(2), num(t, c["member_count"]))
			// role went nowhere: bob is not an admin, alice is.
			assert.Equal(t, http.StatusForbidden, e.s.do("POST", membershipsPath(cid), e.u.bob.token, map[string]any{"user_id": e.u.carol.id}).status)
			assert.Equal(t, http.StatusCreated, e.s.do("POST", membershipsPath(cid), e.u.alice.token, map[string]any{"user_id": e.u.carol.id}).status)
			assert.Equal(t, http.StatusForbidden, e.s.do("GET", convPath(e.h), e.u.alice.token, nil).status, "conversation_id joined nothing")
		}},
		{"add a member", "membership", func(t *testing.T, e env, body func(map[string]any) map[string]any) {
			b := body(map[string]any{"user_id": e.u.carol.id})
			r := e.s.do("POST", membershipsPath(e.g), e.u.alice.token, b)
			require.Equal(t, http.StatusCreated, r.status, "%s", r.raw)
			c := dataOf(t, e.s.do("GET", convPath(e.g), e.u.alice.token, nil))
			assert.ElementsMatch(t, []int64{e.u.alice.id, e.u.bob.id, e.u.carol.id}, memberIDs(t, c))
			assert.Equal(t, http.StatusForbidden, e.s.do("POST", membershipsPath(e.g), e.u.carol.token, map[string]any{"user_id": e.u.eve.id}).status, "carol is not an admin")
			h := dataOf(t, e.s.do("GET", convPath(e.h), e.u.carol.token, nil))
			assert.ElementsMatch(t, []int64{e.u.carol.id, e.u.dave.id}, memberIDs(t, h), "conversation_id added no one to h")
		}},
		{"send a message", "message", func(t *testing.T, e env, body func(map[string]any) map[string]any) {
			b := body(map[string]any{"content": "planted?"})
			r := e.s.do("POST", messagesPath(e.g), e.u.alice.token, b)
			require.Equal(t, http.StatusCreated, r.status, "%s", r.raw)
			mid := num(t, dataOf(t, r)["id"])
			assert.NotEqual(t, missingID, mid)
			m := findMessage(t, e.s.allHistory(t, e.u.bob, e.g, 100), mid)
			require.NotNil(t, m, "stored in g and not deleted")
			assert.Equal(t, e.u.alice.id, num(t, obj(t, m["user"])["id"]), "the author is the caller")
			assert.Nil(t, m["edited_at"])
			assert.Equal(t, "text", m["message_type"])
			assert.Nil(t, m["call_session"])
			recent(t, m["created_at"], "created_at")
			assert.Empty(t, e.s.allHistory(t, e.u.carol, e.h, 100), "nothing reached h")
		}},
		{"send a call message", "message", func(t *testing.T, e env, body func(map[string]any) map[string]any) {
			r := e.s.do("POST", messagesPath(e.g), e.u.alice.token, body(map[string]any{
				"content": "fake call", "message_type": "call", "call_session_id": 1, "call_session": map[string]any{"id": 1, "status": "ended"},
			}))
			assert.Equal(t, http.StatusUnprocessableEntity, r.status, "%s", r.raw)
			assert.Empty(t, e.s.allHistory(t, e.u.bob, e.g, 100), "nothing stored")
		}},
		{"edit a message", "message", func(t *testing.T, e env, body func(map[string]any) map[string]any) {
			orig := e.s.send(t, e.u.alice, e.g, "original")
			mid := num(t, orig["id"])
			b := body(map[string]any{"content": "edited"})
			b["message_type"] = "call"
			if inner, ok := b["message"].(map[string]any); ok {
				inner["message_type"] = "call"
			}
			r := e.s.do("PATCH", messagePath(e.g, mid), e.u.alice.token, b)
			require.Equal(t, http.StatusOK, r.status, "%s", r.raw)
			m := findMessage(t, e.s.allHistory(t, e.u.bob, e.g, 100), mid)
			require.NotNil(t, m, "still in g, not deleted")
			assert.Equal(t, "edited", m["content"])
			assert.Equal(t, e.u.alice.id, num(t, obj(t, m["user"])["id"]))
			assert.Equal(t, orig["created_at"], m["created_at"], "created_at unchanged")
			recent(t, m["edited_at"], "edited_at")
			assert.Equal(t, "text", m["message_type"])
			assert.Nil(t, m["call_session"])
			assert.Empty(t, e.s.allHistory(t, e.u.carol, e.h, 100), "nothing moved to h")
		}},
		{"react", "reaction", func(t *testing.T, e env, body func(map[string]any) map[string]any) {
			mid := num(t, e.s.send(t, e.u.bob, e.g, "react to me")["id"])
			r := e.s.do("POST", "/api/v1/reactions", e.u.alice.token, body(map[string]any{"message_id": mid, "emoji": "👍"}))
			require.Equal(t, http.StatusCreated, r.status, "%s", r.raw)
			m := findMessage(t, e.s.allHistory(t, e.u.bob, e.g, 100), mid)
			require.NotNil(t, m)
			rs := objs(t, m["reactions"])
			require.Len(t, rs, 1)
			assert.Equal(t, e.u.alice.id, num(t, rs[0]["user_id"]), "the reaction is the caller's")
			assert.Equal(t, mid, num(t, rs[0]["message_id"]))
			assert.NotEqual(t, missingID, num(t, rs[0]["id"]))
			// bob cannot remove it as if it were his; alice can.
			assert.Equal(t, http.StatusForbidden, e.s.do("DELETE", reactionPath(num(t, rs[0]["id"])), e.u.bob.token, nil).status)
		}},
		{"start a call", "call", func(t *testing.T, e env, body func(map[string]any) map[string]any) {
			r := e.s.do("POST", callsPath(e.g), e.u.alice.token, body(map[string]any{"call_type": "audio"}))
			require.Equal(t, http.StatusCreated, r.status, "%s", r.raw)
			c := e.s.activeCall(t, e.u.bob, e.g)
			assert.NotEqual(t, missingID, num(t, c["id"]))
			assert.Equal(t, e.u.alice.id, num(t, c["initiator_id"]))
			assert.Contains(t, []any{"calling", "ringing"}, c["status"])
			assert.Nil(t, c["started_at"])
			recent(t, c["created_at"], "created_at")
			assert.Equal(t, []int64{e.u.alice.id}, participantIDs(t, c))
			e.s.noActiveCall(t, e.u.carol, e.h)
		}},
		{"accept a call", "call", func(t *testing.T, e env, body func(map[string]any) map[string]any) {
			callID := num(t, e.s.startCall(t, e.u.alice, e.g, "video")["id"])
			r := e.s.do("PUT", acceptPath(e.g, callID), e.u.bob.token, body(map[string]any{}))
			require.Equal(t, http.StatusOK, r.status, "%s", r.raw)
			c := e.s.activeCall(t, e.u.alice, e.g)
			assert.Equal(t, callID, num(t, c["id"]))
			assert.Equal(t, "active", c["status"])
			assert.Equal(t, e.u.alice.id, num(t, c["initiator_id"]))
			assert.Equal(t, "video", c["call_type"])
			recent(t, c["started_at"], "started_at")
			assert.ElementsMatch(t, []int64{e.u.alice.id, e.u.bob.id}, participantIDs(t, c))
		}},
	}
	eachMode(t, func(t *testing.T, m mode) {
		s := start(t, secConfig(t, m))
		for _, tc := range cases {
			for _, wrapped := range []bool{false, true} {
				form := "top-level"
				if wrapped {
					form = "wrapped"
				}
				t.Run(tc.name+"/"+form, func(t *testing.T) {
					u := s.freshUsers()
					e := env{s: s, u: u,
						g: num(t, s.createGroup(t, u.alice, "g", u.bob)["id"]),
						h: num(t, s.createGroup(t, u.carol, "h", u.dave)["id"]),
					}
					hostile := hostileFields(u, e.h)
					tc.run(t, e, func(legit map[string]any) map[string]any {
						return massBody(tc.resource, wrapped, legit, hostile)
					})
				})
			}
		}
	})
}

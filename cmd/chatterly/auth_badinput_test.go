package main_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

type badCase struct {
	name   string
	body   any // string: sent verbatim
	status int
	// want is a substring of the response body, when the message matters.
	want string
}

func TestRegisterBadInput(t *testing.T) {
	eachMode(t, func(t *testing.T, m mode) {
		s := start(t, m.config(t))
		s.register("taken")
		u := func(fields map[string]any) map[string]any {
			base := map[string]any{"email": "new@example.com", "password": "password123", "username": "newbie"}
			for k, v := range fields {
				if v == nil {
					delete(base, k)
				} else {
					base[k] = v
				}
			}
			return map[string]any{"user": base}
		}
		cases := []badCase{
			{"empty body", "", 422, "Email can't be blank"},
			{"empty object", "{}", 422, "Password can't be blank"},
			{"null", "null", 422, "Username can't be blank"},
			{"malformed json", `{"user": {"email": `, 400, "Malformed JSON"},
			{"array body", `[1,2]`, 400, "JSON object"},
			{"string body", `"hello"`, 400, "JSON object"},
			{"user is a string", `{"user": "alice"}`, 422, "Email can't be blank"},
			{"email a number", u(map[string]any{"email": 5}), 422, "Email must be a string"},
			{"password an object", u(map[string]any{"password": map[string]any{"$ne": 1}}), 422, "Password must be a string"},
			{"username an array", u(map[string]any{"username": []string{"a"}}), 422, "Username must be a string"},
			{"display_name a bool", u(map[string]any{"display_name": true}), 422, "Display name must be a string"},
			{"email missing", u(map[string]any{"email": nil}), 422, "Email can't be blank"},
			{"email invalid", u(map[string]any{"email": "no-at-sign"}), 422, "Email is invalid"},
			{"email overlong", u(map[string]any{"email": strings.Repeat("a", 300) + "@x.io"}), 422, "Email is invalid"},
			{"email sql", u(map[string]any{"email": "' OR 1=1 --"}), 422, "Email is invalid"},
			{"email taken", u(map[string]any{"email": "TAKEN@example.com"}), 422, "Email has already been taken"},
			{"password short", u(map[string]any{"password": "short"}), 422, "Password is too short"},
			{"password over 128 characters", u(map[string]any{"password": strings.Repeat("p", 129)}), 422, "maximum is 128 characters"},
			{"username short", u(map[string]any{"username": "ab"}), 422, "Username is too short"},
			{"username long", u(map[string]any{"username": strings.Repeat("a", 31)}), 422, "Username is too long"},
			{"username LIKE chars", u(map[string]any{"username": "a%_b"}), 422, "Username may only contain"},
			{"username emoji", u(map[string]any{"username": "ali😀"}), 422, "Username may only contain"},
			{"username taken", u(map[string]any{"username": "TAKEN"}), 422, "Username has already been taken"},
			{"display_name long", u(map[string]any{"display_name": strings.Repeat("é", 51)}), 422, "Display name is too long"},
			{"huge body", `{"user":{"email":"` + strings.Repeat("a", 2<<20) + `"}}`, 413, "too large"},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				r := s.do("POST", "/auth/register", "", tc.body)
				assert.Equal(t, tc.status, r.status, "%s", r.raw)
				assert.Contains(t, string(r.raw), tc.want)
				assert.Empty(t, r.header.Get("Authorization"))
			})
		}
		t.Run("unicode display name and ignored fields", func(t *testing.T) {
			r := s.do("POST", "/auth/register", "", u(map[string]any{"display_name": "Zoë 🚀 <script>", "id": 1, "role": "admin", "failed_attempts": -5, "locked_at": "2020-01-01"}))
			require.Equal(t, http.StatusCreated, r.status, "%s", r.raw)
			user := r.json(t)["user"].(map[string]any)
			assert.Equal(t, "Zoë 🚀 <script>", user["display_name"], "returned verbatim inside JSON")
			assert.NotEqual(t, float64(1), user["id"])
		})
	})
}

func TestLoginBadInput(t *testing.T) {
	eachMode(t, func(t *testing.T, m mode) {
		s := start(t, m.config(t))
		s.register("alice")
		cases := []badCase{
			{"empty body", "", 401, "Invalid Email or password."},
			{"malformed", "{", 400, "Malformed JSON"},
			{"email a number", `{"user":{"email":1,"password":"x"}}`, 422, "Email must be a string"},
			{"password null", `{"user":{"email":"alice@example.com","password":null}}`, 401, "Invalid Email or password."},
			{"sql in email", `{"user":{"email":"' OR '1'='1","password":"' OR '1'='1"}}`, 401, "Invalid Email or password."},
			{"LIKE wildcard email", `{"user":{"email":"%","password":"password-alice"}}`, 401, "Invalid Email or password."},
			{"huge password", `{"user":{"email":"alice@example.com","password":"` + strings.Repeat("x", 100000) + `"}}`, 401, "Invalid Email or password."},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				r := s.do("POST", "/auth/login", "", tc.body)
				assert.Equal(t, tc.status, r.status, "%s", r.raw)
				assert.Contains(t, string(r.raw), tc.want)
			})
		}
	})
}

func TestUsersEndpoints(t *testing.T) {
	eachMode(t, func(t *testing.T, m mode) {
		s := start(t, m.config(t))
		alice := s.register("alice")
		bob := s.register("bob")
		s.register("alicia")
		s.register("malice")
		s.register("a_b")
		s.register("axb")

		search := func(term string) []string {
			t.Helper()
			r := s.do("GET", "/api/v1/users?search="+term, alice.token, nil)
			require.Equal(t, http.StatusOK, r.status, "%s", r.raw)
			var names []string
			for _, u := range r.list(t) {
				um := u.(map[string]any)
				assert.ElementsMatch(t, []string{"id", "username", "display_name", "avatar_url", "online"}, keys(um), "public view only")
				names = append(names, um["username"].(string))
			}
			return names
		}
		t.Run("search", func(t *testing.T) {
			assert.Equal(t, []string{"alice", "alicia", "malice"}, search("ali"), "prefix matches first")
			assert.Equal(t, []string{"alice", "malice"}, search("ALICE"), "exact first, case-insensitive")
			assert.Equal(t, []string{"a_b"}, search("a_b"), "_ is literal")
			assert.Empty(t, search("%25"), "% is literal")
			assert.Empty(t, search(""), "empty search returns nobody")
			assert.Empty(t, search("%5C"), "backslash is literal")
			assert.Empty(t, search("%27%20OR%201%3D1--"), "SQL is data")
			assert.Empty(t, search("%E2%9C%93"), "unicode")
			r := s.do("GET", "/api/v1/users", alice.token, nil)
			assert.Equal(t, "[]", strings.TrimSpace(string(r.raw)), "no search parameter: [] not every user")
			r = s.do("GET", "/api/v1/users?search="+strings.Repeat("a", 101), alice.token, nil)
			assert.Equal(t, http.StatusUnprocessableEntity, r.status)
		})
		t.Run("show", func(t *testing.T) {
			r := s.do("GET", "/api/v1/users/"+itoa(bob.id), alice.token, nil)
			require.Equal(t, http.StatusOK, r.status)
			assert.ElementsMatch(t, []string{"id", "username", "display_name", "avatar_url", "online"}, keys(r.json(t)), "no email in the public view")
			for _, id := range []string{"0", "-1", "abc", "1.5", "99999999999", "9223372036854775807", "99999999999999999999999", "1%20OR%201=1"} {
				r := s.do("GET", "/api/v1/users/"+id, alice.token, nil)
				assert.Equal(t, http.StatusNotFound, r.status, "id %s: %s", id, r.raw)
				assert.JSONEq(t, `{"error":"Not found"}`, string(r.raw))
			}
		})
		t.Run("update", func(t *testing.T) {
			path := "/api/v1/users/" + itoa(alice.id)
			r := s.do("PATCH", path, alice.token, map[string]any{"display_name": "Alice L.", "avatar_url": "https://cdn.example.com/a.png",
				"email": "evil@example.com", "username": "root", "id": 1, "role": 1, "created_at": "2000-01-01T00:00:00Z"})
			require.Equal(t, http.StatusOK, r.status, "%s", r.raw)
			u := r.json(t)
			assert.Equal(t, "Alice L.", u["display_name"])
			assert.Equal(t, "https://cdn.example.com/a.png", u["avatar_url"])
			assert.Equal(t, "alice@example.com", u["email"], "email is not mass-assignable")
			assert.Equal(t, "alice", u["username"])

			r = s.do("PATCH", path, alice.token, map[string]any{"user": map[string]any{"avatar_url": nil}})
			require.Equal(t, http.StatusOK, r.status, "nested body, null clears: %s", r.raw)
			assert.Nil(t, r.json(t)["avatar_url"])
			assert.Equal(t, "Alice L.", r.json(t)["display_name"])

			for _, tc := range []badCase{
				{"someone else", nil, 403, "Not authorized"},
				{"display_name a number", `{"display_name": 5}`, 422, "Display name must be a string"},
				{"avatar javascript", `{"avatar_url": "javascript:alert(1)"}`, 422, "Avatar url must be an http or https URL"},
				{"display_name long", `{"display_name": "` + strings.Repeat("x", 51) + `"}`, 422, "Display name is too long"},
				{"malformed", `{"display_name": `, 400, "Malformed JSON"},
			} {
				t.Run(tc.name, func(t *testing.T) {
					p := path
					if tc.body == nil {
						p = "/api/v1/users/" + itoa(bob.id)
						tc.body = map[string]any{"display_name": "pwned"}
					}
					r := s.do("PATCH", p, alice.token, tc.body)
					assert.Equal(t, tc.status, r.status, "%s", r.raw)
					assert.Contains(t, string(r.raw), tc.want)
				})
			}
			r = s.do("GET", "/api/v1/users/"+itoa(bob.id), alice.token, nil)
			assert.Equal(t, "Bob", r.json(t)["display_name"], "bob is untouched")
			r = s.do("PATCH", "/api/v1/users/abc", alice.token, map[string]any{"display_name": "x"})
			assert.Equal(t, http.StatusForbidden, r.status)
		})
	})
}

package main_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// hostileTexts are contents that would do harm if a response were HTML, or
// if a value were copied into a header.
var hostileTexts = map[string]string{
	"script":         `<script>alert(1)</script>`,
	"quotes":         `"double" 'single' \"escaped\" ` + "`back`",
	"crlf header":    "hi\r\nX-Injected: 1\r\n\r\n<html>",
	"closing json":   `"}]}<script>alert(document.cookie)</script>`,
	"line sep":       "a\u2028b\u2029c",
	"attribute":      `" onmouseover="alert(1)`,
	"template":       `{{constructor.constructor('alert(1)')()}}`,
	"javascript url": `javascript:alert(1)`,
}

// shortHostile fit where at most 10 characters are allowed (emoji).
var shortHostile = []string{`<b>x</b>`, `"'<>&`, "\r\nX-I: 1"}

// checkJSONResponse checks that a response is JSON, that no hostile value
// reached a header, and that the body carries no raw line break (JSON
// escapes them, so a CRLF cannot end the body early or start a header).
func checkJSONResponse(t *testing.T, r response, what string) {
	t.Helper()
	assert.Equal(t, "application/json", strings.TrimSpace(strings.Split(r.header.Get("Content-Type"), ";")[0]), "%s: Content-Type", what)
	for name, values := range r.header {
		assert.NotContains(t, strings.ToLower(name), "injected", "%s: a header was injected", what)
		for _, v := range values {
			for _, bad := range []string{"<script", "alert(", "injected", "\r", "\n", "onmouseover"} {
				assert.NotContains(t, strings.ToLower(v), strings.ToLower(bad), "%s: header %s reflects input: %q", what, name, v)
			}
		}
	}
	body := bytes.TrimRight(r.raw, "\n")
	assert.NotContains(t, string(body), "\r", "%s: raw CR in the body", what)
	assert.NotContains(t, string(body), "\n", "%s: raw LF in the body", what)
	assert.True(t, json.Valid(r.raw), "%s: body is JSON: %s", what, r.raw)
}

// Content with HTML, quotes and CRLF is data: returned verbatim inside JSON,
// over REST and the socket, never reflected into a header.
func TestSecurityHostileContent(t *testing.T) {
	eachMode(t, func(t *testing.T, m mode) {
		s := start(t, secConfig(t, m))
		u := s.freshUsers()
		g := num(t, s.createGroup(t, u.alice, "g", u.bob)["id"])
		watch := s.convWatcher(t, u.bob, g)

		for name, text := range hostileTexts {
			t.Run(name, func(t *testing.T) {
				r := s.do("POST", messagesPath(g), u.alice.token, map[string]any{"content": text})
				require.Equal(t, http.StatusCreated, r.status, "%s", r.raw)
				checkJSONResponse(t, r, "send")
				msg := dataOf(t, r)
				assert.Equal(t, text, msg["content"], "returned verbatim")
				mid := num(t, msg["id"])
				ev := watch.expectEvent(t, convIdent(g), "new_message")
				assert.Equal(t, text, obj(t, ev["message"])["content"], "broadcast verbatim")

				r = s.do("PATCH", messagePath(g, mid), u.alice.token, map[string]any{"content": text + text})
				require.Equal(t, http.StatusOK, r.status, "%s", r.raw)
				checkJSONResponse(t, r, "edit")
				assert.Equal(t, text+text, r.json(t)["content"])
				ev = watch.expectEvent(t, convIdent(g), "message_edited")
				assert.Equal(t, text+text, obj(t, ev["message"])["content"])

				r = s.do("GET", messagesPath(g)+"?limit=1", u.bob.token, nil)
				checkJSONResponse(t, r, "history")
				assert.Equal(t, text+text, objs(t, dataOf(t, r)["messages"])[0]["content"], "stored verbatim")

				r = s.do("POST", conversationsPath, u.alice.token, map[string]any{"conversation_type": "group", "name": text, "description": text, "member_ids": []int64{u.bob.id}})
				require.Equal(t, http.StatusCreated, r.status, "%s", r.raw)
				checkJSONResponse(t, r, "create conversation")
				c := dataOf(t, r)
				assert.Equal(t, text, c["name"])
				assert.Equal(t, text, c["description"])
				r = s.do("GET", convPath(num(t, c["id"])), u.bob.token, nil)
				checkJSONResponse(t, r, "show conversation")
				assert.Equal(t, text, dataOf(t, r)["name"])

				r = s.do("PATCH", "/api/v1/users/"+itoa(u.alice.id), u.alice.token, map[string]any{"display_name": text})
				checkJSONResponse(t, r, "update profile")
				if strings.ContainsAny(text, "\r\n") {
					// Display names refuse control characters; the refusal
					// does not repeat the input.
					assert.Equal(t, http.StatusUnprocessableEntity, r.status, "%s", r.raw)
					assert.NotContains(t, string(r.raw), "Injected")
				} else {
					require.Equal(t, http.StatusOK, r.status, "%s", r.raw)
					assert.Equal(t, text, r.json(t)["display_name"])
				}

				r = s.do("GET", "/api/v1/users?search="+url.QueryEscape(text), u.bob.token, nil)
				assert.Equal(t, http.StatusOK, r.status, "%s", r.raw)
				checkJSONResponse(t, r, "search for the text")

				r = s.do("GET", "/api/v1/conversations/"+url.PathEscape(text), u.bob.token, nil)
				assert.Equal(t, http.StatusNotFound, r.status, "%s", r.raw)
				checkJSONResponse(t, r, "a path of the text")
				assert.JSONEq(t, notFound, string(r.raw), "the path is not echoed")

				r = s.do("POST", messagesPath(g), u.alice.token, map[string]any{"content": strings.Repeat(text, 4001/utf8.RuneCountInString(text)+1)})
				assert.Equal(t, http.StatusUnprocessableEntity, r.status)
				checkJSONResponse(t, r, "too long")
				assert.NotContains(t, string(r.raw), "alert", "the error does not repeat the input")
			})
		}

		t.Run("emoji", func(t *testing.T) {
			mid := num(t, s.send(t, u.alice, g, "react")["id"])
			watch.expectEvent(t, convIdent(g), "new_message")
			for _, e := range shortHostile {
				r := s.do("POST", "/api/v1/reactions", u.bob.token, map[string]any{"reaction": map[string]any{"message_id": mid, "emoji": e}})
				checkJSONResponse(t, r, "react")
				if r.status == http.StatusCreated {
					assert.Equal(t, e, r.json(t)["emoji"], "returned verbatim")
					ev := watch.expectEvent(t, convIdent(g), "reaction_added")
					assert.Equal(t, e, obj(t, ev["reaction"])["emoji"])
				} else {
					assert.Equal(t, http.StatusUnprocessableEntity, r.status, "%s", r.raw)
				}
			}
		})

		t.Run("an error body never echoes a header", func(t *testing.T) {
			r := s.do("GET", "/api/v1/users/me", "", nil, "X-Forwarded-Host", "evil.example", "Origin", "https://evil.example", "Referer", "https://evil.example/<script>")
			assert.Equal(t, http.StatusUnauthorized, r.status)
			checkJSONResponse(t, r, "401")
			assert.NotContains(t, string(r.raw), "evil")
			assert.Empty(t, r.header.Get("Access-Control-Allow-Origin"))
		})
	})
}

package http

import (
	"bytes"
	"errors"
	nethttp "net/http"
	"net/http/httptest"
	"testing"

	"github.com/labstack/echo/v4"

	"github.com/chatterly/chatterly/core"
)

// FuzzReadBody binds arbitrary request bodies the way every handler does:
// no input may panic, and every failure must be a 400 or a 413 (echo
// errors) or a 422 (an Invalid core error), never anything that renders as
// a 500. It is an internal test because the binder is unexported.
func FuzzReadBody(f *testing.F) {
	for _, seed := range []string{
		`{"user":{"email":"a@b.c","password":"password1","username":"abc"}}`,
		`{"content":"hi","message_type":"text","parent_message_id":"12"}`,
		`{"member_ids":[1,"2",3.5],"conversation_type":"group"}`,
		`{"reaction":{"message_id":1,"emoji":"👍"}}`,
		`{"user":"x"}`, `[]`, `null`, `"s"`, `{"user_id":1e400}`, `{"content":"a\u0000b"}`, ``, `{`,
	} {
		f.Add([]byte(seed))
	}
	e := echo.New()
	f.Fuzz(func(t *testing.T, raw []byte) {
		req := httptest.NewRequest(nethttp.MethodPost, "/", bytes.NewReader(raw))
		c := e.NewContext(req, httptest.NewRecorder())
		for _, resource := range []string{"user", "message", "conversation", "reaction", "call"} {
			req.Body = readCloser{bytes.NewReader(raw)}
			b, err := readBody(c, resource)
			if err != nil {
				var he *echo.HTTPError
				if !errors.As(err, &he) || (he.Code != nethttp.StatusBadRequest && he.Code != nethttp.StatusRequestEntityTooLarge) {
					t.Fatalf("readBody(%q) = %v", raw, err)
				}
				continue
			}
			b.str("email", "Email")
			b.strOrNull("display_name", "Display name")
			b.id("user_id", "User must be a user id")
			b.id("parent_message_id", "Parent message must be a message id")
			b.ids("member_ids", "Member ids must be an array of user ids")
			if err := b.err(); err != nil && core.KindOf(err) != core.Invalid {
				t.Fatalf("field errors must be Invalid, got %v", err)
			}
		}
	})
}

type readCloser struct{ *bytes.Reader }

func (readCloser) Close() error { return nil }

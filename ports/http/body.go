package http

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	nethttp "net/http"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/chatterly/chatterly/core"
)

// body is a decoded JSON object request body. Rails wraps top-level keys
// under the resource name, so {"user": {...}} and {...} are both accepted:
// when the object has the resource key holding an object, that object is used.
//
// Fields are read one by one so that a wrong type becomes a 422 naming the
// field, and unknown fields are never looked at (no mass assignment).
type body struct {
	fields   map[string]json.RawMessage
	problems []string
}

// readBody decodes the request body as a JSON object wrapped (or not) under
// resource. An empty body is an empty object. Malformed JSON is a 400 and a
// body over the limit a 413, both as echo errors so the error handler renders them.
func readBody(c echo.Context, resource string) (*body, error) {
	raw, err := io.ReadAll(c.Request().Body)
	if err != nil {
		var he *echo.HTTPError
		if errors.As(err, &he) {
			return nil, he
		}
		return nil, echo.NewHTTPError(nethttp.StatusBadRequest, "could not read body")
	}
	b := &body{fields: map[string]json.RawMessage{}}
	if len(bytes.TrimSpace(raw)) == 0 {
		return b, nil
	}
	if err := json.Unmarshal(raw, &b.fields); err != nil {
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) {
			return nil, badRequest("Request body must be a JSON object")
		}
		return nil, badRequest("Malformed JSON in request body")
	}
	if b.fields == nil { // the body was `null`
		b.fields = map[string]json.RawMessage{}
	}
	if inner, ok := b.fields[resource]; ok {
		var nested map[string]json.RawMessage
		if json.Unmarshal(inner, &nested) == nil && nested != nil {
			b.fields = nested
		}
	}
	return b, nil
}

func badRequest(msg string) *echo.HTTPError {
	return &echo.HTTPError{Code: nethttp.StatusBadRequest, Message: msg, Internal: core.E(core.Invalid, msg)}
}

// str returns the string field key. present is false when the key is absent
// or null. A non-string value is recorded as a problem.
func (b *body) str(key, label string) (value string, present bool) {
	v, isNull, ok := b.strOrNull(key, label)
	return v, ok && !isNull
}

// strOrNull tells apart an absent key (ok false), null (isNull) and a string.
func (b *body) strOrNull(key, label string) (value string, isNull, ok bool) {
	raw, found := b.fields[key]
	if !found {
		return "", false, false
	}
	if string(bytes.TrimSpace(raw)) == "null" {
		return "", true, true
	}
	if err := json.Unmarshal(raw, &value); err != nil {
		b.problems = append(b.problems, fmt.Sprintf("%s must be a string", label))
		return "", false, false
	}
	// PostgreSQL text cannot hold NUL, and no client means to send it.
	if strings.ContainsRune(value, 0) {
		b.problems = append(b.problems, fmt.Sprintf("%s must not contain null characters", label))
		return "", false, false
	}
	return value, false, true
}

// err returns the type problems found so far as one Invalid error, or nil.
func (b *body) err() error {
	if len(b.problems) == 0 {
		return nil
	}
	return core.InvalidDetails(b.problems...)
}

// strPtr returns a pointer to s, or nil when s is empty after trimming.
func strPtr(s string) *string {
	if strings.TrimSpace(s) == "" {
		return nil
	}
	return &s
}

// id reads an integer id field. Rails coerces "12" to 12, so a string of
// digits is accepted too; null counts as absent. Anything else (1.5, true,
// an object, a number beyond int64) is recorded as a problem.
func (b *body) id(key, problem string) (int64, bool) {
	raw, found := b.fields[key]
	if !found {
		return 0, false
	}
	id, isNull, ok := parseID(raw)
	if isNull {
		return 0, false
	}
	if !ok {
		b.problems = append(b.problems, problem)
		return 0, false
	}
	return id, true
}

// ids reads an array of integer ids; null counts as absent.
func (b *body) ids(key, problem string) []int64 {
	raw, found := b.fields[key]
	if !found || string(bytes.TrimSpace(raw)) == "null" {
		return nil
	}
	var items []json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil {
		b.problems = append(b.problems, problem)
		return nil
	}
	out := make([]int64, 0, len(items))
	for _, item := range items {
		id, isNull, ok := parseID(item)
		if isNull || !ok {
			b.problems = append(b.problems, problem)
			return nil
		}
		out = append(out, id)
	}
	return out
}

func parseID(raw json.RawMessage) (id int64, isNull, ok bool) {
	s := string(bytes.TrimSpace(raw))
	if s == "null" {
		return 0, true, false
	}
	if strings.HasPrefix(s, `"`) {
		if json.Unmarshal(raw, &s) != nil {
			return 0, false, false
		}
	}
	id, err := strconv.ParseInt(s, 10, 64)
	return id, false, err == nil
}

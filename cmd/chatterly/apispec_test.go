package main_test

// The API reference in docs/api is checked both ways here. Every response
// that stack.do receives is validated against openapi.yaml, and every frame
// that a wsClient reads against asyncapi.yaml (both hooks are in
// harness_test.go), so that a field the server sends but the spec does not
// list, or one the spec requires but the server leaves out, fails whichever
// component test saw it. TestOpenAPIRoutes compares the routes the server
// registers with the paths the spec lists.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	main "github.com/chatterly/chatterly/cmd/chatterly"
	"github.com/chatterly/chatterly/docs/api"
	httpport "github.com/chatterly/chatterly/ports/http"
)

const (
	openAPIURL  = "https://chatterly.invalid/openapi.yaml"
	asyncAPIURL = "https://chatterly.invalid/asyncapi.yaml"
)

// apiSpecs are the two documents, parsed once for the whole test binary.
type apiSpecs struct {
	openAPI  map[string]any
	asyncAPI map[string]any
	ops      []specOperation

	mu       sync.Mutex
	compiler *jsonschema.Compiler
	schemas  map[string]*jsonschema.Schema
}

// specOperation is one path and method of openapi.yaml.
type specOperation struct {
	method   string
	template string
	segments []string
	// pointer locates the operation object in the document.
	pointer string
}

var (
	specsOnce sync.Once
	specs     *apiSpecs
	specsErr  error
)

func loadSpecs(t testing.TB) *apiSpecs {
	t.Helper()
	specsOnce.Do(func() { specs, specsErr = parseSpecs() })
	require.NoError(t, specsErr, "docs/api")
	return specs
}

func parseSpecs() (*apiSpecs, error) {
	s := &apiSpecs{compiler: jsonschema.NewCompiler(), schemas: map[string]*jsonschema.Schema{}}
	s.compiler.DefaultDraft(jsonschema.Draft2020)
	for _, d := range []struct {
		url  string
		conv func() ([]byte, error)
		into *map[string]any
	}{{openAPIURL, api.OpenAPIJSON, &s.openAPI}, {asyncAPIURL, api.AsyncAPIJSON, &s.asyncAPI}} {
		b, err := d.conv()
		if err != nil {
			return nil, err
		}
		if err := json.Unmarshal(b, d.into); err != nil {
			return nil, err
		}
		// The whole document is one resource, so that schemas compiled
		// from inside it resolve its "#/components/..." references.
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
		if err != nil {
			return nil, err
		}
		if err := s.compiler.AddResource(d.url, doc); err != nil {
			return nil, err
		}
	}
	paths, _ := s.openAPI["paths"].(map[string]any)
	for tmpl, item := range paths {
		for method := range item.(map[string]any) {
			switch method {
			case "get", "put", "post", "delete", "options", "head", "patch", "trace":
			default:
				continue // parameters, summary, ...
			}
			s.ops = append(s.ops, specOperation{
				method: strings.ToUpper(method), template: tmpl, segments: strings.Split(tmpl, "/"),
				pointer: "#/paths/" + escapePointer(tmpl) + "/" + method,
			})
		}
	}
	return s, nil
}

func escapePointer(s string) string {
	return strings.NewReplacer("~", "~0", "/", "~1").Replace(s)
}

// schema compiles (once) the schema at pointer of the document at base.
func (s *apiSpecs) schema(base, pointer string) (*jsonschema.Schema, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	loc := base + pointer
	if sch, ok := s.schemas[loc]; ok {
		return sch, nil
	}
	sch, err := s.compiler.Compile(loc)
	if err != nil {
		return nil, err
	}
	s.schemas[loc] = sch
	return sch, nil
}

// node returns what pointer ("#/a/b") names in doc, following a "$ref"
// that the node found is (OpenAPI's reusable responses and headers).
func node(doc map[string]any, pointer string) (any, string, bool) {
	for range 8 {
		var cur any = doc
		for _, part := range strings.Split(strings.TrimPrefix(pointer, "#/"), "/") {
			part = strings.NewReplacer("~1", "/", "~0", "~").Replace(part)
			m, ok := cur.(map[string]any)
			if !ok {
				return nil, pointer, false
			}
			if cur, ok = m[part]; !ok {
				return nil, pointer, false
			}
		}
		m, ok := cur.(map[string]any)
		ref, isRef := m["$ref"].(string)
		if !ok || !isRef || len(m) != 1 {
			return cur, pointer, true
		}
		pointer = ref
	}
	return nil, pointer, false
}

// match finds the operation that serves method and path: the one with most
// literal segments, as echo prefers /users/me over /users/:id.
func (s *apiSpecs) match(method, path string) (specOperation, bool) {
	segs := strings.Split(path, "/")
	best, bestScore := specOperation{}, -1
	for _, op := range s.ops {
		if op.method != method || len(op.segments) != len(segs) {
			continue
		}
		score := 0
		for i, seg := range op.segments {
			switch {
			case strings.HasPrefix(seg, "{") && segs[i] != "":
			case seg == segs[i]:
				score++
			default:
				score = -1
			}
			if score < 0 {
				break
			}
		}
		if score > bestScore {
			best, bestScore = op, score
		}
	}
	return best, bestScore >= 0
}

// checkResponse returns what is wrong with a response to method target
// (a path with its query) according to openapi.yaml; nil when nothing is.
func (s *apiSpecs) checkResponse(method, target string, status int, header http.Header, raw []byte) []string {
	if method == http.MethodOptions {
		return nil // CORS preflight, answered by the CORS layer for any path
	}
	u, err := url.Parse(target)
	if err != nil {
		return []string{fmt.Sprintf("unparsable request target %q", target)}
	}
	op, ok := s.match(method, u.Path)
	if !ok {
		// Not in the spec: the router's answer, which must be an error the
		// spec describes (an unknown path under /api/v1 is authenticated first).
		if status != http.StatusNotFound && status != http.StatusMethodNotAllowed && status != http.StatusUnauthorized {
			return []string{fmt.Sprintf("%s %s is not in openapi.yaml but answered %d", method, u.Path, status)}
		}
		if len(raw) == 0 {
			return nil
		}
		return s.validate(openAPIURL, "#/components/schemas/Error", raw)
	}
	what := fmt.Sprintf("%s %s (%s %s) answered %d", method, u.Path, op.method, op.template, status)
	respPtr := op.pointer + "/responses/" + strconv.Itoa(status)
	resp, respPtr, ok := node(s.openAPI, respPtr)
	if !ok {
		return []string{what + ", a status openapi.yaml does not list"}
	}
	var problems []string
	r := resp.(map[string]any)
	if headers, ok := r["headers"].(map[string]any); ok {
		for name := range headers {
			h, hPtr, _ := node(s.openAPI, respPtr+"/headers/"+escapePointer(name))
			hm, _ := h.(map[string]any)
			v := header.Get(name)
			if v == "" {
				if req, _ := hm["required"].(bool); req {
					problems = append(problems, fmt.Sprintf("%s without the header %s", what, name))
				}
				continue
			}
			if _, has := hm["schema"]; has {
				enc, _ := json.Marshal(v)
				for _, p := range s.validate(openAPIURL, hPtr+"/schema", enc) {
					problems = append(problems, fmt.Sprintf("%s: header %s: %s", what, name, p))
				}
			}
		}
	}
	content, _ := r["content"].(map[string]any)
	if len(content) == 0 {
		if len(raw) > 0 && method != http.MethodHead {
			problems = append(problems, fmt.Sprintf("%s with a body where openapi.yaml has none: %s", what, raw))
		}
		return problems
	}
	if method == http.MethodHead {
		return problems
	}
	mt, _, _ := mime.ParseMediaType(header.Get("Content-Type"))
	if _, ok := content[mt]; !ok {
		return append(problems, fmt.Sprintf("%s with Content-Type %q; openapi.yaml has %v", what, header.Get("Content-Type"), mediaTypes(content)))
	}
	if mt != "application/json" {
		return problems
	}
	for _, p := range s.validate(openAPIURL, respPtr+"/content/application~1json/schema", raw) {
		problems = append(problems, fmt.Sprintf("%s: %s\nbody: %s", what, p, raw))
	}
	return problems
}

func mediaTypes(m map[string]any) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// validate checks the JSON raw against the schema at pointer of base.
func (s *apiSpecs) validate(base, pointer string, raw []byte) []string {
	sch, err := s.schema(base, pointer)
	if err != nil {
		return []string{fmt.Sprintf("schema %s: %v", pointer, err)}
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		return []string{fmt.Sprintf("not JSON (%v): %q", err, raw)}
	}
	if err := sch.Validate(inst); err != nil {
		return []string{fmt.Sprintf("does not match %s: %#v", pointer, err)}
	}
	return nil
}

// checkFrame returns what is wrong with a frame the server sent over /cable
// according to asyncapi.yaml. A broadcast or transmit is checked against
// the schema of its channel's frames, named <Channel>Frame; any other frame
// against ControlFrame.
func (s *apiSpecs) checkFrame(raw []byte) []string {
	var f struct {
		Identifier *string         `json:"identifier"`
		Message    json.RawMessage `json:"message"`
	}
	if err := json.Unmarshal(raw, &f); err != nil {
		return []string{fmt.Sprintf("a frame that is not a JSON object: %q", raw)}
	}
	schema := "#/components/schemas/ControlFrame"
	if f.Identifier != nil && f.Message != nil {
		var id struct {
			Channel string `json:"channel"`
		}
		if err := json.Unmarshal([]byte(*f.Identifier), &id); err != nil || id.Channel == "" {
			return []string{fmt.Sprintf("a message frame whose identifier names no channel: %s", raw)}
		}
		schema = "#/components/schemas/" + id.Channel + "Frame"
	}
	var problems []string
	for _, p := range s.validate(asyncAPIURL, schema, raw) {
		problems = append(problems, fmt.Sprintf("cable frame %s\n%s", raw, p))
	}
	return problems
}

// TestOpenAPIRoutes fails when a route is served but not documented, or
// documented but not served.
func TestOpenAPIRoutes(t *testing.T) {
	sp := loadSpecs(t)
	app, err := main.Build(context.Background(), baseConfig(), discardLogger())
	require.NoError(t, err)
	t.Cleanup(app.Close)
	srv, ok := app.Handler.(*httpport.Server)
	require.True(t, ok, "the app's handler is the REST port")

	var served []string
	for _, r := range srv.Echo().Routes() {
		// Groups with middleware register catch-alls of their own, which
		// answer 404 through the middleware (so an unknown /api/v1 path is
		// 401 without a token); they are no API.
		if strings.HasSuffix(r.Path, "/*") || r.Method == "echo_route_not_found" {
			continue
		}
		segs := strings.Split(r.Path, "/")
		for i, seg := range segs {
			if name, ok := strings.CutPrefix(seg, ":"); ok {
				segs[i] = "{" + name + "}"
			}
		}
		served = append(served, r.Method+" "+strings.Join(segs, "/"))
	}
	documented := make([]string, 0, len(sp.ops))
	for _, op := range sp.ops {
		documented = append(documented, op.method+" "+op.template)
	}
	slices.Sort(served)
	served = slices.Compact(served)
	slices.Sort(documented)
	require.NotEmpty(t, served)
	for _, r := range served {
		assert.Contains(t, documented, r, "%s is served, but missing from docs/api/openapi.yaml", r)
	}
	for _, d := range documented {
		assert.Contains(t, served, d, "%s is in docs/api/openapi.yaml, but not served", d)
	}
}

// TestOpenAPIServed checks that the server hands out the reference it is
// checked against, and that the validators refuse what they should.
func TestOpenAPIServed(t *testing.T) {
	s := start(t, baseConfig())
	sp := loadSpecs(t)

	r := s.do("GET", "/openapi.json", "", nil)
	require.Equal(t, http.StatusOK, r.status)
	var doc map[string]any
	require.NoError(t, json.Unmarshal(r.raw, &doc))
	assert.Equal(t, sp.openAPI, doc)
	assert.Equal(t, "3.1.0", doc["openapi"])

	r = s.do("GET", "/openapi.yaml", "", nil)
	require.Equal(t, http.StatusOK, r.status)
	assert.Equal(t, api.OpenAPIYAML(), r.raw)
	r = s.do("GET", "/asyncapi.yaml", "", nil)
	require.Equal(t, http.StatusOK, r.status)
	assert.Equal(t, api.AsyncAPIYAML(), r.raw)
	r = s.do("GET", "/docs", "", nil)
	require.Equal(t, http.StatusOK, r.status)
	assert.Contains(t, string(r.raw), "Chatterly REST API")

	t.Run("the validators refuse", func(t *testing.T) {
		user := `{"id":7,"username":"alice","display_name":null,"avatar_url":null,"online":false}`
		tests := []struct {
			name   string
			method string
			path   string
			status int
			header http.Header
			body   string
		}{
			{"an extra field", "GET", "/api/v1/users/7", 200, jsonHeader(), user[:len(user)-1] + `,"admin":true}`},
			{"a missing field", "GET", "/api/v1/users/7", 200, jsonHeader(), `{"id":7,"username":"alice","display_name":null,"online":false}`},
			{"a wrong type", "GET", "/api/v1/users/7", 200, jsonHeader(), strings.Replace(user, "7", `"7"`, 1)},
			{"a status not listed", "GET", "/api/v1/users/7", 418, jsonHeader(), `{"error":"teapot"}`},
			{"an undocumented success", "GET", "/api/v1/nothing", 200, jsonHeader(), `{}`},
			{"a login without its token", "POST", "/auth/login", 200, jsonHeader(), `{"user":` + strings.Replace(user, `"online":false`, `"online":false,"email":"a@b.c","last_seen_at":null`, 1) + `}`},
			{"a 429 without Retry-After", "POST", "/auth/login", 429, jsonHeader(), `{"error":"rate_limited","retry_after":3}`},
			{"a timestamp without milliseconds", "GET", "/api/v1/users/me", 200, jsonHeader(), strings.Replace(user, `"online":false`, `"online":false,"email":"a@b.c","last_seen_at":"2026-03-07T18:11:58Z"`, 1)},
			{"another content type", "GET", "/api/v1/users/7", 200, http.Header{"Content-Type": {"text/plain"}}, user},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				assert.NotEmpty(t, sp.checkResponse(tt.method, tt.path, tt.status, tt.header, []byte(tt.body)))
			})
		}
		assert.Empty(t, sp.checkResponse("GET", "/api/v1/users/7?x=1", 200, jsonHeader(), []byte(user)), "the valid one passes")

		frames := []struct{ name, frame string }{
			{"an unknown control frame", `{"type":"hello"}`},
			{"a ping without its time", `{"type":"ping"}`},
			{"an event of another channel", `{"identifier":"{\"channel\":\"UserChannel\"}","message":{"type":"typing_stop","user_id":7}}`},
			{"an event with an extra field", `{"identifier":"{\"channel\":\"ConversationChannel\",\"conversation_id\":3}","message":{"type":"typing_stop","user_id":7,"x":1}}`},
			{"an unknown channel", `{"identifier":"{\"channel\":\"NoChannel\"}","message":{}}`},
		}
		for _, tt := range frames {
			t.Run(tt.name, func(t *testing.T) {
				assert.NotEmpty(t, sp.checkFrame([]byte(tt.frame)))
			})
		}
		assert.Empty(t, sp.checkFrame([]byte(`{"identifier":"{\"channel\":\"ConversationChannel\",\"conversation_id\":3}","message":{"type":"typing_stop","user_id":7}}`)))
	})
}

func jsonHeader() http.Header { return http.Header{"Content-Type": {"application/json"}} }

// TestAsyncAPIChannels fails when a channel of asyncapi.yaml has no frame
// schema for checkFrame, or is not served: each one documented confirms a
// subscription.
func TestAsyncAPIChannels(t *testing.T) {
	sp := loadSpecs(t)
	s := start(t, baseConfig())
	alice, bob := s.register("alice"), s.register("bob")
	cid := int64(s.createGroup(t, alice, "Team", bob)["id"].(float64))
	c := s.cable(t, alice)

	channels, _ := sp.asyncAPI["channels"].(map[string]any)
	var names []string
	for name := range channels {
		if name != "cable" { // the connection itself, not an Action Cable channel
			names = append(names, name)
		}
	}
	assert.ElementsMatch(t, []string{"ConversationChannel", "PresenceChannel", "CallChannel", "UserChannel"}, names)
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			_, err := sp.schema(asyncAPIURL, "#/components/schemas/"+name+"Frame")
			require.NoError(t, err, "asyncapi.yaml has the frame schema of %s", name)
			ident := `{"channel":"` + name + `"}`
			if name == "ConversationChannel" {
				ident = convIdent(cid)
			}
			c.mustConfirm(t, ident)
		})
	}
}

package http_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	nethttp "net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/bcrypt"

	"github.com/chatterly/chatterly/adapters/memory"
	"github.com/chatterly/chatterly/adapters/token"
	"github.com/chatterly/chatterly/core/auth"
	httpport "github.com/chatterly/chatterly/ports/http"
)

// Anyone can send requests with made-up methods and paths; what they make
// of the request metric must not grow with them, since every label value
// seen stays a series for the life of the process.
func TestRequestMetricLabelsBounded(t *testing.T) {
	signer, err := token.NewSigner([]byte(strings.Repeat("k", token.MinSecretBytes)))
	require.NoError(t, err)
	cfg := auth.DefaultConfig()
	cfg.BcryptCost = bcrypt.MinCost
	authSvc, err := auth.NewService(memory.NewUserStore(), signer, memory.NewDenylist(), cfg)
	require.NoError(t, err)
	reg := prometheus.NewRegistry()
	srv := httpport.New(httpport.Deps{Auth: authSvc, Registry: reg, Log: slog.New(slog.DiscardHandler)})

	const marker = "zq"
	// One round sends every kind of request once, with methods and path
	// segments of its own.
	round := func(r int) {
		for i := range 20 {
			made := fmt.Sprintf("%s%d", marker, r*100+i)
			reqs := []struct{ method, path string }{
				{strings.ToUpper(made), "/up"},
				{strings.ToUpper(made), "/auth/login"},
				{strings.ToUpper(made), "/api/v1/users/7"},
				{strings.ToUpper(made), "/" + made},
				{nethttp.MethodGet, "/" + made},
				{nethttp.MethodGet, "/auth/" + made},
				{nethttp.MethodGet, "/api/v1/" + made},
				{nethttp.MethodGet, "/api/v1/users/7/" + made},
				{nethttp.MethodPost, "/api/v1/conversations/" + made + "/messages"},
				{nethttp.MethodOptions, "/" + made},
			}
			for _, q := range reqs {
				srv.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(q.method, q.path, nil))
			}
		}
	}
	series := func() []string {
		t.Helper()
		mfs, err := reg.Gather()
		require.NoError(t, err)
		var out []string
		for _, mf := range mfs {
			if mf.GetName() != "chatterly_http_request_duration_seconds" {
				continue
			}
			for _, m := range mf.GetMetric() {
				var labels []string
				for _, l := range m.GetLabel() {
					labels = append(labels, l.GetName()+"="+l.GetValue())
				}
				out = append(out, strings.Join(labels, ","))
			}
		}
		return out
	}

	round(1)
	first := series()
	require.NotEmpty(t, first)
	round(2)
	round(3)
	second := series()
	assert.ElementsMatch(t, first, second, "later rounds of new methods and paths add no series")
	for _, s := range second {
		assert.NotContains(t, strings.ToLower(s), marker, "a label carries what the client sent")
	}
	assert.Contains(t, second, "method=other,route=/up,status=405")
	assert.Contains(t, second, "method=GET,route=unmatched,status=404")
}

// /readyz answers anyone, so why the server is not ready (hosts, ports,
// database users) goes to the log only.
func TestReadyzHidesTheReason(t *testing.T) {
	const secret = "failed to connect to user=postgres database=chatterly_prod password=hunter2 10.0.7.3:5499"
	var logs bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&logs, nil))
	srv := httpport.New(httpport.Deps{Log: log, Ready: func(context.Context) error {
		return fmt.Errorf("postgres: %w", errors.New(secret))
	}})
	rec := httptest.NewRecorder()
	srv.ServeHTTP(rec, httptest.NewRequest(nethttp.MethodGet, "/readyz", nil))

	assert.Equal(t, nethttp.StatusServiceUnavailable, rec.Code)
	assert.JSONEq(t, `{"status":"unavailable"}`, rec.Body.String())
	for _, part := range []string{"hunter2", "10.0.7.3", "5499", "chatterly_prod", "postgres"} {
		assert.NotContains(t, rec.Body.String(), part)
	}

	var warned bool
	dec := json.NewDecoder(&logs)
	for dec.More() {
		var line map[string]any
		require.NoError(t, dec.Decode(&line))
		if line["msg"] == "not ready" {
			warned = true
			assert.Equal(t, "WARN", line["level"])
			assert.Contains(t, line["err"], secret)
		}
	}
	assert.True(t, warned, "the reason is logged: %s", logs.String())
}

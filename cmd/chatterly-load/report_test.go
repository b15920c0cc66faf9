package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// runArgsEnv makes the test binary run the tool itself with these
// arguments: -h exits the process, so it is tested in a child.
const runArgsEnv = "CHATTERLY_LOAD_TEST_ARGS"

func TestMain(m *testing.M) {
	if args := os.Getenv(runArgsEnv); args != "" {
		os.Args = append([]string{"chatterly-load"}, strings.Fields(args)...)
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// -h prints flag defaults; the secrets the environment gives the tool are
// not among them.
func TestHelpShowsNoSecret(t *testing.T) {
	secrets := map[string]string{
		"DATABASE_URL":          "postgres://load:db-pw-s3cret@db.internal:5432/chatterly?sslmode=disable",
		"DEVISE_JWT_SECRET_KEY": "jwt-s3cret-0123456789abcdef0123456789abcdef",
		"CHATTERLY_URL":         "http://admin:url-pw-s3cret@10.9.8.7:3001",
	}
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			cmd := exec.CommandContext(t.Context(), os.Args[0]) //nolint:gosec // the test binary itself, running the tool
			cmd.Env = append(os.Environ(), runArgsEnv+"="+sc.name+" -h")
			for k, v := range secrets {
				cmd.Env = append(cmd.Env, k+"="+v)
			}
			out, err := cmd.CombinedOutput()
			require.NoError(t, err, "%s", out)
			require.Contains(t, string(out), "-jwt-secret", "the help was printed")
			assert.Contains(t, string(out), "env DEVISE_JWT_SECRET_KEY")
			for _, part := range []string{"db-pw-s3cret", "jwt-s3cret", "url-pw-s3cret", "db.internal", "10.9.8.7"} {
				assert.NotContains(t, string(out), part)
			}
		})
	}
}

func TestRedact(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"URL password", `connect postgres://load:pw@db:5432/x?sslmode=disable: refused`, `connect postgres://load:xxxxx@db:5432/x?sslmode=disable: refused`},
		{"URL password with URL syntax in it", `parse "postgres://u:p/a:ss@db/x": invalid`, `parse "postgres://u:xxxxx@db/x": invalid`},
		{"URL without password", `Get "http://127.0.0.1:3001/metrics": EOF`, `Get "http://127.0.0.1:3001/metrics": EOF`},
		{"user without password", `postgres://load@db/x`, `postgres://load@db/x`},
		{"key=value password", `host=db user=load password=pw dbname=x`, `host=db user=load password=xxxxx dbname=x`},
		{"quoted key=value password", `host=db password='p w\'x' dbname=x`, `host=db password=xxxxx dbname=x`},
		{"cable token", `dial ws://h/cable?token=eyJ.eyJ.sig: bad handshake`, `dial ws://h/cable?token=xxxxx: bad handshake`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, redact(tt.in))
		})
	}
}

// -json prints the figures of the table as one object with fixed keys.
func TestReportJSON(t *testing.T) {
	var lat []time.Duration
	for i := 1; i <= 100; i++ {
		lat = append(lat, time.Duration(i)*time.Millisecond)
	}
	r := newReport("throughput")
	r.Result.ElapsedS = 30
	latencyHeader(&r.Table)
	r.Latency("POST", "post", summarize(lat))
	r.Result.Counts["accepted"] = 4500
	r.Result.Rates["accepted"] = 150
	r.Result.CPUPerMessage["server"] = 0.42
	r.Result.Summary = "throughput: 150.0 msg/s"

	var out bytes.Buffer
	require.NoError(t, r.Print(&out, true))
	assert.Equal(t, 1, strings.Count(out.String(), "\n"), "one line")
	var got map[string]any
	require.NoError(t, json.Unmarshal(out.Bytes(), &got))
	for _, k := range []string{"scenario", "summary", "elapsed_s", "counts", "rates_per_s", "latency_ms", "cpu_ms_per_message", "server"} {
		assert.Contains(t, got, k)
	}
	assert.Equal(t, "throughput", got["scenario"])
	assert.Equal(t, map[string]any{"accepted": 4500.0}, got["counts"])
	assert.Equal(t, map[string]any{"accepted": 150.0}, got["rates_per_s"])
	assert.Equal(t, map[string]any{"server": 0.42}, got["cpu_ms_per_message"])
	assert.Equal(t, map[string]any{"post": map[string]any{"n": 100.0, "p50": 50.0, "p95": 95.0, "p99": 99.0, "max": 100.0, "mean": 50.5}},
		got["latency_ms"])

	out.Reset()
	require.NoError(t, r.Print(&out, false))
	lines := strings.Split(out.String(), "\n")
	assert.Equal(t, "throughput: 150.0 msg/s", lines[0])
	assert.Contains(t, lines[2], "99.00ms", "the table shows the same p99")

	out.Reset()
	require.NoError(t, newReport("idle").Print(&out, true))
	require.NoError(t, json.Unmarshal(out.Bytes(), &got))
	assert.Equal(t, map[string]any{}, got["latency_ms"], "an empty section is an object, not null")
}

func TestProgress(t *testing.T) {
	var calls atomic.Int64
	status := func() string { calls.Add(1); return "status" }

	stop := progress(0, "off", status)
	time.Sleep(30 * time.Millisecond)
	stop()
	assert.Zero(t, calls.Load(), "0 prints nothing")

	stop = progress(5*time.Millisecond, "on", status)
	require.Eventually(t, func() bool { return calls.Load() >= 2 }, 5*time.Second, time.Millisecond)
	stop()
	stop() // a second stop is harmless
	after := calls.Load()
	time.Sleep(30 * time.Millisecond)
	assert.LessOrEqual(t, calls.Load(), after+1, "no lines after stop (one may have been under way)")
}

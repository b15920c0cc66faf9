package main_test

import (
	"log/slog"
	"maps"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/chatterly/chatterly/adapters/postgres/pgtest"
	main "github.com/chatterly/chatterly/cmd/chatterly"
	"github.com/chatterly/chatterly/core/ratelimit"
)

const secret32 = "0123456789abcdef0123456789abcdef"

func env(kv ...string) func(string) string {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return func(k string) string { return m[k] }
}

func TestLoadConfigDefaults(t *testing.T) {
	c, err := main.LoadConfig(env())
	require.NoError(t, err)
	assert.Equal(t, "development", c.Env)
	assert.Equal(t, 3001, c.Port)
	assert.False(t, c.Durable())
	assert.True(t, c.JWTSecretGenerated)
	assert.GreaterOrEqual(t, len(c.JWTSecret), 32)
	assert.Equal(t, []string{"http://localhost:3000"}, c.AllowedOrigins)
	assert.Equal(t, slog.LevelInfo, c.LogLevel)
	assert.Equal(t, 12, c.BcryptCost)
	assert.Equal(t, time.Second, c.UserCacheTTL)
	assert.Empty(t, c.RateLimits, "RateLimits holds overrides of the defaults only")

	c, err = main.LoadConfig(env("CHATTERLY_ENV", "test"))
	require.NoError(t, err)
	assert.Equal(t, 4, c.BcryptCost, "the test environment hashes cheaply, as Devise's does")
}

func TestLoadConfig(t *testing.T) {
	c, err := main.LoadConfig(env(
		"PORT", "8080", "CHATTERLY_ENV", "production",
		"DATABASE_URL", "postgres://u@db/chatterly", "DATABASE_REPLICA_URL", "postgresql://u@replica/chatterly",
		"REDIS_URL", "redis://cache:6379/3", "JWT_SECRET", secret32,
		"FRONTEND_URL", " https://chat.example.com/ , http://localhost:3000", "LOG_LEVEL", "debug",
	))
	require.NoError(t, err)
	assert.Equal(t, 8080, c.Port)
	assert.True(t, c.Durable())
	assert.Equal(t, "postgresql://u@replica/chatterly", c.DatabaseReplicaURL)
	assert.Equal(t, []byte(secret32), c.JWTSecret, "JWT_SECRET is an alias")
	assert.False(t, c.JWTSecretGenerated)
	assert.Equal(t, []string{"https://chat.example.com", "http://localhost:3000"}, c.AllowedOrigins)
	assert.Equal(t, slog.LevelDebug, c.LogLevel)

	c, err = main.LoadConfig(env("DEVISE_JWT_SECRET_KEY", secret32+"x", "JWT_SECRET", secret32))
	require.NoError(t, err)
	assert.Equal(t, []byte(secret32+"x"), c.JWTSecret, "DEVISE_JWT_SECRET_KEY wins")
}

// A variable set to its documented default reads as if it were unset.
func TestLoadConfigDefaultsSpelledOut(t *testing.T) {
	unset, err := main.LoadConfig(env())
	require.NoError(t, err)
	for _, v := range main.ConfigVars() {
		if v.Default == "" {
			continue
		}
		t.Run(v.Name, func(t *testing.T) {
			c, err := main.LoadConfig(env(v.Name, v.Default))
			require.NoError(t, err)
			c.JWTSecret = unset.JWTSecret
			assert.Equal(t, unset, c)
		})
	}
}

func TestLoadConfigCalls(t *testing.T) {
	c, err := main.LoadConfig(env())
	require.NoError(t, err)
	assert.Equal(t, 30*time.Second, c.CallRingTimeout)
	assert.Equal(t, time.Hour, c.TURNTTL)
	assert.Equal(t, []string{"stun:stun.l.google.com:19302"}, c.STUNURLs)

	c, err = main.LoadConfig(env("CALL_RING_TIMEOUT", "45", "TURN_TTL", "10m", "STUN_URLS", "stun:a.example:3478, stuns:b.example",
		"TURN_URLS", "turn:t.example:3478?transport=udp", "TURN_SECRET", "s3cret"))
	require.NoError(t, err)
	assert.Equal(t, 45*time.Second, c.CallRingTimeout, "a bare number is seconds")
	assert.Equal(t, 10*time.Minute, c.TURNTTL)
	assert.Equal(t, []string{"stun:a.example:3478", "stuns:b.example"}, c.STUNURLs)
	assert.Equal(t, []string{"turn:t.example:3478?transport=udp"}, c.TURNURLs)
	assert.Equal(t, []byte("s3cret"), c.TURNSecret)
}

// Durations that 0 or "off" turn off, with their defaults.
func TestLoadConfigDurationsOrOff(t *testing.T) {
	for _, v := range []struct {
		name  string
		def   time.Duration
		field func(main.Config) time.Duration
	}{
		{"AUTH_OUTAGE_GRACE", time.Minute, func(c main.Config) time.Duration { return c.AuthOutageGrace }},
		{"USER_CACHE_TTL", time.Second, func(c main.Config) time.Duration { return c.UserCacheTTL }},
	} {
		for _, tc := range []struct {
			value string
			want  time.Duration
		}{
			{"", v.def}, {"90s", 90 * time.Second}, {"5", 5 * time.Second}, {"0", 0}, {"off", 0},
		} {
			c, err := main.LoadConfig(env(v.name, tc.value))
			require.NoError(t, err, tc.value)
			assert.Equal(t, tc.want, v.field(c), "%s=%q", v.name, tc.value)
		}
		_, err := main.LoadConfig(env(v.name, "soon"))
		require.ErrorContains(t, err, v.name+"=")
	}
}

func TestLoadConfigProblems(t *testing.T) {
	cases := []struct {
		name string
		env  func(string) string
		want []string
	}{
		{"bad port", env("PORT", "http"), []string{"PORT="}},
		{"port out of range", env("PORT", "70000"), []string{"PORT="}},
		{"unknown env", env("CHATTERLY_ENV", "staging"), []string{"CHATTERLY_ENV="}},
		{"database without redis", env("DATABASE_URL", "postgres://x/y"), []string{"REDIS_URL is not"}},
		{"redis without database", env("REDIS_URL", "redis://x"), []string{"DATABASE_URL is not"}},
		{"replica alone", env("DATABASE_REPLICA_URL", "postgres://x/y"), []string{"DATABASE_REPLICA_URL needs DATABASE_URL"}},
		{"wrong scheme", env("DATABASE_URL", "mysql://x/y", "REDIS_URL", "http://x"), []string{"DATABASE_URL: want", "REDIS_URL: want"}},
		{"short secret", env("DEVISE_JWT_SECRET_KEY", "short"), []string{"DEVISE_JWT_SECRET_KEY is 5 bytes"}},
		{"short alias", env("JWT_SECRET", "short"), []string{"JWT_SECRET is 5 bytes"}},
		{"production without anything", env("CHATTERLY_ENV", "production"), []string{"production needs DATABASE_URL", "required in production"}},
		{"bad origin", env("FRONTEND_URL", "localhost:3000,https://ok.example/path,https://fine.example"), []string{`"localhost:3000" is not an origin`, `"https://ok.example/path" is not an origin`}},
		{"bad log level", env("LOG_LEVEL", "loud"), []string{"LOG_LEVEL="}},
		{"bad ring timeout", env("CALL_RING_TIMEOUT", "soon"), []string{"CALL_RING_TIMEOUT="}},
		{"negative turn ttl", env("TURN_TTL", "-1h"), []string{"TURN_TTL="}},
		{"turn without secret", env("TURN_URLS", "turn:t.example:3478"), []string{"TURN_SECRET is not"}},
		{"stun with a wrong scheme", env("STUN_URLS", "http://stun.example"), []string{`"http://stun.example" must start with stun`}},
		{"all problems at once", env("PORT", "x", "LOG_LEVEL", "y"), []string{"PORT=", "LOG_LEVEL="}},
		{"every variable's problems at once", env("PORT", "0", "CALL_RING_TIMEOUT", "-5", "FRONTEND_URL", "ftp://x",
			"TRUSTED_PROXIES", "lb", "RATE_LIMIT_TYPING", "x", "DATABASE_QUERY_MODE", "fast", "USER_CACHE_TTL", "soon"),
			[]string{"PORT=", "CALL_RING_TIMEOUT=", `FRONTEND_URL: "ftp://x"`, "FRONTEND_URL: no origin given",
				`TRUSTED_PROXIES: "lb"`, "RATE_LIMIT_TYPING=", "DATABASE_QUERY_MODE=", `USER_CACHE_TTL="soon": want a positive duration such as 30s or 1h (a bare number is seconds), or 0 or off`}},
		{"short secret in production: its length, not its absence", env("CHATTERLY_ENV", "production",
			"DATABASE_URL", "postgres://x/y", "REDIS_URL", "redis://x", "JWT_SECRET", "short"), []string{"JWT_SECRET is 5 bytes"}},
		{"a secret of spaces is a short secret", env("DEVISE_JWT_SECRET_KEY", "   "), []string{"DEVISE_JWT_SECRET_KEY is 3 bytes"}},
		{"a database of the wrong scheme still needs Redis", env("DATABASE_URL", "mysql://x/y"), []string{"DATABASE_URL: want", "REDIS_URL is not"}},
		{"TURN URLs all wrong: no secret needed", env("TURN_URLS", "http://t.example"), []string{`"http://t.example" must start with turn`}},
		{"no origin", env("FRONTEND_URL", " , "), []string{"FRONTEND_URL: no origin given"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := main.LoadConfig(tc.env)
			require.Error(t, err)
			for _, w := range tc.want {
				assert.Contains(t, err.Error(), w)
			}
			assert.Equal(t, len(tc.want), strings.Count(err.Error(), "\n  - "), "one line per problem: %s", err)
		})
	}
}

func TestRunRejectsBadConfigAndArgs(t *testing.T) {
	var out, errOut strings.Builder
	code := main.Run(t.Context(), nil, env("PORT", "nope"), &out, &errOut)
	assert.Equal(t, 2, code)
	assert.Contains(t, errOut.String(), "PORT=")
	errOut.Reset()
	assert.Equal(t, 2, main.Run(t.Context(), []string{"frobnicate"}, env(), &out, &errOut))
	assert.Contains(t, errOut.String(), "usage:")
	errOut.Reset()
	assert.Equal(t, 1, main.Run(t.Context(), []string{"migrate", "up"}, env(), &out, &errOut))
	assert.Contains(t, errOut.String(), "DATABASE_URL is not set")
}

func TestMigrateCommand(t *testing.T) {
	dbURL := pgtest.NewURL(t)
	e := env("DATABASE_URL", dbURL, "REDIS_URL", "redis://127.0.0.1:6379/0")
	var out, errOut strings.Builder
	require.Equal(t, 0, main.Run(t.Context(), []string{"migrate", "status"}, e, &out, &errOut), errOut.String())
	assert.Contains(t, out.String(), "00001_init.sql")
	out.Reset()
	require.Equal(t, 0, main.Run(t.Context(), []string{"migrate", "up"}, e, &out, &errOut), errOut.String())
	require.Equal(t, 0, main.Run(t.Context(), []string{"migrate", "up"}, e, &out, &errOut), "migrating twice is fine: %s", errOut.String())
	out.Reset()
	require.Equal(t, 0, main.Run(t.Context(), []string{"migrate", "status"}, e, &out, &errOut), errOut.String())
	assert.Contains(t, out.String(), "00001_init.sql")
}

func TestLoadConfigRateLimits(t *testing.T) {
	defaults := ratelimit.Defaults()
	with := func(over ratelimit.Rules) ratelimit.Rules {
		r := ratelimit.Defaults()
		maps.Copy(r, over)
		return r
	}
	cases := []struct {
		name        string
		env         func(string) string
		want        ratelimit.Rules
		wantProxies []netip.Prefix
		wantErr     []string
	}{
		{name: "defaults", env: env(), want: defaults},
		{name: "explicitly on", env: env("RATE_LIMITS", "on"), want: defaults},
		{name: "all off", env: env("RATE_LIMITS", "OFF", "RATE_LIMIT_MESSAGES", "5/1s"), want: ratelimit.Rules{}},
		{name: "one rule raised", env: env("RATE_LIMIT_MESSAGES", "1000/1s"),
			want: with(ratelimit.Rules{ratelimit.Messages: {Limit: 1000, Window: time.Second}})},
		{name: "every rule", env: env(
			"RATE_LIMIT_LOGIN_IP", "1/s", "RATE_LIMIT_LOGIN_EMAIL", "2/m", "RATE_LIMIT_REGISTER_IP", "3/h",
			"RATE_LIMIT_MESSAGES", "4/10s", "RATE_LIMIT_REACTIONS", "5/10s", "RATE_LIMIT_CONVERSATIONS", "6/1m30s",
			"RATE_LIMIT_TYPING", "7/500ms", "RATE_LIMIT_SIGNALS", "off", "RATE_LIMIT_REGISTER_SHARED", "8/2h",
			"RATE_LIMIT_READS", "9/20s"),
			want: ratelimit.Rules{
				ratelimit.LoginIP: {Limit: 1, Window: time.Second}, ratelimit.LoginEmail: {Limit: 2, Window: time.Minute},
				ratelimit.RegisterIP: {Limit: 3, Window: time.Hour}, ratelimit.RegisterShared: {Limit: 8, Window: 2 * time.Hour},
				ratelimit.Messages:  {Limit: 4, Window: 10 * time.Second},
				ratelimit.Reactions: {Limit: 5, Window: 10 * time.Second}, ratelimit.Conversations: {Limit: 6, Window: 90 * time.Second},
				ratelimit.Typing: {Limit: 7, Window: 500 * time.Millisecond}, ratelimit.Signals: {},
				ratelimit.Reads: {Limit: 9, Window: 20 * time.Second},
			}},
		{name: "trusted proxies", env: env("TRUSTED_PROXIES", " 10.0.0.0/8, 192.168.1.7 ,fd00::/8"), want: defaults,
			wantProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("192.168.1.7/32"), netip.MustParsePrefix("fd00::/8")}},
		{name: "bad switch", env: env("RATE_LIMITS", "maybe"), wantErr: []string{"RATE_LIMITS="}},
		{name: "limit without window", env: env("RATE_LIMIT_MESSAGES", "20"), wantErr: []string{`RATE_LIMIT_MESSAGES="20"`}},
		{name: "bad window", env: env("RATE_LIMIT_TYPING", "20/soon"), wantErr: []string{`RATE_LIMIT_TYPING="20/soon"`}},
		{name: "negative limit", env: env("RATE_LIMIT_SIGNALS", "-1/10s"), wantErr: []string{"RATE_LIMIT_SIGNALS="}},
		{name: "bad proxy", env: env("TRUSTED_PROXIES", "10.0.0.0/8,proxy.internal"), wantErr: []string{`"proxy.internal" is not an address`}},
		{name: "every problem listed", env: env("RATE_LIMIT_LOGIN_IP", "x", "RATE_LIMIT_REGISTER_IP", "1/0s", "RATE_LIMITS", "no"),
			wantErr: []string{"RATE_LIMIT_LOGIN_IP=", "RATE_LIMIT_REGISTER_IP=", "RATE_LIMITS="}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := main.LoadConfig(tc.env)
			if len(tc.wantErr) > 0 {
				require.Error(t, err)
				for _, w := range tc.wantErr {
					assert.Contains(t, err.Error(), w)
				}
				assert.Equal(t, len(tc.wantErr), strings.Count(err.Error(), "\n  - "), "one line per problem: %s", err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, c.Limits())
			assert.Equal(t, tc.wantProxies, c.TrustedProxies)
		})
	}

	assert.Equal(t, defaults, main.Config{}.Limits(), "a Config built in code, as the component tests do, has the default limits")
}

func TestLoadConfigSharedAddresses(t *testing.T) {
	cases := []struct {
		name    string
		env     func(string) string
		want    []netip.Prefix
		wantErr string
	}{
		{name: "default: loopback and private networks", env: env(), want: main.PrivateNetworks},
		{name: "private, spelled out", env: env("SHARED_ADDRESSES", " Private "), want: main.PrivateNetworks},
		{name: "none: every address is one client", env: env("SHARED_ADDRESSES", "none"), want: nil},
		{name: "a list", env: env("SHARED_ADDRESSES", "10.1.2.3, 100.64.0.0/10"),
			want: []netip.Prefix{netip.MustParsePrefix("10.1.2.3/32"), netip.MustParsePrefix("100.64.0.0/10")}},
		{name: "bad entry", env: env("SHARED_ADDRESSES", "10.0.0.0/8,nat.internal"), wantErr: `SHARED_ADDRESSES: "nat.internal" is not an address`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := main.LoadConfig(tc.env)
			if tc.wantErr != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tc.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, c.SharedAddresses)
		})
	}
	for _, a := range []string{"127.0.0.1", "::1", "10.2.3.4", "172.31.255.1", "192.168.0.10", "fd12::1"} {
		assert.True(t, slices.ContainsFunc(main.PrivateNetworks, func(p netip.Prefix) bool { return p.Contains(netip.MustParseAddr(a)) }), a)
	}
	for _, a := range []string{"203.0.113.7", "172.32.0.1", "2001:db8::1", "8.8.8.8"} {
		assert.False(t, slices.ContainsFunc(main.PrivateNetworks, func(p netip.Prefix) bool { return p.Contains(netip.MustParseAddr(a)) }), a)
	}
}

// The example env file documents every limit with its default.
func TestEnvExampleDocumentsRateLimits(t *testing.T) {
	raw, err := os.ReadFile("../../configs/chatterly.env.example")
	require.NoError(t, err)
	documented := map[string]string{}
	for _, line := range strings.Split(string(raw), "\n") {
		k, v, ok := strings.Cut(strings.TrimPrefix(line, "# "), "=")
		if ok && strings.HasPrefix(k, "RATE_LIMIT_") {
			documented[k] = v
		}
	}
	c, err := main.LoadConfig(func(k string) string { return documented[k] })
	require.NoError(t, err)
	assert.Equal(t, ratelimit.Defaults(), c.Limits())
	assert.Len(t, documented, len(ratelimit.Names))
}

func TestLoadConfigDatabase(t *testing.T) {
	const (
		pooled = "postgres://u@pooler:6543/chat"
		direct = "postgres://u@db:5432/chat"
	)
	durable := func(kv ...string) func(string) string {
		return env(append([]string{"DATABASE_URL", pooled, "REDIS_URL", "redis://cache"}, kv...)...)
	}
	cases := []struct {
		name       string
		env        func(string) string
		wantDirect string
		wantMode   string
		wantErr    []string
	}{
		{name: "neither", env: durable()},
		{name: "a direct URL", env: durable("DATABASE_DIRECT_URL", " "+direct+" "), wantDirect: direct},
		{name: "a mode", env: durable("DATABASE_QUERY_MODE", "simple_protocol"), wantMode: "simple_protocol"},
		{name: "both", env: durable("DATABASE_DIRECT_URL", direct, "DATABASE_QUERY_MODE", "exec"), wantDirect: direct, wantMode: "exec"},
		{name: "cache_statement with a direct URL (PgBouncer 1.21+ with max_prepared_statements)",
			env:        durable("DATABASE_DIRECT_URL", direct, "DATABASE_QUERY_MODE", "cache_statement"),
			wantDirect: direct, wantMode: "cache_statement"},
		{name: "describe_exec without a pooler", env: durable("DATABASE_QUERY_MODE", "describe_exec"), wantMode: "describe_exec"},
		{name: "describe_exec behind a pooler", env: durable("DATABASE_DIRECT_URL", direct, "DATABASE_QUERY_MODE", "describe_exec"),
			wantErr: []string{"DATABASE_QUERY_MODE=describe_exec is unsafe behind a pooler"}},
		{name: "unknown mode", env: durable("DATABASE_QUERY_MODE", "prepared"),
			wantErr: []string{`DATABASE_QUERY_MODE="prepared": want cache_statement, cache_describe`}},
		{name: "direct URL alone", env: env("DATABASE_DIRECT_URL", direct), wantErr: []string{"DATABASE_DIRECT_URL needs DATABASE_URL"}},
		{name: "direct URL with a wrong scheme", env: durable("DATABASE_DIRECT_URL", "mysql://db/chat"),
			wantErr: []string{"DATABASE_DIRECT_URL: want a URL starting with postgres://"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := main.LoadConfig(tc.env)
			if len(tc.wantErr) > 0 {
				require.Error(t, err)
				for _, w := range tc.wantErr {
					assert.Contains(t, err.Error(), w)
				}
				assert.Equal(t, len(tc.wantErr), strings.Count(err.Error(), "\n  - "), "one line per problem: %s", err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, pooled, c.DatabaseURL)
			assert.Equal(t, tc.wantDirect, c.DatabaseDirectURL)
			assert.Equal(t, tc.wantMode, c.DatabaseQueryMode)
		})
	}
}

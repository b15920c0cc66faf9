package main

import (
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/chatterly/chatterly/adapters/postgres"
	"github.com/chatterly/chatterly/core/ratelimit"
)

// Config is everything the server reads from its environment.
// configs/chatterly.env.example documents each variable.
type Config struct {
	Env                string // development, test or production
	Port               int
	DatabaseURL        string
	DatabaseReplicaURL string
	// DatabaseDirectURL reaches PostgreSQL with no pooler in transaction
	// mode in between (DATABASE_DIRECT_URL): migrations, which hold a
	// session lock, run on it. Empty: they run on DatabaseURL.
	DatabaseDirectURL string
	// DatabaseQueryMode is pgx's query exec mode for DatabaseURL and
	// DatabaseReplicaURL (DATABASE_QUERY_MODE, a postgres.QueryModes name).
	// Empty: the URL's default_query_exec_mode, else cache_describe when
	// DatabaseDirectURL is set, else pgx's default (cache_statement).
	DatabaseQueryMode string
	RedisURL          string
	JWTSecret         []byte
	// JWTSecretGenerated is set when no secret was configured and a random
	// one was made up: tokens then die with the process.
	JWTSecretGenerated bool
	AllowedOrigins     []string
	LogLevel           slog.Level
	// BcryptCost is 12 (Devise's default) except in tests, which lower it
	// to keep the suite fast.
	BcryptCost int
	// CallRingTimeout is how long a call rings unanswered before it is missed.
	CallRingTimeout time.Duration
	// CallLeaveGrace is how long a call participant may be offline before
	// being taken out of the call; 0 takes the default (30 s). Tests
	// shorten it.
	CallLeaveGrace time.Duration
	// STUNURLs, TURNURLs, TURNSecret and TURNTTL configure GET /api/v1/ice_servers.
	STUNURLs   []string
	TURNURLs   []string
	TURNSecret []byte
	TURNTTL    time.Duration
	// RedisPrefix starts every Redis key and channel ("chatterly:"), so that
	// tests and deployments can share one Redis.
	RedisPrefix string
	// CableSendQueueBytes bounds each WebSocket client's send queue; 0 takes
	// the gateway's default. Tests make it tiny to provoke too_slow.
	CableSendQueueBytes int
	// CableGoroutineReaders gives every WebSocket a reader goroutine
	// instead of the epoll poller (tests run both ways; Linux only polls).
	CableGoroutineReaders bool
	// AuthOutageGrace is how long a token the denylist cleared stays
	// trusted while Redis is unreachable (auth.Config.OutageGrace): clients
	// signed in keep working through a Redis restart. 0 trusts none.
	AuthOutageGrace time.Duration
	// UserCacheTTL is how long a user read by id (every authenticated
	// request reads its user) is answered from memory (users.Cache). Changes
	// made through another instance show up after at most this long. 0 reads
	// the store every time.
	UserCacheTTL time.Duration
	// RateLimits override ratelimit.Defaults() rule by rule (RATE_LIMIT_*);
	// a rule left out keeps its default, and a zero Rule is unlimited.
	RateLimits ratelimit.Rules
	// RateLimitsOff turns every limit off (RATE_LIMITS=off), for load tests.
	RateLimitsOff bool
	// TrustedProxies are the reverse proxies whose X-Forwarded-For names
	// the client address (TRUSTED_PROXIES); none by default.
	TrustedProxies []netip.Prefix
	// SharedAddresses are the networks whose addresses may each stand for
	// many people (SHARED_ADDRESSES; loopback and private networks unless
	// set): registrations from them count under register_shared, and logins
	// from them have no per-address limit. A Config built in code has none.
	SharedAddresses []netip.Prefix
}

// PrivateNetworks are SHARED_ADDRESSES' default: where the web client's
// server, a load balancer or a NAT usually sits, and no browser on the
// internet does.
var PrivateNetworks = []netip.Prefix{
	netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128"),
	netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("172.16.0.0/12"), netip.MustParsePrefix("192.168.0.0/16"),
	netip.MustParsePrefix("169.254.0.0/16"), netip.MustParsePrefix("fc00::/7"), netip.MustParsePrefix("fe80::/10"),
}

// rateLimitEnv names the variable of each limit: RATE_LIMIT_ and the
// rule's name in capitals (RATE_LIMIT_MESSAGES=20/10s).
func rateLimitEnv(n ratelimit.Name) string { return "RATE_LIMIT_" + strings.ToUpper(string(n)) }

// Limits returns the rules the server enforces: the defaults with
// RateLimits over them, or none when RateLimitsOff.
func (c Config) Limits() ratelimit.Rules {
	if c.RateLimitsOff {
		return ratelimit.Rules{}
	}
	rules := ratelimit.Defaults()
	maps.Copy(rules, c.RateLimits)
	return rules
}

// Durable reports whether the server keeps its data in PostgreSQL and Redis.
func (c Config) Durable() bool { return c.DatabaseURL != "" }

const minSecret = 32

// LoadConfig reads and validates the configuration. The error lists every
// problem, one per line, so an operator fixes them all in one go.
func LoadConfig(getenv func(string) string) (Config, error) {
	c := Config{
		Env: "development", Port: 3001, BcryptCost: 12, LogLevel: slog.LevelInfo,
		CallRingTimeout: 30 * time.Second, TURNTTL: time.Hour, AuthOutageGrace: time.Minute,
		UserCacheTTL: time.Second,
		STUNURLs:     []string{"stun:stun.l.google.com:19302"}, RedisPrefix: "chatterly:",
	}
	var problems []string
	bad := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }

	if v := strings.TrimSpace(getenv("CHATTERLY_ENV")); v != "" {
		c.Env = v
	}
	switch c.Env {
	case "test":
		// As Devise's test environment (stretches 1): registrations and
		// logins in test runs, such as CI's load scenarios, cost no CPU.
		c.BcryptCost = bcrypt.MinCost
	case "development", "production":
	default:
		bad("CHATTERLY_ENV=%q: want development, test or production", c.Env)
	}

	if v := strings.TrimSpace(getenv("PORT")); v != "" {
		p, err := strconv.Atoi(v)
		if err != nil || p < 1 || p > 65535 {
			bad("PORT=%q: want a number from 1 to 65535", v)
		}
		c.Port = p
	}

	c.DatabaseURL = strings.TrimSpace(getenv("DATABASE_URL"))
	c.DatabaseReplicaURL = strings.TrimSpace(getenv("DATABASE_REPLICA_URL"))
	c.DatabaseDirectURL = strings.TrimSpace(getenv("DATABASE_DIRECT_URL"))
	c.DatabaseQueryMode = strings.TrimSpace(getenv("DATABASE_QUERY_MODE"))
	c.RedisURL = strings.TrimSpace(getenv("REDIS_URL"))
	for _, v := range []struct {
		name, value string
		schemes     []string
	}{
		{"DATABASE_URL", c.DatabaseURL, []string{"postgres", "postgresql"}},
		{"DATABASE_REPLICA_URL", c.DatabaseReplicaURL, []string{"postgres", "postgresql"}},
		{"DATABASE_DIRECT_URL", c.DatabaseDirectURL, []string{"postgres", "postgresql"}},
		{"REDIS_URL", c.RedisURL, []string{"redis", "rediss", "unix"}},
	} {
		if v.value == "" {
			continue
		}
		u, err := url.Parse(v.value)
		if err != nil || !slices.Contains(v.schemes, u.Scheme) {
			bad("%s: want a URL starting with %s://", v.name, strings.Join(v.schemes, ":// or "))
		}
	}
	switch {
	case c.DatabaseURL != "" && c.RedisURL == "":
		bad("DATABASE_URL is set but REDIS_URL is not: set both for PostgreSQL + Redis, or neither for the in-memory mode")
	case c.DatabaseURL == "" && c.RedisURL != "":
		bad("REDIS_URL is set but DATABASE_URL is not: set both for PostgreSQL + Redis, or neither for the in-memory mode")
	case c.DatabaseURL == "" && c.DatabaseReplicaURL != "":
		bad("DATABASE_REPLICA_URL needs DATABASE_URL")
	}
	if c.DatabaseURL == "" && c.DatabaseDirectURL != "" {
		bad("DATABASE_DIRECT_URL needs DATABASE_URL")
	}
	switch _, known := postgres.QueryModes[c.DatabaseQueryMode]; {
	case c.DatabaseQueryMode == "":
	case !known:
		bad("DATABASE_QUERY_MODE=%q: want cache_statement, cache_describe, describe_exec, exec or simple_protocol (behind PgBouncer in transaction mode: cache_describe, exec or simple_protocol)", c.DatabaseQueryMode)
	case c.DatabaseQueryMode == "describe_exec" && c.DatabaseDirectURL != "":
		// Its second round trip executes the unnamed statement the first
		// prepared, which the pooler may send to another client's session.
		bad("DATABASE_QUERY_MODE=describe_exec is unsafe behind a pooler in transaction mode, which DATABASE_DIRECT_URL says DATABASE_URL is: use cache_describe, exec or simple_protocol")
	}
	if c.Env == "production" && c.DatabaseURL == "" {
		bad("CHATTERLY_ENV=production needs DATABASE_URL and REDIS_URL: the in-memory mode loses everything on restart")
	}

	secret := getenv("DEVISE_JWT_SECRET_KEY")
	name := "DEVISE_JWT_SECRET_KEY"
	if secret == "" {
		secret, name = getenv("JWT_SECRET"), "JWT_SECRET"
	}
	switch {
	case secret == "" && c.Env == "production":
		bad("DEVISE_JWT_SECRET_KEY (or JWT_SECRET) is required in production: at least %d bytes, e.g. `openssl rand -hex 32`", minSecret)
	case secret == "":
		c.JWTSecret, c.JWTSecretGenerated = []byte(rand.Text()+rand.Text()), true
	case len(secret) < minSecret:
		bad("%s is %d bytes: want at least %d (e.g. `openssl rand -hex 32`)", name, len(secret), minSecret)
	default:
		c.JWTSecret = []byte(secret)
	}

	c.AllowedOrigins = []string{"http://localhost:3000"}
	if v := strings.TrimSpace(getenv("FRONTEND_URL")); v != "" {
		c.AllowedOrigins = nil
		for _, o := range strings.Split(v, ",") {
			o = strings.TrimRight(strings.TrimSpace(o), "/")
			if o == "" {
				continue
			}
			u, err := url.Parse(o)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Path != "" || u.RawQuery != "" {
				bad("FRONTEND_URL: %q is not an origin like https://chat.example.com", o)
				continue
			}
			c.AllowedOrigins = append(c.AllowedOrigins, u.Scheme+"://"+u.Host)
		}
		if len(c.AllowedOrigins) == 0 {
			bad("FRONTEND_URL: no origin given")
		}
	}

	if v := strings.TrimSpace(getenv("LOG_LEVEL")); v != "" {
		if err := c.LogLevel.UnmarshalText([]byte(v)); err != nil {
			bad("LOG_LEVEL=%q: want debug, info, warn or error", v)
		}
	}

	duration := func(name string, into *time.Duration) {
		v := strings.TrimSpace(getenv(name))
		if v == "" {
			return
		}
		d, err := time.ParseDuration(v)
		if err != nil {
			if secs, e := strconv.Atoi(v); e == nil {
				d, err = time.Duration(secs)*time.Second, nil
			}
		}
		if err != nil || d <= 0 {
			bad("%s=%q: want a positive duration such as 30s or 1h (a bare number is seconds)", name, v)
			return
		}
		*into = d
	}
	duration("CALL_RING_TIMEOUT", &c.CallRingTimeout)
	// durationOrOff is duration where 0 or "off" turns the feature off.
	durationOrOff := func(name string, into *time.Duration) {
		if v := strings.TrimSpace(getenv(name)); v == "0" || strings.EqualFold(v, "off") {
			*into = 0
		} else {
			duration(name, into)
		}
	}
	durationOrOff("AUTH_OUTAGE_GRACE", &c.AuthOutageGrace)
	durationOrOff("USER_CACHE_TTL", &c.UserCacheTTL)
	duration("TURN_TTL", &c.TURNTTL)
	urls := func(name string, schemes ...string) []string {
		var out []string
		for _, u := range strings.Split(getenv(name), ",") {
			if u = strings.TrimSpace(u); u == "" {
				continue
			}
			scheme, _, _ := strings.Cut(u, ":")
			if !slices.Contains(schemes, scheme) {
				bad("%s: %q must start with %s:", name, u, strings.Join(schemes, ": or "))
				continue
			}
			out = append(out, u)
		}
		return out
	}
	if getenv("STUN_URLS") != "" {
		c.STUNURLs = urls("STUN_URLS", "stun", "stuns")
	}
	c.TURNURLs = urls("TURN_URLS", "turn", "turns")
	c.TURNSecret = []byte(getenv("TURN_SECRET"))
	if len(c.TURNURLs) > 0 && len(c.TURNSecret) == 0 {
		bad("TURN_URLS is set but TURN_SECRET is not: TURN credentials are derived from the shared secret")
	}

	switch v := strings.TrimSpace(getenv("RATE_LIMITS")); strings.ToLower(v) {
	case "", "on":
	case "off":
		c.RateLimitsOff = true
	default:
		bad("RATE_LIMITS=%q: want on (the default) or off", v)
	}
	for _, n := range ratelimit.Names {
		name := rateLimitEnv(n)
		v := strings.TrimSpace(getenv(name))
		if v == "" {
			continue
		}
		r, err := ratelimit.ParseRule(v)
		if err != nil {
			bad("%s=%v", name, err)
			continue
		}
		if c.RateLimits == nil {
			c.RateLimits = ratelimit.Rules{}
		}
		c.RateLimits[n] = r
	}
	networks := func(name string) []netip.Prefix {
		var out []netip.Prefix
		for _, v := range strings.Split(getenv(name), ",") {
			if v = strings.TrimSpace(v); v == "" {
				continue
			}
			p, err := netip.ParsePrefix(v)
			if err != nil {
				if a, e := netip.ParseAddr(v); e == nil {
					p, err = a.Prefix(a.BitLen())
				}
			}
			if err != nil {
				bad("%s: %q is not an address or a network like 10.0.0.0/8", name, v)
				continue
			}
			out = append(out, p)
		}
		return out
	}
	c.TrustedProxies = networks("TRUSTED_PROXIES")
	switch v := strings.TrimSpace(getenv("SHARED_ADDRESSES")); strings.ToLower(v) {
	case "", "private":
		c.SharedAddresses = slices.Clone(PrivateNetworks)
	case "none":
	default:
		c.SharedAddresses = networks("SHARED_ADDRESSES")
	}

	if len(problems) > 0 {
		return c, errors.New("invalid configuration:\n  - " + strings.Join(problems, "\n  - "))
	}
	return c, nil
}

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
	"github.com/chatterly/chatterly/core/chat"
	"github.com/chatterly/chatterly/core/ratelimit"
)

// Config is everything the server reads from its environment. configVars
// reads each variable, and documents it in the README and in
// configs/chatterly.env.example.
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
	// CableHistory bounds what the broker keeps of each stream for
	// clients of the extended cable protocol to resume from; a Limit of 0
	// keeps none. CableSessionTTL is how long such a client may resume
	// its closed session.
	CableHistory    chat.HistoryConfig
	CableSessionTTL time.Duration
	// CableConnectRate and CableConnectBurst bound the connects an
	// instance admits (ws.Config.ConnectRate); 0 admits all.
	CableConnectRate  int
	CableConnectBurst int
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

// configVar is one environment variable: how LoadConfig reads it, and what the
// README's configuration table and configs/chatterly.env.example say about it
// (TestConfigDocs renders both from configVars, so they cannot drift).
type configVar struct {
	name string
	// alias is read when name is unset (the Rails app's JWT_SECRET).
	alias string
	// def is what an unset variable means, written as the variable would be:
	// LoadConfig parses it like a value given, so the documented default is
	// the one in force. Empty: no value, and the field keeps its zero (or
	// what checkAcross settles).
	def string
	// defDoc stands in for def in the README when the default is not a value.
	defDoc string
	// example is what the example env file shows instead of def, and
	// commented whether it shows the line commented out.
	example   string
	commented bool
	// verbatim passes the value on untrimmed: spaces are part of a secret.
	verbatim bool
	// doc is the README's meaning (markdown, a sentence or two).
	doc string
	set configSetter
}

// configSetter stores v (never blank) in c, as far as it can read it, so that
// checkAcross sees what was given even when it is wrong, and returns one
// error line per problem, each naming the variable (name, which may be the
// alias) and the form it accepts.
type configSetter func(c *Config, name, v string) error

// configVars are every variable LoadConfig reads, in the order the README and
// the example env file list them.
var configVars = append([]configVar{
	{name: "CHATTERLY_ENV", def: "development", set: setEnv,
		doc: "`development`, `test` or `production` (production requires a database and a secret; `test` hashes passwords at bcrypt's lowest cost, as Devise does in tests)"},
	{name: "PORT", def: "3001", set: setPort,
		doc: "HTTP port (REST, `/cable`, `/up`, `/readyz`, `/metrics`)"},
	{name: "DATABASE_URL", example: "postgres://chatterly:chatterly@127.0.0.1:5432/chatterly?sslmode=disable", //nolint:gosec // G101: a placeholder password for the example env file
		set: setServiceURL(func(c *Config) *string { return &c.DatabaseURL }, "postgres", "postgresql"),
		doc: "PostgreSQL (15+), migrated at start. Set with `REDIS_URL` for the durable mode; neither → in-memory mode"},
	{name: "DATABASE_REPLICA_URL", example: "postgres://chatterly:chatterly@replica:5432/chatterly?sslmode=disable", commented: true, //nolint:gosec // G101: a placeholder password for the example env file
		set: setServiceURL(func(c *Config) *string { return &c.DatabaseReplicaURL }, "postgres", "postgresql"),
		doc: "Optional read replica for reads that tolerate lag (user search)"},
	{name: "DATABASE_DIRECT_URL", example: "postgres://postgres:password@db.project.supabase.co:5432/postgres", commented: true, //nolint:gosec // G101: a placeholder password for the example env file
		set: setServiceURL(func(c *Config) *string { return &c.DatabaseDirectURL }, "postgres", "postgresql"),
		doc: "PostgreSQL without a transaction-mode pooler in between (Supabase's \"direct connection\"): migrations (at start and `chatterly migrate`), which hold a session lock, run on it, through a pool of at most 2 connections closed when idle; readiness does not check it. Setting it says `DATABASE_URL` is pooled ([Production](#production))"},
	{name: "DATABASE_QUERY_MODE", defDoc: "see meaning", example: "cache_describe", commented: true, set: setQueryMode,
		doc: "pgx's query mode for `DATABASE_URL` and the replica: `cache_statement`, `cache_describe`, `exec`, `simple_protocol` (or `describe_exec`, refused behind a pooler). Unset: the URL's `default_query_exec_mode`, else `cache_describe` when `DATABASE_DIRECT_URL` is set, else `cache_statement` (pgx's default, for direct connections)"},
	{name: "REDIS_URL", example: "redis://127.0.0.1:6379/0",
		set: setServiceURL(func(c *Config) *string { return &c.RedisURL }, "redis", "rediss", "unix"),
		doc: "Redis: JWT denylist, presence, pub/sub, rate limits"},
	{name: "DEVISE_JWT_SECRET_KEY", alias: "JWT_SECRET", defDoc: "random in development", verbatim: true, set: setJWTSecret,
		doc: "HS256 key, at least 32 bytes (`openssl rand -hex 32`); required in production. Unset in development: a random one, and tokens stop working when the process exits"},
	{name: "FRONTEND_URL", def: "http://localhost:3000", set: setOrigins,
		doc: "Allowed browser origins (CORS, WebSocket Origin check), comma-separated"},
	{name: "LOG_LEVEL", def: "info", set: setLogLevel,
		doc: "`debug`, `info`, `warn`, `error`; logs are JSON lines on stdout, paths without query strings"},
	{name: "AUTH_OUTAGE_GRACE", def: "60s", set: setDuration(func(c *Config) *time.Duration { return &c.AuthOutageGrace }, true),
		doc: "While Redis is unreachable, tokens the denylist cleared this recently still work (others get 503); `0` turns it off"},
	{name: "USER_CACHE_TTL", def: "1s", set: setDuration(func(c *Config) *time.Duration { return &c.UserCacheTTL }, true),
		doc: "How long the user a token names is answered from memory instead of PostgreSQL (every authenticated request reads it). A profile changed through this instance shows at once; through another (or a user deleted in the database), within this long. `0` reads it every time"},
	{name: "CALL_RING_TIMEOUT", def: "30s", set: setDuration(func(c *Config) *time.Duration { return &c.CallRingTimeout }, false),
		doc: "Unanswered calls become `missed` after this (a duration or seconds)"},
	{name: "CABLE_HISTORY_LIMIT", def: strconv.Itoa(chat.DefaultHistoryLimit), commented: true, set: setHistoryLimit,
		doc: "Events kept per stream (in Redis, shared by instances) for clients of the `actioncable-v1-ext-json` protocol to get what they missed while away; `0` keeps none and publishes as versions before it did (set it for a rolling upgrade from one, then raise it)"},
	{name: "CABLE_HISTORY_TTL", def: "10m", commented: true, set: setDuration(func(c *Config) *time.Duration { return &c.CableHistory.TTL }, false),
		doc: "How long a stream's events are kept for those clients: a client away longer catches up over REST"},
	{name: "CABLE_SESSION_TTL", def: "5m", commented: true, set: setDuration(func(c *Config) *time.Duration { return &c.CableSessionTTL }, false),
		doc: "How long such a client may resume its closed connection (the `sid` of its welcome) with its subscriptions, on any instance"},
	{name: "CABLE_CONNECT_RATE", def: "0", commented: true, set: setCount(func(c *Config) *int { return &c.CableConnectRate }),
		doc: "WebSocket connects an instance admits per second; more are told `server_busy` (`reconnect: true`) and come back after their client's backoff (docs/realtime.md, \"Reconnect storms\"). `0` admits all"},
	{name: "CABLE_CONNECT_BURST", defDoc: "`CABLE_CONNECT_RATE`", commented: true, set: setCount(func(c *Config) *int { return &c.CableConnectBurst }),
		doc: "How many connects may come at once within that rate"},
	{name: "STUN_URLS", def: "stun:stun.l.google.com:19302",
		set: setURLList(func(c *Config) *[]string { return &c.STUNURLs }, "stun", "stuns"),
		doc: "STUN servers for `GET /api/v1/ice_servers`, comma-separated"},
	{name: "TURN_URLS", example: "turn:turn.example.com:3478?transport=udp,turns:turn.example.com:5349", commented: true,
		set: setURLList(func(c *Config) *[]string { return &c.TURNURLs }, "turn", "turns"),
		doc: "TURN relays for `GET /api/v1/ice_servers`, comma-separated (coturn with `use-auth-secret`); needs `TURN_SECRET`"},
	{name: "TURN_SECRET", commented: true, verbatim: true, set: setTURNSecret,
		doc: "coturn's shared secret: each client gets the username `<expiry unix>:<user id>` and the credential base64(HMAC-SHA1(secret, username)), valid for `TURN_TTL`"},
	{name: "TURN_TTL", def: "1h", commented: true, set: setDuration(func(c *Config) *time.Duration { return &c.TURNTTL }, false),
		doc: "How long TURN credentials stay valid (a duration or seconds)"},
	{name: "TRUSTED_PROXIES", commented: true, set: setTrustedProxies,
		doc: "Proxy addresses/networks whose `X-Forwarded-For` names the client for per-address limits and logs, and whose `X-Request-Id` is kept; unset: the connection's address, since anyone can send `X-Forwarded-For`. Behind a load balancer, set its network, e.g. `10.0.0.0/8`"},
	{name: "SHARED_ADDRESSES", def: "private", commented: true, set: setSharedAddresses,
		doc: "Addresses/networks that may each stand for many people (the web client's server, a NAT): registrations from them count under `RATE_LIMIT_REGISTER_SHARED`, logins have no per-address limit. `private` is loopback and the private networks; `none` makes every address one client's"},
	{name: "RATE_LIMITS", def: "on", commented: true, set: setRateLimitsSwitch,
		doc: "`off` turns every limit below off (load tests only). Each `RATE_LIMIT_*` is `<limit>/<window>` (`20/10s`, `5/m`) or `off`, shared by every instance through Redis (per process in the in-memory mode); over it, REST answers 429 with `Retry-After` and a WebSocket action gets `{\"error\":\"rate_limit\",...}`; while Redis is down the login limits refuse (503) and the others allow. What each protects in each shape: [Production](#production)"},
}, rateLimitVars()...)

// rateLimitDocs says what each limit counts.
var rateLimitDocs = map[ratelimit.Name]string{
	ratelimit.LoginIP:        "Failed `POST /auth/login` per client address, taken before the password is checked (over it: 429 even for the right password) and given back by a success. A shared address (`SHARED_ADDRESSES`) has none",
	ratelimit.LoginEmail:     "Failed `POST /auth/login` per email: with the lockout (10 failures), what stops guessing from a shared address",
	ratelimit.RegisterIP:     "`POST /auth/register` per client address",
	ratelimit.RegisterShared: "`POST /auth/register` per shared address (`SHARED_ADDRESSES`): a ceiling on a whole site's sign-ups through the web client's server",
	ratelimit.Messages:       "Messages sent, per user (`POST /api/v1/conversations/:id/messages`)",
	ratelimit.Reactions:      "Reactions added, per user (`POST /api/v1/reactions`)",
	ratelimit.Conversations:  "Conversations created, per user (`POST /api/v1/conversations`)",
	ratelimit.Typing:         "`typing` and `stop_typing` on ConversationChannel, each per user; the excess is dropped silently",
	ratelimit.Signals:        "`send_signal` on CallChannel, per user: generous, as a call setup sends a burst of ICE candidates",
}

// rateLimitVars are RATE_LIMIT_*, one per limit, defaulting to
// ratelimit.Defaults().
func rateLimitVars() []configVar {
	defaults := ratelimit.Defaults()
	out := make([]configVar, 0, len(ratelimit.Names))
	for _, n := range ratelimit.Names {
		out = append(out, configVar{
			name: rateLimitEnv(n), def: ruleText(defaults[n]), commented: true,
			doc: rateLimitDocs[n], set: setRateLimit(n),
		})
	}
	return out
}

// ruleText writes r as RATE_LIMIT_* takes it, "30/5m" rather than
// Rule.String's "30/5m0s".
func ruleText(r ratelimit.Rule) string {
	if r.Unlimited() {
		return "off"
	}
	w := r.Window.String()
	if strings.HasSuffix(w, "m0s") {
		w = strings.TrimSuffix(w, "0s")
	}
	if strings.HasSuffix(w, "h0m") {
		w = strings.TrimSuffix(w, "0m")
	}
	return fmt.Sprintf("%d/%s", r.Limit, w)
}

// LoadConfig reads and validates the configuration. The error lists every
// problem, one per line, so an operator fixes them all in one go.
func LoadConfig(getenv func(string) string) (Config, error) {
	c := Config{BcryptCost: 12, RedisPrefix: "chatterly:"}
	var problems []string
	for _, s := range configVars {
		name, v := s.lookup(getenv)
		if v == "" {
			name, v = s.name, s.def
		}
		if v == "" {
			continue
		}
		if err := s.set(&c, name, v); err != nil {
			problems = append(problems, strings.Split(err.Error(), "\n")...)
		}
	}
	problems = append(problems, checkAcross(&c)...)
	if len(problems) > 0 {
		return c, errors.New("invalid configuration:\n  - " + strings.Join(problems, "\n  - "))
	}
	return c, nil
}

// lookup returns the variable given (name, else alias) and its value, or
// an empty value when neither is set. Blank is unset.
func (s configVar) lookup(getenv func(string) string) (name, v string) {
	for _, name := range []string{s.name, s.alias} {
		if name == "" {
			continue
		}
		v := getenv(name)
		if !s.verbatim {
			v = strings.TrimSpace(v)
		}
		if v != "" {
			return name, v
		}
	}
	return s.name, ""
}

// checkAcross reports what is wrong between variables, each fine on its
// own, and settles the JWT secret, whose absence means something else in
// production.
func checkAcross(c *Config) []string {
	var problems []string
	bad := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
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
	if c.DatabaseQueryMode == "describe_exec" && c.DatabaseDirectURL != "" {
		// Its second round trip executes the unnamed statement the first
		// prepared, which the pooler may send to another client's session.
		bad("DATABASE_QUERY_MODE=describe_exec is unsafe behind a pooler in transaction mode, which DATABASE_DIRECT_URL says DATABASE_URL is: use cache_describe, exec or simple_protocol")
	}
	if c.Env == "production" && c.DatabaseURL == "" {
		bad("CHATTERLY_ENV=production needs DATABASE_URL and REDIS_URL: the in-memory mode loses everything on restart")
	}
	switch {
	case c.JWTSecret != nil:
	case c.Env == "production":
		bad("DEVISE_JWT_SECRET_KEY (or JWT_SECRET) is required in production: at least %d bytes, e.g. `openssl rand -hex 32`", minSecret)
	default:
		c.JWTSecret, c.JWTSecretGenerated = []byte(rand.Text()+rand.Text()), true
	}
	if len(c.TURNURLs) > 0 && len(c.TURNSecret) == 0 {
		bad("TURN_URLS is set but TURN_SECRET is not: TURN credentials are derived from the shared secret")
	}
	return problems
}

func setEnv(c *Config, name, v string) error {
	c.Env = v
	switch v {
	case "test":
		// As Devise's test environment (stretches 1): registrations and
		// logins in test runs, such as CI's load scenarios, cost no CPU.
		c.BcryptCost = bcrypt.MinCost
	case "development", "production":
	default:
		return fmt.Errorf("%s=%q: want development, test or production", name, v)
	}
	return nil
}

func setPort(c *Config, name, v string) error {
	p, err := strconv.Atoi(v)
	c.Port = p
	if err != nil || p < 1 || p > 65535 {
		return fmt.Errorf("%s=%q: want a number from 1 to 65535", name, v)
	}
	return nil
}

// setServiceURL stores a URL, even one of the wrong scheme, so that
// checkAcross still sees which services were meant.
func setServiceURL(field func(*Config) *string, schemes ...string) configSetter {
	return func(c *Config, name, v string) error {
		*field(c) = v
		u, err := url.Parse(v)
		if err != nil || !slices.Contains(schemes, u.Scheme) {
			return fmt.Errorf("%s: want a URL starting with %s://", name, strings.Join(schemes, ":// or "))
		}
		return nil
	}
}

func setQueryMode(c *Config, name, v string) error {
	if _, known := postgres.QueryModes[v]; !known {
		return fmt.Errorf("%s=%q: want cache_statement, cache_describe, describe_exec, exec or simple_protocol (behind PgBouncer in transaction mode: cache_describe, exec or simple_protocol)", name, v)
	}
	c.DatabaseQueryMode = v
	return nil
}

// setJWTSecret stores even a short secret: it was given, so checkAcross
// neither generates one nor calls it missing.
func setJWTSecret(c *Config, name, v string) error {
	c.JWTSecret = []byte(v)
	if len(v) < minSecret {
		return fmt.Errorf("%s is %d bytes: want at least %d (e.g. `openssl rand -hex 32`)", name, len(v), minSecret)
	}
	return nil
}

func setTURNSecret(c *Config, _, v string) error {
	c.TURNSecret = []byte(v)
	return nil
}

func setOrigins(c *Config, name, v string) error {
	var errs []error
	c.AllowedOrigins = nil
	for _, o := range strings.Split(v, ",") {
		o = strings.TrimRight(strings.TrimSpace(o), "/")
		if o == "" {
			continue
		}
		u, err := url.Parse(o)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Path != "" || u.RawQuery != "" {
			errs = append(errs, fmt.Errorf("%s: %q is not an origin like https://chat.example.com", name, o))
			continue
		}
		c.AllowedOrigins = append(c.AllowedOrigins, u.Scheme+"://"+u.Host)
	}
	if len(c.AllowedOrigins) == 0 {
		errs = append(errs, fmt.Errorf("%s: no origin given", name))
	}
	return errors.Join(errs...)
}

func setLogLevel(c *Config, name, v string) error {
	if err := c.LogLevel.UnmarshalText([]byte(v)); err != nil {
		return fmt.Errorf("%s=%q: want debug, info, warn or error", name, v)
	}
	return nil
}

// duration reads a Go duration or a bare number of seconds. With orOff, 0
// or "off" store 0, which turns the feature off.
func setDuration(field func(*Config) *time.Duration, orOff bool) configSetter {
	return func(c *Config, name, v string) error {
		if orOff && (v == "0" || strings.EqualFold(v, "off")) {
			*field(c) = 0
			return nil
		}
		d, err := time.ParseDuration(v)
		if err != nil {
			if secs, e := strconv.Atoi(v); e == nil {
				d, err = time.Duration(secs)*time.Second, nil
			}
		}
		if err != nil || d <= 0 {
			off := ""
			if orOff {
				off = ", or 0 or off"
			}
			return fmt.Errorf("%s=%q: want a positive duration such as 30s or 1h (a bare number is seconds)%s", name, v, off)
		}
		*field(c) = d
		return nil
	}
}

func setCount(field func(*Config) *int) configSetter {
	return func(c *Config, name, v string) error {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || n > 1_000_000 {
			return fmt.Errorf("%s=%q: want a count from 0 to 1000000", name, v)
		}
		*field(c) = n
		return nil
	}
}

func setHistoryLimit(c *Config, name, v string) error {
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 || n > 100000 {
		return fmt.Errorf("%s=%q: want a count from 0 (none kept) to 100000", name, v)
	}
	c.CableHistory.Limit = n
	return nil
}

// setURLList reads comma-separated URLs, keeping those of the right scheme.
func setURLList(field func(*Config) *[]string, schemes ...string) configSetter {
	return func(c *Config, name, v string) error {
		var out []string
		var errs []error
		for _, u := range strings.Split(v, ",") {
			if u = strings.TrimSpace(u); u == "" {
				continue
			}
			scheme, _, _ := strings.Cut(u, ":")
			if !slices.Contains(schemes, scheme) {
				//nolint:staticcheck // ST1005: the message ends with the scheme separator it asks for
				errs = append(errs, fmt.Errorf("%s: %q must start with %s:", name, u, strings.Join(schemes, ": or ")))
				continue
			}
			out = append(out, u)
		}
		*field(c) = out
		return errors.Join(errs...)
	}
}

func setRateLimitsSwitch(c *Config, name, v string) error {
	switch strings.ToLower(v) {
	case "on":
	case "off":
		c.RateLimitsOff = true
	default:
		return fmt.Errorf("%s=%q: want on (the default) or off", name, v)
	}
	return nil
}

// setRateLimit reads the rule of limit n. Config.RateLimits holds overrides
// only, so the default, which LoadConfig parses too, is not stored.
func setRateLimit(n ratelimit.Name) configSetter {
	return func(c *Config, name, v string) error {
		r, err := ratelimit.ParseRule(v)
		if err != nil {
			return fmt.Errorf("%s=%w", name, err)
		}
		if r == ratelimit.Defaults()[n] {
			return nil
		}
		if c.RateLimits == nil {
			c.RateLimits = ratelimit.Rules{}
		}
		c.RateLimits[n] = r
		return nil
	}
}

func setTrustedProxies(c *Config, name, v string) error {
	var err error
	c.TrustedProxies, err = parseNetworks(name, v)
	return err
}

func setSharedAddresses(c *Config, name, v string) error {
	switch strings.ToLower(v) {
	case "private":
		c.SharedAddresses = slices.Clone(PrivateNetworks)
	case "none":
		c.SharedAddresses = nil
	default:
		var err error
		c.SharedAddresses, err = parseNetworks(name, v)
		return err
	}
	return nil
}

// networks reads comma-separated addresses and networks, keeping those it
// can read.
func parseNetworks(name, v string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	var errs []error
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		p, err := netip.ParsePrefix(s)
		if err != nil {
			if a, e := netip.ParseAddr(s); e == nil {
				p, err = a.Prefix(a.BitLen())
			}
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %q is not an address or a network like 10.0.0.0/8", name, s))
			continue
		}
		out = append(out, p)
	}
	return out, errors.Join(errs...)
}

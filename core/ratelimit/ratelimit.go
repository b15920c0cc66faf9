// Package ratelimit holds the abuse limits: which actions are limited, by
// what key and how much (the Policy and its Rules), and the port that counts
// (Limiter), implemented on Redis so that every instance shares one count,
// and in memory for tests and the single-process mode.
//
// Each rule is a fixed window per key: the first take starts a window of
// Rule.Window, the first Rule.Limit takes in it are allowed, the rest are
// denied until it ends. A client can therefore get up to twice the limit
// across a window boundary; the limits are abuse guards, not quotas, and one
// atomic counter per key is cheap enough to run on every message.
//
// The login rules count failed attempts only: a login takes before it
// checks the password (so that a burst cannot run past the limit) and a
// successful one gives its take back (Refund). A user who signs in often is
// never refused, and a correct password is refused only where that key has
// failed too often already.
//
// Per-address rules assume that an address is one client. Where it may not
// be (the web client's server calling /auth/* for everybody, a NAT), the
// REST port counts registrations under RegisterShared instead of RegisterIP
// and leaves LoginIP out: guessing is then stopped per email and by the
// account lockout, not by an address that every user shares.
//
// When the limiter fails (Redis down), the login rules fail closed, with an
// Unavailable error (503): they exist to stop password guessing, which an
// outage must not open the door to, and login needs Redis afterwards anyway
// for the token denylist. Every other rule fails open with a warning: during
// an outage it is better that chat keeps working unlimited than that it stops.
package ratelimit

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"maps"
	"strconv"
	"strings"
	"time"

	"github.com/chatterly/chatterly/core"
)

// Rule allows Limit takes per key in each Window. A Limit of zero or less
// means unlimited.
type Rule struct {
	Limit  int
	Window time.Duration
}

// Unlimited reports whether the rule never denies.
func (r Rule) Unlimited() bool { return r.Limit <= 0 || r.Window <= 0 }

func (r Rule) String() string {
	if r.Unlimited() {
		return "unlimited"
	}
	return fmt.Sprintf("%d/%s", r.Limit, r.Window)
}

// ParseRule reads a rule written as "<limit>/<window>": "20/10s", "5/m"
// (a bare unit is one of it), "100/1h30m". "0" and "off" are unlimited.
func ParseRule(s string) (Rule, error) {
	s = strings.TrimSpace(s)
	if s == "0" || strings.EqualFold(s, "off") {
		return Rule{}, nil
	}
	n, w, ok := strings.Cut(s, "/")
	if !ok {
		return Rule{}, fmt.Errorf("%q: want <limit>/<window> such as 20/10s, or off", s)
	}
	limit, err := strconv.Atoi(strings.TrimSpace(n))
	if err != nil || limit < 0 {
		return Rule{}, fmt.Errorf("%q: the limit must be a whole number of 0 or more", s)
	}
	w = strings.TrimSpace(w)
	if w != "" && (w[0] < '0' || w[0] > '9') {
		w = "1" + w
	}
	window, err := time.ParseDuration(w)
	if err != nil || window < time.Millisecond {
		return Rule{}, fmt.Errorf("%q: the window must be a duration of at least 1ms such as 10s, 1m or h", s)
	}
	if limit == 0 {
		return Rule{}, nil
	}
	return Rule{Limit: limit, Window: window}, nil
}

// Limiter counts takes per key. Implementations: redis.RateLimiter (shared
// by every instance) and memory.RateLimiter.
type Limiter interface {
	// Take counts one take against key under rule, which must not be
	// Unlimited. It reports whether the take is within rule.Limit for the
	// current window and, when it is not, how long until the window ends
	// (0 < retryAfter <= rule.Window). Denied takes do not extend the
	// window. Unavailable when the backend cannot be reached; Internal for
	// anything else.
	Take(ctx context.Context, key string, rule Rule) (allowed bool, retryAfter time.Duration, err error)
	// Refund gives back one take allowed under rule in key's current
	// window, so that it no longer counts; it does nothing when the window
	// has ended or holds no take. Unavailable when the backend cannot be
	// reached; Internal for anything else.
	Refund(ctx context.Context, key string, rule Rule) error
}

// Name names a limited action.
type Name string

// The limited actions and the key each is counted by.
const (
	LoginIP        Name = "login_ip"        // failed POST /auth/login, per client address
	LoginEmail     Name = "login_email"     // failed POST /auth/login, per email (case-insensitive)
	RegisterIP     Name = "register_ip"     // POST /auth/register, per client address
	RegisterShared Name = "register_shared" // POST /auth/register, per address that many people may share
	Messages       Name = "messages"        // message sends, per user
	Reactions      Name = "reactions"       // reactions added, per user
	Conversations  Name = "conversations"   // conversations created, per user
	Typing         Name = "typing"          // typing / stop_typing, per user; the excess is dropped silently
	Signals        Name = "signals"         // WebRTC send_signal, per user
	Reads          Name = "reads"           // read markers set, per user
)

// Names lists every limited action, in a stable order.
var Names = []Name{LoginIP, LoginEmail, RegisterIP, RegisterShared, Messages, Reactions, Conversations, Typing, Signals, Reads}

// Rules are the limits by action. An action without a rule is unlimited.
type Rules map[Name]Rule

// Defaults are the limits a server starts with. Messages follow what the
// original application intended (20 per 10 s); signals are generous because
// a call setup sends a burst of ICE candidates; the login limits sit above
// the account lockout (10 failures), which is what stops guessing one
// password, and registration is counted over an hour to slow account farming.
// A shared address stands for a whole site's sign-ups, so its ceiling only
// stops a flood. Read markers come as often as a client scrolls, so they
// get more room than messages; their events are coalesced besides.
func Defaults() Rules {
	return Rules{
		LoginIP:        {Limit: 30, Window: 5 * time.Minute},
		LoginEmail:     {Limit: 20, Window: 5 * time.Minute},
		RegisterIP:     {Limit: 30, Window: time.Hour},
		RegisterShared: {Limit: 1000, Window: time.Hour},
		Messages:       {Limit: 20, Window: 10 * time.Second},
		Reactions:      {Limit: 30, Window: 10 * time.Second},
		Conversations:  {Limit: 10, Window: time.Minute},
		Typing:         {Limit: 20, Window: 10 * time.Second},
		Signals:        {Limit: 200, Window: 10 * time.Second},
		Reads:          {Limit: 30, Window: 10 * time.Second},
	}
}

// failClosed are the rules that deny while the limiter is down; see the package doc.
var failClosed = map[Name]bool{LoginIP: true, LoginEmail: true}

// Policy applies Rules through a Limiter. A nil *Policy limits nothing.
type Policy struct {
	limiter Limiter
	rules   Rules
	log     *slog.Logger
}

// NewPolicy returns a Policy counting with l. rules is copied; log may be nil.
func NewPolicy(l Limiter, rules Rules, log *slog.Logger) *Policy {
	if log == nil {
		log = slog.Default()
	}
	return &Policy{limiter: l, rules: maps.Clone(rules), log: log}
}

// Rule returns the rule for name; the zero Rule (unlimited) when there is none.
func (p *Policy) Rule(name Name) Rule {
	if p == nil {
		return Rule{}
	}
	return p.rules[name]
}

// Check counts one action name by key (a user id, an IP, an email). It
// returns a RateLimited error whose RetryAfterSeconds (whole seconds, at
// least 1) says when the window ends, or, for the login rules while the
// limiter is down, an Unavailable error; nil otherwise.
func (p *Policy) Check(ctx context.Context, name Name, key string) error {
	rule := p.Rule(name)
	if rule.Unlimited() {
		return nil
	}
	allowed, retryAfter, err := p.limiter.Take(ctx, limiterKey(name, key), rule)
	if err != nil {
		if failClosed[name] {
			return core.Wrap(core.Unavailable, "rate limiter unavailable", err)
		}
		p.log.WarnContext(ctx, "rate limiter failed; allowing", "rule", string(name), "err", err)
		return nil
	}
	if allowed {
		return nil
	}
	secs := max(int((retryAfter+time.Second-1)/time.Second), 1)
	unit := "seconds"
	if secs == 1 {
		unit = "second"
	}
	return &core.Error{
		Kind:              core.RateLimited,
		Message:           fmt.Sprintf("Too many requests, try again in %d %s", secs, unit),
		RetryAfterSeconds: secs,
	}
}

// Refund gives back a take that Check allowed for name and key, for rules
// that count failures only (the login rules after a successful login). A
// failure is logged, not returned: the attempt it would refund has
// succeeded already, and the take expires with its window.
func (p *Policy) Refund(ctx context.Context, name Name, key string) {
	rule := p.Rule(name)
	if rule.Unlimited() {
		return
	}
	if err := p.limiter.Refund(ctx, limiterKey(name, key), rule); err != nil {
		p.log.WarnContext(ctx, "rate limiter refund failed", "rule", string(name), "err", err)
	}
}

// limiterKey hashes the caller's key: emails are personal data that do not
// belong in Redis key names, and a client-chosen key must not grow them
// without bound.
func limiterKey(name Name, key string) string {
	sum := sha256.Sum256([]byte(key))
	return string(name) + ":" + hex.EncodeToString(sum[:16])
}

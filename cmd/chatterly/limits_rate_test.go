package main_test

import (
	"maps"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/chatterly/chatterly/adapters/memory"
	main "github.com/chatterly/chatterly/cmd/chatterly"
	"github.com/chatterly/chatterly/core/ratelimit"
)

// raised returns cfg with the named limits raised far beyond anything a test
// sends, for tests whose fixtures legitimately exceed the defaults (many
// users registered from one address, bursts of messages). The others keep
// their defaults.
func raised(cfg main.Config, names ...ratelimit.Name) main.Config {
	over := ratelimit.Rules{}
	for _, n := range names {
		if !slices.Contains(ratelimit.Names, n) {
			panic("raised: no limit named " + string(n))
		}
		over[n] = ratelimit.Rule{Limit: 1_000_000, Window: time.Second}
	}
	return limited(cfg, over)
}

// limited returns cfg with rules over its limits.
func limited(cfg main.Config, rules ratelimit.Rules) main.Config {
	over := maps.Clone(cfg.RateLimits)
	if over == nil {
		over = ratelimit.Rules{}
	}
	maps.Copy(over, rules)
	cfg.RateLimits = over
	return cfg
}

// assertLimited checks a 429: Retry-After in whole seconds within
// (0, window], repeated in the JSON body. It returns the seconds.
func assertLimited(t *testing.T, r response, window time.Duration) int {
	t.Helper()
	require.Equal(t, http.StatusTooManyRequests, r.status, "%s", r.raw)
	secs, err := strconv.Atoi(r.header.Get("Retry-After"))
	require.NoError(t, err, "Retry-After %q is whole seconds", r.header.Get("Retry-After"))
	assert.GreaterOrEqual(t, secs, 1)
	assert.LessOrEqual(t, secs, int((window+time.Second-1)/time.Second))
	body := r.json(t)
	assert.ElementsMatch(t, []string{"error", "message", "retry_after"}, keys(body), "%s", r.raw)
	assert.Equal(t, "rate_limited", body["error"])
	assert.NotEmpty(t, body["message"])
	assert.Equal(t, float64(secs), body["retry_after"], "the body repeats Retry-After")
	return secs
}

// The acceptance case: 25 rapid messages from one user at the default
// limit; the first 20 get 201, the rest 429, and nobody else is affected.
func TestRateLimitMessages(t *testing.T) {
	eachMode(t, func(t *testing.T, m mode) {
		t.Run("default limit", func(t *testing.T) {
			s := start(t, m.config(t))
			alice, bob := s.register("alice"), s.register("bob")
			cid := num(t, s.createDirect(t, alice, bob)["id"])

			var statuses []int
			var last response
			for i := range 25 {
				last = s.do("POST", messagesPath(cid), alice.token, map[string]any{"content": "burst " + itoa(int64(i))})
				statuses = append(statuses, last.status)
			}
			want := append(slices.Repeat([]int{http.StatusCreated}, 20), slices.Repeat([]int{http.StatusTooManyRequests}, 5)...)
			require.Equal(t, want, statuses)
			assertLimited(t, last, 10*time.Second)

			s.send(t, bob, cid, "bob has a limit of his own")
			page, _ := s.page(t, alice, cid, "limit=50")
			assert.Len(t, page, 21, "the refused messages were not stored")
		})

		t.Run("sending works again after the window", func(t *testing.T) {
			window := 2 * time.Second
			s := start(t, limited(m.config(t), ratelimit.Rules{ratelimit.Messages: {Limit: 3, Window: window}}))
			alice, bob := s.register("alice"), s.register("bob")
			cid := num(t, s.createDirect(t, alice, bob)["id"])
			for range 3 {
				s.send(t, alice, cid, "within the limit")
			}
			r := s.do("POST", messagesPath(cid), alice.token, map[string]any{"content": "over"})
			secs := assertLimited(t, r, window)

			time.Sleep(time.Duration(secs) * time.Second)
			s.send(t, alice, cid, "after Retry-After")
		})
	})
}

// Each REST limit answers 429 once exceeded, counted by its own key.
func TestRateLimitREST(t *testing.T) {
	eachMode(t, func(t *testing.T, m mode) {
		t.Run("login per email", func(t *testing.T) {
			s := start(t, limited(m.config(t), ratelimit.Rules{ratelimit.LoginEmail: {Limit: 3, Window: time.Minute}}))
			alice, bob := s.register("alice"), s.register("bob")
			login := func(email, password string) response {
				return s.do("POST", "/auth/login", "", map[string]any{"user": map[string]any{"email": email, "password": password}})
			}
			assert.Equal(t, http.StatusUnauthorized, login(alice.email, "wrong-password").status)
			assert.Equal(t, http.StatusOK, login(alice.email, alice.password).status)
			assert.Equal(t, http.StatusOK, login(" ALICE@example.com ", alice.password).status, "successful logins do not count")
			assert.Equal(t, http.StatusUnauthorized, login(" ALICE@example.com ", "wrong-password").status)
			assert.Equal(t, http.StatusUnauthorized, login("alice@example.com", "wrong-password").status)
			r := login(alice.email, alice.password)
			assertLimited(t, r, time.Minute)
			assert.Empty(t, r.header.Get("Authorization"), "no token past the limit, even with the right password")
			assertLimited(t, login("Alice@Example.com", "wrong-password"), time.Minute)
			assert.Equal(t, http.StatusOK, login(bob.email, bob.password).status, "another email")
		})

		t.Run("login per IP, X-Forwarded-For not trusted", func(t *testing.T) {
			s := start(t, limited(m.config(t), ratelimit.Rules{ratelimit.LoginIP: {Limit: 4, Window: time.Minute}}))
			alice := s.register("alice")
			for i := range 4 {
				r := s.do("POST", "/auth/login", "", map[string]any{"user": map[string]any{"email": "nobody" + itoa(int64(i)) + "@example.com", "password": "x"}},
					"X-Forwarded-For", "203.0.113."+itoa(int64(i)))
				assert.Equal(t, http.StatusUnauthorized, r.status, "%s", r.raw)
			}
			r := s.do("POST", "/auth/login", "", map[string]any{"user": map[string]any{"email": alice.email, "password": alice.password}},
				"X-Forwarded-For", "198.51.100.1", "X-Real-IP", "198.51.100.2")
			assertLimited(t, r, time.Minute)
		})

		t.Run("register per IP", func(t *testing.T) {
			s := start(t, limited(m.config(t), ratelimit.Rules{ratelimit.RegisterIP: {Limit: 3, Window: time.Hour}}))
			for _, name := range []string{"alice", "bob", "carol"} {
				s.register(name)
			}
			r := s.do("POST", "/auth/register", "", map[string]any{"user": map[string]any{
				"email": "dave@example.com", "password": "password-dave", "username": "dave"}})
			secs := assertLimited(t, r, time.Hour)
			assert.Greater(t, secs, 3500, "the window is an hour")
			assert.Empty(t, r.header.Get("Authorization"))
		})

		t.Run("reactions and conversations per user", func(t *testing.T) {
			s := start(t, limited(m.config(t), ratelimit.Rules{
				ratelimit.Reactions:     {Limit: 2, Window: time.Minute},
				ratelimit.Conversations: {Limit: 2, Window: time.Minute},
			}))
			alice, bob, carol := s.register("alice"), s.register("bob"), s.register("carol")
			g := num(t, s.createGroup(t, alice, "g", bob, carol)["id"])
			s.createDirect(t, alice, bob)
			assertLimited(t, s.do("POST", conversationsPath, alice.token, map[string]any{"conversation_type": "direct", "member_ids": []int64{carol.id}}), time.Minute)
			s.createDirect(t, bob, carol)

			mid := num(t, s.send(t, bob, g, "react to me")["id"])
			s.react(t, alice, mid, "👍")
			s.react(t, alice, mid, "🎉")
			assertLimited(t, s.do("POST", "/api/v1/reactions", alice.token, map[string]any{"reaction": map[string]any{"message_id": mid, "emoji": "🚀"}}), time.Minute)
			s.react(t, carol, mid, "🚀")
		})

		t.Run("RATE_LIMITS=off", func(t *testing.T) {
			cfg := limited(m.config(t), ratelimit.Rules{ratelimit.Messages: {Limit: 1, Window: time.Minute}})
			cfg.RateLimitsOff = true
			s := start(t, cfg)
			alice, bob := s.register("alice"), s.register("bob")
			cid := num(t, s.createDirect(t, alice, bob)["id"])
			for i := range 30 {
				s.send(t, alice, cid, "unlimited "+itoa(int64(i)))
			}
		})
	})
}

// Behind a trusted proxy, each client address named in X-Forwarded-For has
// its own count.
func TestRateLimitTrustedProxy(t *testing.T) {
	cfg := limited(modes[0].config(t), ratelimit.Rules{ratelimit.LoginIP: {Limit: 1, Window: time.Minute}})
	cfg.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}
	s := start(t, cfg)
	login := func(xff string) response {
		return s.do("POST", "/auth/login", "", map[string]any{"user": map[string]any{"email": "nobody@example.com", "password": "x"}}, "X-Forwarded-For", xff)
	}
	assert.Equal(t, http.StatusUnauthorized, login("203.0.113.1").status)
	assertLimited(t, login("203.0.113.1"), time.Minute)
	assert.Equal(t, http.StatusUnauthorized, login("203.0.113.2").status, "another client behind the proxy")
	// The nearest untrusted address counts, not what the client prepends.
	assertLimited(t, login("10.9.9.9, 203.0.113.2"), time.Minute)
}

// While the limiter is down, login refuses (503) and the rest allows.
func TestRateLimiterDown(t *testing.T) {
	l := memory.NewRateLimiter()
	s := start(t, modes[0].config(t), func(a *main.Adapters) { a.Limiter = l })
	alice, bob := s.register("alice"), s.register("bob")
	cid := num(t, s.createDirect(t, alice, bob)["id"])

	l.SetUnavailable(true)
	r := s.do("POST", "/auth/login", "", map[string]any{"user": map[string]any{"email": alice.email, "password": alice.password}})
	assert.Equal(t, http.StatusServiceUnavailable, r.status, "%s", r.raw)
	assert.Empty(t, r.header.Get("Authorization"))
	for range 25 {
		s.send(t, alice, cid, "chat keeps working")
	}
	assert.Equal(t, http.StatusCreated, s.do("POST", "/auth/register", "", map[string]any{"user": map[string]any{
		"email": "carol@example.com", "password": "password-carol", "username": "carol"}}).status)
	assert.Contains(t, s.logs.String(), "rate limiter failed; allowing")

	l.SetUnavailable(false)
	s.login(t, alice)
}

// Over the send_signal limit, the CallChannel subscription is told with a
// transmit on its identifier and the connection stays open; typing notices
// over the limit are dropped without a word.
func TestRateLimitCable(t *testing.T) {
	eachMode(t, func(t *testing.T, m mode) {
		s := start(t, limited(m.config(t), ratelimit.Rules{
			ratelimit.Signals: {Limit: 5, Window: time.Minute},
			ratelimit.Typing:  {Limit: 3, Window: time.Minute},
		}))

		t.Run("send_signal", func(t *testing.T) {
			u := s.freshUsers()
			cid := num(t, s.createDirect(t, u.alice, u.bob)["id"])
			alice, bob := s.callClient(t, u.alice, true), s.callClient(t, u.bob, true)
			id := num(t, s.startCall(t, u.alice, cid, "audio")["id"])
			s.acceptCall(t, u.bob, cid, id)

			for range 7 {
				sendSignal(alice, id, u.bob.id, iceSignal)
			}
			for range 5 {
				expectSignal(t, bob, id, u.alice.id, iceSignal)
			}
			bob.expectNone(t, onIdent(callIdent, ofType("signal")), wsQuiet)

			isError := onIdent(callIdent, func(msg map[string]any) bool { return msg["error"] != nil })
			for range 2 {
				f := alice.expect(t, isError)
				assert.ElementsMatch(t, []string{"identifier", "message"}, keys(f), "%v", f)
				msg := obj(t, f["message"])
				assert.ElementsMatch(t, []string{"error", "message"}, keys(msg), "%v", msg)
				assert.Equal(t, "rate_limit", msg["error"])
				assert.NotEmpty(t, msg["message"])
			}
			alice.expectNone(t, isError, wsQuiet)

			// The connection is still open and serves commands.
			alice.mustConfirm(t, convIdent(cid))
			callAction(alice, "end_call", id)
			expectCall(t, bob, "call_ended", id)
		})

		t.Run("typing", func(t *testing.T) {
			u := s.freshUsers()
			g := num(t, s.createGroup(t, u.alice, "g", u.bob)["id"])
			alice, bob := s.convWatcher(t, u.alice, g), s.convWatcher(t, u.bob, g)
			for range 6 {
				alice.perform(convIdent(g), map[string]any{"action": "typing"})
			}
			alice.perform(convIdent(g), map[string]any{"action": "stop_typing"})
			for range 3 {
				bob.expectEvent(t, convIdent(g), "typing_start")
			}
			bob.expectEvent(t, convIdent(g), "typing_stop")
			bob.expectNone(t, onIdent(convIdent(g), ofType("typing_start")), wsQuiet)
			alice.expectNone(t, func(f map[string]any) bool {
				msg, _ := f["message"].(map[string]any)
				return msg != nil && msg["error"] != nil
			}, wsQuiet)

			// Other users, and the connection, are unaffected.
			bob.perform(convIdent(g), map[string]any{"action": "typing"})
			alice.expectEvent(t, convIdent(g), "typing_start")
			msg := s.send(t, u.bob, g, "still connected")
			ev := alice.expectEvent(t, convIdent(g), "new_message")
			assert.Equal(t, msg["id"], obj(t, ev["message"])["id"])
		})
	})
}

// Two instances on one Redis share every count.
func TestRateLimitSharedAcrossInstances(t *testing.T) {
	cfg := limited(modes[1].config(t), ratelimit.Rules{
		ratelimit.Messages:   {Limit: 4, Window: time.Minute},
		ratelimit.RegisterIP: {Limit: 3, Window: time.Hour},
	})
	a, b := start(t, cfg), start(t, cfg)
	alice, bob := a.register("alice"), b.register("bob")
	a.register("carol")
	r := b.do("POST", "/auth/register", "", map[string]any{"user": map[string]any{
		"email": "dave@example.com", "password": "password-dave", "username": "dave"}})
	assertLimited(t, r, time.Hour)

	cid := num(t, a.createDirect(t, alice, bob)["id"])
	a.send(t, alice, cid, "1 on A")
	b.send(t, alice, cid, "2 on B")
	a.send(t, alice, cid, "3 on A")
	b.send(t, alice, cid, "4 on B")
	assertLimited(t, a.do("POST", messagesPath(cid), alice.token, map[string]any{"content": "5 on A"}), time.Minute)
	assertLimited(t, b.do("POST", messagesPath(cid), alice.token, map[string]any{"content": "5 on B"}), time.Minute)
	b.send(t, bob, cid, "bob counts apart")
}

// loginBody is POST /auth/login's body.
func loginBody(email, password string) map[string]any {
	return map[string]any{"user": map[string]any{"email": email, "password": password}}
}

// The web client's server calls /auth/* for every user from its own address
// without X-Forwarded-For. With the default settings that address is shared:
// a site's worth of sign-ups and sign-ins goes through, a flood of wrong
// passwords does not lock everyone else out, and guessing is still stopped
// per account and per email.
func TestRateLimitBehindTheWebClient(t *testing.T) {
	defaults, err := main.LoadConfig(func(string) string { return "" })
	require.NoError(t, err)
	eachMode(t, func(t *testing.T, m mode) {
		cfg := m.config(t)
		require.Empty(t, cfg.RateLimits, "the default limits")
		cfg.SharedAddresses = defaults.SharedAddresses
		s := start(t, cfg)

		accounts := make([]account, 200)
		for i := range accounts {
			accounts[i] = s.register("user" + itoa(int64(i)))
		}
		for i := range 500 {
			a := accounts[i%len(accounts)]
			r := s.do("POST", "/auth/login", "", loginBody(a.email, a.password))
			require.Equal(t, http.StatusOK, r.status, "login %d: %s", i+1, r.raw)
		}
		for i := range 1000 {
			r := s.do("POST", "/auth/login", "", loginBody("nobody"+itoa(int64(i))+"@example.com", "wrong-password"))
			require.Equal(t, http.StatusUnauthorized, r.status, "wrong password %d: %s", i+1, r.raw)
		}
		s.login(t, accounts[7])

		victim := accounts[9]
		for range 10 {
			assert.Equal(t, http.StatusUnauthorized, s.do("POST", "/auth/login", "", loginBody(victim.email, "guess")).status)
		}
		r := s.do("POST", "/auth/login", "", loginBody(victim.email, victim.password))
		assert.Equal(t, http.StatusUnauthorized, r.status)
		assert.JSONEq(t, `{"error":"Your account is locked."}`, string(r.raw), "10 failures lock the account")

		for range 20 {
			assert.Equal(t, http.StatusUnauthorized, s.do("POST", "/auth/login", "", loginBody("ghost@example.com", "guess")).status)
		}
		assertLimited(t, s.do("POST", "/auth/login", "", loginBody("ghost@example.com", "guess")), 5*time.Minute)
		s.login(t, accounts[8])
	})
}

// From an address that is one client's, the login limits count failures:
// signing in often is never refused, failing often is, right password or not.
func TestRateLimitLoginCountsFailures(t *testing.T) {
	eachMode(t, func(t *testing.T, m mode) {
		t.Run("per address", func(t *testing.T) {
			s := start(t, limited(m.config(t), ratelimit.Rules{ratelimit.LoginIP: {Limit: 3, Window: time.Minute}}))
			alice, bob := s.register("alice"), s.register("bob")
			for range 10 {
				s.login(t, alice)
			}
			for _, email := range []string{alice.email, bob.email, "nobody@example.com"} {
				assert.Equal(t, http.StatusUnauthorized, s.do("POST", "/auth/login", "", loginBody(email, "wrong-password")).status)
			}
			r := s.do("POST", "/auth/login", "", loginBody(bob.email, bob.password))
			assertLimited(t, r, time.Minute)
			assert.Empty(t, r.header.Get("Authorization"))
		})

		t.Run("per email", func(t *testing.T) {
			s := start(t, limited(m.config(t), ratelimit.Rules{ratelimit.LoginEmail: {Limit: 2, Window: time.Minute}}))
			alice, bob := s.register("alice"), s.register("bob")
			for range 5 {
				s.login(t, alice)
			}
			for range 2 {
				assert.Equal(t, http.StatusUnauthorized, s.do("POST", "/auth/login", "", loginBody(alice.email, "wrong-password")).status)
			}
			assertLimited(t, s.do("POST", "/auth/login", "", loginBody(alice.email, alice.password)), time.Minute)
			s.login(t, bob)
		})
	})
}

// Which addresses are one client's: one that a trusted proxy forwarded
// (unless it lies in a shared network), and a peer that is neither a
// trusted proxy nor in a shared network.
func TestRateLimitSharedAddresses(t *testing.T) {
	cfg := limited(modes[0].config(t), ratelimit.Rules{
		ratelimit.LoginIP:        {Limit: 1, Window: time.Minute},
		ratelimit.RegisterIP:     {Limit: 1, Window: time.Hour},
		ratelimit.RegisterShared: {Limit: 3, Window: time.Hour},
	})
	cfg.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}
	cfg.SharedAddresses = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	s := start(t, cfg)
	n := 0
	register := func(headers ...string) response {
		n++
		name := "user" + itoa(int64(n))
		return s.do("POST", "/auth/register", "", map[string]any{"user": map[string]any{
			"email": name + "@example.com", "password": "password-" + name, "username": name}}, headers...)
	}

	assert.Equal(t, http.StatusCreated, register("X-Forwarded-For", "203.0.113.1").status)
	assertLimited(t, register("X-Forwarded-For", "203.0.113.1"), time.Hour)
	assert.Equal(t, http.StatusCreated, register("X-Forwarded-For", "203.0.113.2").status, "another client behind the proxy")

	// The proxy's own calls, and a forwarded address in a shared network,
	// count under the shared ceiling, each address apart.
	for range 3 {
		assert.Equal(t, http.StatusCreated, register().status)
	}
	assertLimited(t, register(), time.Hour)
	for range 3 {
		assert.Equal(t, http.StatusCreated, register("X-Forwarded-For", "10.1.2.3").status)
	}
	assertLimited(t, register("X-Forwarded-For", "10.1.2.3"), time.Hour)

	for range 5 {
		assert.Equal(t, http.StatusUnauthorized, s.do("POST", "/auth/login", "", loginBody("nobody@example.com", "x")).status,
			"no per-address login limit for the proxy's own calls")
		assert.Equal(t, http.StatusUnauthorized, s.do("POST", "/auth/login", "", loginBody("nobody@example.com", "x"), "X-Forwarded-For", "10.9.9.9").status)
	}
	assert.Equal(t, http.StatusUnauthorized, s.do("POST", "/auth/login", "", loginBody("nobody@example.com", "x"), "X-Forwarded-For", "203.0.113.9").status)
	assertLimited(t, s.do("POST", "/auth/login", "", loginBody("nobody@example.com", "x"), "X-Forwarded-For", "203.0.113.9"), time.Minute)
}

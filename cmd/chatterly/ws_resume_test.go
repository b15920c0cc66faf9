package main_test

import (
	"crypto/rand"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	main "github.com/chatterly/chatterly/cmd/chatterly"
	"github.com/chatterly/chatterly/core/chat"
	"github.com/chatterly/chatterly/ports/ws"
)

// The extended protocol (actioncable-v1-ext-json), as @anycable/core
// speaks it: positions on every event, history replayed once and in order,
// sessions resumed by sid without resurrecting rights.

// extConfig keeps histories, as LoadConfig does by default.
func extConfig(c main.Config) main.Config {
	c.CableHistory = chat.HistoryConfig{Limit: chat.DefaultHistoryLimit, TTL: chat.DefaultHistoryTTL}
	c.CableSessionTTL = time.Minute
	return c
}

// extCable connects as a with the extended protocol (sid resumes a
// session when not empty) and returns the client and its welcome.
func (s *stack) extCable(t *testing.T, a account, sid string) (*wsClient, map[string]any) {
	t.Helper()
	d := &websocket.Dialer{Subprotocols: []string{"actioncable-v1-ext-json"}, HandshakeTimeout: wsWait}
	u := cableURL(s, a.token)
	if sid != "" {
		u += "&sid=" + url.QueryEscape(sid)
	}
	conn, resp, err := dialCable(d, u, nil)
	require.NoError(t, err)
	require.Equal(t, "actioncable-v1-ext-json", conn.Subprotocol())
	c := newClient(t, conn, resp)
	welcome := c.next(t)
	require.Equal(t, "welcome", welcome["type"], "%v", welcome)
	return c, welcome
}

// extSubscribe subscribes with a history request (nil: none) and returns
// the frames up to confirm_history, or to the confirmation without one.
func (c *wsClient) extSubscribe(t *testing.T, identifier string, history map[string]any) {
	t.Helper()
	cmd := map[string]any{"command": "subscribe", "identifier": identifier}
	if history != nil {
		cmd["history"] = history
	}
	c.send(cmd)
	c.expect(t, onIdentType(identifier, "confirm_subscription"))
}

func onIdentType(identifier, typ string) func(map[string]any) bool {
	return func(m map[string]any) bool { return m["identifier"] == identifier && m["type"] == typ }
}

// position is an event frame's place in its stream.
type position struct {
	stream, epoch string
	offset        int64
}

func positionOf(t *testing.T, f map[string]any) position {
	t.Helper()
	stream, _ := f["stream_id"].(string)
	epoch, _ := f["epoch"].(string)
	require.NotEmpty(t, stream, "no stream_id in %v", f)
	require.NotEmpty(t, epoch, "no epoch in %v", f)
	return position{stream, epoch, num(t, f["offset"])}
}

// waitClosed waits until the server has let go of every socket: a closed
// connection's session is saved by then.
func (s *stack) waitClosed(t *testing.T) {
	t.Helper()
	require.Eventually(t, func() bool { return s.metric(t, "chatterly_cable_connections") == 0 }, wsWait, 10*time.Millisecond)
}

func TestWSExtProtocol(t *testing.T) {
	eachMode(t, func(t *testing.T, m mode) {
		s := start(t, extConfig(raised(m.config(t), "register_ip")))

		t.Run("events carry their position for ext clients only, and welcome a session id", func(t *testing.T) {
			u := s.freshUsers()
			g := num(t, s.createGroup(t, u.alice, "g", u.bob)["id"])
			ext, welcome := s.extCable(t, u.bob, "")
			assert.Len(t, welcome["sid"], 32)
			assert.NotContains(t, welcome, "restored")
			plain := s.cable(t, u.alice)
			ext.extSubscribe(t, convIdent(g), nil)
			plain.mustConfirm(t, convIdent(g))
			s.send(t, u.alice, g, "one")
			s.send(t, u.alice, g, "two")
			got := ext.collect(t, convIdent(g), 2)
			first, second := positionOf(t, got[0]), positionOf(t, got[1])
			assert.Equal(t, "conversation_"+itoa(g), first.stream)
			assert.Equal(t, position{first.stream, first.epoch, first.offset + 1}, second)
			for _, f := range plain.collect(t, convIdent(g), 2) {
				assert.ElementsMatch(t, []string{"identifier", "message"}, keys(f), "a plain client's frame is today's: %v", f)
			}
		})

		t.Run("a history request replays what was missed once, in order, then live events follow", func(t *testing.T) {
			u := s.freshUsers()
			g := num(t, s.createGroup(t, u.alice, "g", u.bob)["id"])
			first, _ := s.extCable(t, u.bob, "")
			first.extSubscribe(t, convIdent(g), nil)
			s.send(t, u.alice, g, "seen")
			seen := positionOf(t, first.expect(t, onIdent(convIdent(g), func(m map[string]any) bool { return m["type"] == "new_message" })))
			first.close()

			var missed []int64
			for _, text := range []string{"missed 1", "missed 2", "missed 3"} {
				missed = append(missed, num(t, s.send(t, u.alice, g, text)["id"]))
			}
			again, _ := s.extCable(t, u.bob, "")
			again.extSubscribe(t, convIdent(g), map[string]any{
				"since":   time.Now().Unix(),
				"streams": map[string]any{seen.stream: map[string]any{"epoch": seen.epoch, "offset": seen.offset}},
			})
			got := again.eventsUntil(t, convIdent(g), "confirm_history")
			require.Len(t, got, 3, "exactly the missed events")
			for i, f := range got {
				assert.Equal(t, position{seen.stream, seen.epoch, seen.offset + int64(i) + 1}, positionOf(t, f))
				assert.Equal(t, missed[i], num(t, f["message"].(map[string]any)["message"].(map[string]any)["id"]))
			}
			live := num(t, s.send(t, u.alice, g, "live")["id"])
			f := again.collect(t, convIdent(g), 1)[0]
			assert.Equal(t, live, num(t, f["message"].(map[string]any)["message"].(map[string]any)["id"]))
			again.quiet(t, "each event once")
		})

		t.Run("a position of a lost history is rejected, for the client to catch up over REST", func(t *testing.T) {
			u := s.freshUsers()
			g := num(t, s.createGroup(t, u.alice, "g", u.bob)["id"])
			s.send(t, u.alice, g, "one")
			c, _ := s.extCable(t, u.bob, "")
			c.extSubscribe(t, convIdent(g), map[string]any{
				"streams": map[string]any{"conversation_" + itoa(g): map[string]any{"epoch": "1", "offset": 1}},
			})
			c.expect(t, onIdentType(convIdent(g), "reject_history"))
			c.send(map[string]any{"command": "history", "identifier": `{"channel":"UserChannel"}`, "history": map[string]any{"since": 1}})
			c.expect(t, onIdentType(`{"channel":"UserChannel"}`, "reject_history"))
		})

		t.Run("a session resumes with its subscriptions, less a membership that ended", func(t *testing.T) {
			u := s.freshUsers()
			g := num(t, s.createGroup(t, u.alice, "g", u.bob)["id"])
			h := num(t, s.createGroup(t, u.alice, "h", u.bob)["id"])
			c, welcome := s.extCable(t, u.bob, "")
			c.extSubscribe(t, convIdent(g), nil)
			c.extSubscribe(t, convIdent(h), nil)
			c.extSubscribe(t, userIdent, nil)
			s.send(t, u.alice, g, "seen")
			seen := positionOf(t, c.expect(t, onIdent(convIdent(g), func(m map[string]any) bool { return m["type"] == "new_message" })))
			c.close()
			s.waitClosed(t)

			require.Equal(t, http.StatusOK, s.do("DELETE", membershipPath(h, u.bob.id), u.alice.token, nil).status)
			missed := num(t, s.send(t, u.alice, g, "while away")["id"])
			back, welcome2 := s.extCable(t, u.bob, welcome["sid"].(string))
			assert.Equal(t, true, welcome2["restored"], "%v", welcome2)
			assert.ElementsMatch(t, []any{convIdent(g), userIdent}, welcome2["restored_ids"], "h's membership ended")
			assert.NotEqual(t, welcome["sid"], welcome2["sid"], "a session id resumes once")
			back.send(map[string]any{"command": "history", "identifier": convIdent(g), "history": map[string]any{
				"streams": map[string]any{seen.stream: map[string]any{"epoch": seen.epoch, "offset": seen.offset}},
			}})
			got := back.eventsUntil(t, convIdent(g), "confirm_history")
			require.Len(t, got, 1)
			assert.Equal(t, missed, num(t, got[0]["message"].(map[string]any)["message"].(map[string]any)["id"]))
			s.send(t, u.alice, h, "not for bob")
			back.expectNone(t, func(m map[string]any) bool { return m["identifier"] == convIdent(h) }, 300*time.Millisecond)

			// The old sid is spent.
			back.close()
			s.waitClosed(t)
			_, third := s.extCable(t, u.bob, welcome["sid"].(string))
			assert.NotContains(t, third, "restored")
		})

		t.Run("a restored subscription asked for no history gets live events at once", func(t *testing.T) {
			u := s.freshUsers()
			g := num(t, s.createGroup(t, u.alice, "g", u.bob)["id"])
			c, welcome := s.extCable(t, u.bob, "")
			c.extSubscribe(t, convIdent(g), nil)
			c.close()
			s.waitClosed(t)
			back, welcome2 := s.extCable(t, u.bob, welcome["sid"].(string))
			require.Equal(t, true, welcome2["restored"], "%v", welcome2)
			back.send(map[string]any{"command": "history", "identifier": convIdent(g)})
			back.expect(t, onIdentType(convIdent(g), "reject_history"))
			live := num(t, s.send(t, u.alice, g, "live")["id"])
			f := back.collect(t, convIdent(g), 1)[0] // within wsWait, well before the hold's 10 s
			assert.Equal(t, live, num(t, f["message"].(map[string]any)["message"].(map[string]any)["id"]))
		})

		t.Run("a malformed history request is rejected, the subscription stands", func(t *testing.T) {
			u := s.freshUsers()
			g := num(t, s.createGroup(t, u.alice, "g", u.bob)["id"])
			c, _ := s.extCable(t, u.bob, "")
			c.send(map[string]any{"command": "subscribe", "identifier": convIdent(g), "history": "since yesterday"})
			c.expect(t, onIdentType(convIdent(g), "confirm_subscription"))
			c.expect(t, onIdentType(convIdent(g), "reject_history"))
			for _, bad := range []any{42, map[string]any{"streams": map[string]any{"conversation_" + itoa(g): map[string]any{"epoch": "1", "offset": -1}}}} {
				c.send(map[string]any{"command": "history", "identifier": convIdent(g), "history": bad})
				c.expect(t, onIdentType(convIdent(g), "reject_history"))
			}
			live := num(t, s.send(t, u.alice, g, "still subscribed")["id"])
			f := c.collect(t, convIdent(g), 1)[0]
			assert.Equal(t, live, num(t, f["message"].(map[string]any)["message"].(map[string]any)["id"]))

			plain := s.cable(t, u.alice)
			plain.send(map[string]any{"command": "subscribe", "identifier": convIdent(g), "history": "ignored"})
			plain.expect(t, onIdentType(convIdent(g), "confirm_subscription"))
			plain.expectNone(t, onIdentType(convIdent(g), "reject_history"), 200*time.Millisecond)
		})

		t.Run("history requests are bounded per connection", func(t *testing.T) {
			u := s.freshUsers()
			c, _ := s.extCable(t, u.bob, "")
			c.extSubscribe(t, userIdent, nil)
			ask := map[string]any{"command": "history", "identifier": userIdent, "history": map[string]any{"since": time.Now().Unix()}}
			for range ws.DefaultMaxSubscriptionsPerConn {
				c.send(ask)
				c.expect(t, onIdentType(userIdent, "confirm_history"))
			}
			c.send(ask)
			c.expect(t, onIdentType(userIdent, "reject_history"))
		})

		t.Run("a revoked token resumes nothing", func(t *testing.T) {
			u := s.freshUsers()
			g := num(t, s.createGroup(t, u.alice, "g", u.bob)["id"])
			c, welcome := s.extCable(t, u.bob, "")
			c.extSubscribe(t, convIdent(g), nil)
			c.close()
			s.waitClosed(t)
			require.Equal(t, http.StatusOK, s.do("DELETE", "/auth/logout", u.bob.token, nil).status)
			d := &websocket.Dialer{Subprotocols: []string{"actioncable-v1-ext-json"}, HandshakeTimeout: wsWait}
			conn, resp, err := dialCable(d, cableURL(s, u.bob.token)+"&sid="+welcome["sid"].(string), nil)
			require.NoError(t, err)
			back := newClient(t, conn, resp)
			back.expectDisconnect(t, `{"type":"disconnect","reason":"unauthorized","reconnect":false}`)
		})
	})
}

// Across instances: a session closed by one instance's shutdown resumes on
// the other, and the client misses nothing published meanwhile.
func TestMultiInstanceResume(t *testing.T) {
	cfg := extConfig(raised(modes[1].config(t), "register_ip"))
	a, b := start(t, cfg), start(t, cfg)
	u := a.freshUsers()
	g := num(t, a.createGroup(t, u.alice, "g", u.bob)["id"])
	c, welcome := a.extCable(t, u.bob, "")
	c.extSubscribe(t, convIdent(g), nil)
	b.send(t, u.alice, g, "seen")
	seen := positionOf(t, c.expect(t, onIdent(convIdent(g), func(m map[string]any) bool { return m["type"] == "new_message" })))

	a.stop() // drains: an ext client is closed without a disconnect frame, so it keeps its session
	frames, err := c.untilClosed(t)
	for _, f := range frames {
		assert.NotContains(t, f, `"disconnect"`, "a disconnect frame would make the client forget its session")
	}
	var ce *websocket.CloseError
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, websocket.CloseServiceRestart, ce.Code)

	var missed []int64
	for i := range 5 {
		missed = append(missed, num(t, b.send(t, u.alice, g, "while moving "+itoa(int64(i)))["id"]))
	}
	back, welcome2 := b.extCable(t, u.bob, welcome["sid"].(string))
	require.Equal(t, true, welcome2["restored"], "%v", welcome2)
	back.send(map[string]any{"command": "history", "identifier": convIdent(g), "history": map[string]any{
		"streams": map[string]any{seen.stream: map[string]any{"epoch": seen.epoch, "offset": seen.offset}},
	}})
	got := back.eventsUntil(t, convIdent(g), "confirm_history")
	require.Len(t, got, len(missed))
	for i, f := range got {
		assert.Equal(t, missed[i], num(t, f["message"].(map[string]any)["message"].(map[string]any)["id"]))
	}
}

// eventsUntil returns the identifier's event frames that come before its
// frame of type last, failing on a reject_history.
func (c *wsClient) eventsUntil(t *testing.T, identifier, last string) []map[string]any {
	t.Helper()
	var got []map[string]any
	for {
		m := c.expect(t, func(m map[string]any) bool {
			return m["identifier"] == identifier && (m["message"] != nil || m["type"] == last || m["type"] == "reject_history")
		})
		require.NotEqual(t, "reject_history", m["type"], "history rejected")
		if m["type"] == last {
			return got
		}
		got = append(got, m)
	}
}

// collect returns the identifier's next n event frames.
func (c *wsClient) collect(t *testing.T, identifier string, n int) []map[string]any {
	t.Helper()
	var got []map[string]any
	for len(got) < n {
		got = append(got, c.expect(t, func(m map[string]any) bool { return m["identifier"] == identifier && m["message"] != nil }))
	}
	return got
}

// Resuming costs fewer database queries than connecting afresh: the
// measure of issue 14. Clients connect to A, each subscribing to its
// conversation and its user stream; A shuts down (a deploy); they resume on
// B with their sids. The cost is the pool's acquisitions, one per query.
// CHATTERLY_RESUME_CLIENTS sets how many (200; the figure in
// docs/benchmarks.md is for 2,000).
func TestMultiInstanceResumeCost(t *testing.T) {
	n := 200
	if v := os.Getenv("CHATTERLY_RESUME_CLIENTS"); v != "" {
		var err error
		n, err = strconv.Atoi(v)
		require.NoError(t, err)
	}
	cfg := extConfig(raised(modes[1].config(t), "register_ip", "conversations"))
	cfg.CableSessionTTL = 5 * time.Minute
	a, b := start(t, cfg), start(t, cfg)
	owner := a.register("owner" + strings.ToLower(rand.Text()[:6]))
	type client struct {
		who   account
		ident string
		c     *wsClient
		sid   string
	}
	clients := make([]*client, n)
	var group int64
	for i := range clients {
		who := a.register("resume" + strings.ToLower(rand.Text()[:10]))
		if i%20 == 0 {
			group = num(t, a.createGroup(t, owner, "g"+itoa(int64(i)), who)["id"])
		} else {
			require.Equal(t, http.StatusCreated, a.do("POST", membershipsPath(group), owner.token, map[string]any{"user_id": who.id}).status)
		}
		clients[i] = &client{who: who, ident: convIdent(group)}
	}
	const acquires = `chatterly_db_pool_acquires_total{pool="primary"}`
	time.Sleep(cfg.UserCacheTTL) // registering cached the users: connect as after a restart

	before := a.metric(t, acquires)
	for _, c := range clients {
		var welcome map[string]any
		c.c, welcome = a.extCable(t, c.who, "")
		c.sid = welcome["sid"].(string)
		c.c.extSubscribe(t, c.ident, nil)
		c.c.extSubscribe(t, userIdent, nil)
	}
	fresh := a.metric(t, acquires) - before

	a.stop()
	for _, c := range clients {
		_, _ = c.c.untilClosed(t)
	}
	before = b.metric(t, acquires)
	for _, c := range clients {
		back, welcome := b.extCable(t, c.who, c.sid)
		require.Equal(t, true, welcome["restored"], "%v", welcome)
		assert.ElementsMatch(t, []any{c.ident, userIdent}, welcome["restored_ids"])
		back.close()
	}
	resumed := b.metric(t, acquires) - before
	t.Logf("%d clients: fresh connect %.0f queries (%.2f each), resumed %.0f (%.2f each)", n, fresh, fresh/float64(n), resumed, resumed/float64(n))
	assert.Less(t, resumed, fresh, "resuming must cost fewer queries than connecting afresh")
}

package main_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// displayName reads a's display name over the API.
func (s *stack) displayName(t *testing.T, a account) string {
	t.Helper()
	r := s.do("GET", "/api/v1/users/"+itoa(a.id), a.token, nil)
	require.Equal(t, http.StatusOK, r.status, "%s", r.raw)
	name, ok := r.json(t)["display_name"].(string)
	require.True(t, ok, "%s", r.raw)
	return name
}

// isOnline reads whether the API shows a as online to viewer.
func (s *stack) isOnline(t *testing.T, viewer, a account) bool {
	t.Helper()
	r := s.do("GET", "/api/v1/users/"+itoa(a.id), viewer.token, nil)
	require.Equal(t, http.StatusOK, r.status, "%s", r.raw)
	return r.json(t)["online"] == true
}

// Conversation events reach ConversationChannel subscribers over the socket.
func TestWSConversationChannel(t *testing.T) {
	eachMode(t, func(t *testing.T, m mode) {
		s := start(t, m.config(t))

		t.Run("new_message reaches every subscriber", func(t *testing.T) {
			u := s.freshUsers()
			g := num(t, s.createGroup(t, u.alice, "g", u.bob, u.carol)["id"])
			id := convIdent(g)
			subs := map[string]*wsClient{"alice": s.cable(t, u.alice), "bob": s.cable(t, u.bob), "carol": s.cable(t, u.carol)}
			for _, c := range subs {
				c.mustConfirm(t, id)
			}
			outsider := s.cable(t, u.dave)
			outsider.mustReject(t, id)
			idle := s.cable(t, u.bob) // a member's connection that did not subscribe

			r := s.do("POST", messagesPath(g), u.alice.token, map[string]any{"content": "hello, socket"})
			require.Equal(t, http.StatusCreated, r.status, "%s", r.raw)
			msg := dataOf(t, r)
			for name, c := range subs {
				ev := c.expectEvent(t, id, "new_message")
				assertEvent(t, ev, "new_message", "message", msg)
				assertMessage(t, ev["message"])
				c.quiet(t, name+": exactly one frame per message")
			}
			outsider.quiet(t, "a rejected subscription hears nothing")
			idle.quiet(t, "a connection hears only what it subscribed to")
		})

		t.Run("edits, deletes and reactions", func(t *testing.T) {
			u := s.freshUsers()
			g := num(t, s.createGroup(t, u.alice, "g", u.bob, u.carol)["id"])
			id := convIdent(g)
			c := s.cable(t, u.carol)
			c.mustConfirm(t, id)
			mid := num(t, s.send(t, u.bob, g, "first")["id"])
			c.expectEvent(t, id, "new_message")

			r := s.do("PATCH", messagePath(g, mid), u.bob.token, map[string]any{"content": "first, edited"})
			require.Equal(t, http.StatusOK, r.status, "%s", r.raw)
			assertEvent(t, c.expectEvent(t, id, "message_edited"), "message_edited", "message", r.json(t))

			reaction := s.react(t, u.carol, mid, "👍")
			assertEvent(t, c.expectEvent(t, id, "reaction_added"), "reaction_added", "reaction", reaction)
			rid := num(t, reaction["id"])
			require.Equal(t, http.StatusOK, s.do("DELETE", reactionPath(rid), u.carol.token, nil).status)
			assert.JSONEq(t, `{"type":"reaction_removed","reaction_id":`+itoa(rid)+`,"message_id":`+itoa(mid)+`}`,
				toJSON(t, c.expectEvent(t, id, "reaction_removed")))

			require.Equal(t, http.StatusOK, s.do("DELETE", messagePath(g, mid), u.bob.token, nil).status)
			assert.JSONEq(t, `{"type":"message_deleted","message_id":`+itoa(mid)+`}`, toJSON(t, c.expectEvent(t, id, "message_deleted")))
			c.quiet(t, "one frame per event")
		})

		t.Run("typing reaches the whole conversation, the sender too", func(t *testing.T) {
			u := s.freshUsers()
			g := num(t, s.createGroup(t, u.alice, "g", u.bob, u.carol)["id"])
			h := num(t, s.createGroup(t, u.alice, "h", u.dave)["id"])
			id := convIdent(g)
			alice, bob, carol := s.cable(t, u.alice), s.cable(t, u.bob), s.cable(t, u.carol)
			for _, c := range []*wsClient{alice, bob, carol} {
				c.mustConfirm(t, id)
			}
			dave := s.cable(t, u.dave)
			dave.mustConfirm(t, convIdent(h))
			alice.mustConfirm(t, convIdent(h))

			bob.perform(id, map[string]any{"action": "typing"})
			start := `{"type":"typing_start","user_id":` + itoa(u.bob.id) + `,"display_name":` + toJSON(t, s.displayName(t, u.bob)) + `}`
			for _, c := range []*wsClient{alice, bob, carol} {
				assert.JSONEq(t, start, toJSON(t, c.expectEvent(t, id, "typing_start")))
			}
			bob.perform(id, map[string]any{"action": "stop_typing"})
			for _, c := range []*wsClient{alice, bob, carol} {
				assert.JSONEq(t, `{"type":"typing_stop","user_id":`+itoa(u.bob.id)+`}`, toJSON(t, c.expectEvent(t, id, "typing_stop")))
			}
			for _, c := range []*wsClient{alice, bob, carol, dave} {
				c.quiet(t, "typing goes to its conversation only, once")
			}
		})

		t.Run("typing without a display name shows the username", func(t *testing.T) {
			u := s.freshUsers()
			g := num(t, s.createGroup(t, u.alice, "g", u.bob)["id"])
			r := s.do("PATCH", "/api/v1/users/"+itoa(u.bob.id), u.bob.token, map[string]any{"display_name": nil})
			require.Equal(t, http.StatusOK, r.status, "%s", r.raw)
			require.Nil(t, r.json(t)["display_name"])
			alice, bob := s.cable(t, u.alice), s.cable(t, u.bob)
			alice.mustConfirm(t, convIdent(g))
			bob.mustConfirm(t, convIdent(g))
			bob.perform(convIdent(g), map[string]any{"action": "typing"})
			want := `{"type":"typing_start","user_id":` + itoa(u.bob.id) + `,"display_name":` + toJSON(t, s.username(t, u.bob)) + `}`
			assert.JSONEq(t, want, toJSON(t, alice.expectEvent(t, convIdent(g), "typing_start")))
		})
	})
}

// UserChannel carries new_conversation to the members who did not create it.
func TestWSUserChannel(t *testing.T) {
	eachMode(t, func(t *testing.T, m mode) {
		s := start(t, m.config(t))
		u := s.freshUsers()
		alice, bob, carol, dave := s.cable(t, u.alice), s.cable(t, u.bob), s.cable(t, u.carol), s.cable(t, u.dave)
		for _, c := range []*wsClient{alice, bob, carol, dave} {
			c.mustConfirm(t, userIdent)
		}
		team := s.createGroup(t, u.alice, "Team", u.bob, u.carol)
		for _, c := range []*wsClient{bob, carol} {
			ev := c.expectEvent(t, userIdent, "new_conversation")
			assertEvent(t, ev, "new_conversation", "conversation", team)
			assertConversation(t, ev["conversation"])
			c.quiet(t, "once")
		}
		alice.quiet(t, "the creator is not told")
		dave.quiet(t, "not a member")
	})
}

// Presence: initial roster, announcements to contacts only, several connections.
func TestWSPresence(t *testing.T) {
	eachMode(t, func(t *testing.T, m mode) {
		s := start(t, raised(m.config(t), "register_ip"))

		// online connects a and subscribes it to PresenceChannel, returning the
		// connection and the ids of its initial_presence.
		online := func(t *testing.T, a account) (*wsClient, []int64) {
			t.Helper()
			c := s.cable(t, a)
			c.mustConfirm(t, presenceIdent)
			ev := c.expectEvent(t, presenceIdent, "initial_presence")
			assert.ElementsMatch(t, []string{"type", "online_user_ids"}, keys(ev), "initial_presence: %v", ev)
			ids := []int64{}
			for _, v := range ev["online_user_ids"].([]any) {
				ids = append(ids, num(t, v))
			}
			return c, ids
		}
		status := func(t *testing.T, c *wsClient, who account, st string) {
			t.Helper()
			ev := c.expectMessage(t, presenceIdent, presenceOf(who, st))
			assert.JSONEq(t, statusEvent(who.id, s.username(t, who), st), toJSON(t, ev), "no type key, exactly these fields")
		}
		none := func(t *testing.T, c *wsClient, who account, st string, d time.Duration) {
			t.Helper()
			c.expectNone(t, onIdent(presenceIdent, presenceOf(who, st)), d)
		}

		t.Run("initial presence lists online contacts only", func(t *testing.T) {
			u := s.freshUsers()
			s.createGroup(t, u.alice, "g", u.bob, u.carol)
			_, bobSees := online(t, u.bob)
			assert.Empty(t, bobSees, "alice and carol are offline")
			online(t, u.eve)                              // online, but a stranger
			s.cable(t, u.carol).mustConfirm(t, userIdent) // connected, not present

			_, aliceSees := online(t, u.alice)
			assert.Equal(t, []int64{u.bob.id}, aliceSees, "online contacts, not strangers, not connections without presence, not self")
		})

		t.Run("coming online is announced to contacts only", func(t *testing.T) {
			u := s.freshUsers()
			s.createGroup(t, u.alice, "g", u.bob)
			bob, _ := online(t, u.bob)
			eve, _ := online(t, u.eve)
			alice, _ := online(t, u.alice)
			status(t, bob, u.alice, "online")
			bob.quiet(t, "announced once")
			eve.quiet(t, "strangers hear nothing")
			alice.quiet(t, "nobody is told about themselves")

			r := s.do("GET", "/api/v1/users/me", u.alice.token, nil)
			require.Equal(t, http.StatusOK, r.status, "%s", r.raw)
			if ts, ok := r.json(t)["last_seen_at"].(string); assert.True(t, ok, "last_seen_at is stamped: %s", r.raw) {
				seen, err := time.Parse(time.RFC3339Nano, ts)
				require.NoError(t, err)
				assert.WithinDuration(t, time.Now(), seen, time.Minute)
			}
			assert.True(t, s.isOnline(t, u.bob, u.alice))

			alice.close()
			status(t, bob, u.alice, "offline")
			eve.quiet(t, "strangers hear nothing")
			assert.False(t, s.isOnline(t, u.bob, u.alice))
		})

		t.Run("two connections of one user", func(t *testing.T) {
			u := s.freshUsers()
			s.createGroup(t, u.alice, "g", u.bob)
			bob, _ := online(t, u.bob)
			tab1, _ := online(t, u.alice)
			status(t, bob, u.alice, "online")
			tab2, seen := online(t, u.alice)
			assert.Equal(t, []int64{u.bob.id}, seen)
			none(t, bob, u.alice, "online", wsQuiet)
			bare := s.cable(t, u.alice) // a third connection, not subscribed to presence
			bare.mustConfirm(t, userIdent)

			tab1.close()
			none(t, bob, u.alice, "offline", 700*time.Millisecond)
			assert.True(t, s.isOnline(t, u.bob, u.alice), "one tab closed, the other is still there")

			tab2.close()
			status(t, bob, u.alice, "offline")
			assert.False(t, s.isOnline(t, u.bob, u.alice), "a connection without presence does not keep a user online")
			bob.quiet(t, "offline once")
		})

		t.Run("unsubscribing from presence goes offline", func(t *testing.T) {
			u := s.freshUsers()
			s.createGroup(t, u.alice, "g", u.bob)
			bob, _ := online(t, u.bob)
			alice, _ := online(t, u.alice)
			status(t, bob, u.alice, "online")
			alice.unsubscribe(presenceIdent)
			status(t, bob, u.alice, "offline")
			alice.mustConfirm(t, userIdent) // the connection itself stays
		})

		t.Run("ping keeps presence and has no reply", func(t *testing.T) {
			u := s.freshUsers()
			s.createGroup(t, u.alice, "g", u.bob)
			bob, _ := online(t, u.bob)
			alice, _ := online(t, u.alice)
			status(t, bob, u.alice, "online")
			alice.perform(presenceIdent, map[string]any{"action": "ping"})
			alice.quiet(t, "no reply to ping")
			bob.quiet(t, "a ping announces nothing")
			assert.True(t, s.isOnline(t, u.bob, u.alice))
		})

		t.Run("becoming contacts announces who is online", func(t *testing.T) {
			u := s.freshUsers()
			carol, _ := online(t, u.carol)
			dave, _ := online(t, u.dave)
			carol.quiet(t, "not contacts yet")
			dave.quiet(t, "not contacts yet")

			s.createDirect(t, u.carol, u.dave)
			status(t, dave, u.carol, "online")
			status(t, carol, u.dave, "online")

			g := num(t, s.createGroup(t, u.alice, "g", u.bob)["id"])
			alice, _ := online(t, u.alice)
			bob, _ := online(t, u.bob)
			status(t, alice, u.bob, "online")
			frank, _ := online(t, u.frank)
			r := s.do("POST", membershipsPath(g), u.alice.token, map[string]any{"user_id": u.frank.id})
			require.Equal(t, http.StatusCreated, r.status, "%s", r.raw)
			status(t, alice, u.frank, "online")
			status(t, bob, u.frank, "online")
			status(t, frank, u.alice, "online")
			status(t, frank, u.bob, "online")

			r = s.do("POST", membershipsPath(g), u.alice.token, map[string]any{"user_id": u.eve.id})
			require.Equal(t, http.StatusCreated, r.status, "%s", r.raw)
			for _, c := range []*wsClient{alice, bob, frank} {
				none(t, c, u.eve, "online", wsQuiet)
			}
		})
	})
}

// A member who is removed, who leaves, or whose conversation is deleted stops
// hearing it within a second; a resubscribe is rejected.
func TestWSSubscriptionEnds(t *testing.T) {
	eachMode(t, func(t *testing.T, m mode) {
		s := start(t, m.config(t))

		// settle waits until a second has passed since the change.
		settle := func(since time.Time) { time.Sleep(time.Until(since.Add(time.Second))) }

		for _, tc := range []struct {
			name   string
			remove func(u chatUsers, g int64) response
		}{
			{"removed by an admin", func(u chatUsers, g int64) response {
				return s.do("DELETE", membershipPath(g, u.bob.id), u.alice.token, nil)
			}},
			{"leaves", func(u chatUsers, g int64) response {
				return s.do("DELETE", membershipPath(g, u.bob.id), u.bob.token, nil)
			}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				u := s.freshUsers()
				g := num(t, s.createGroup(t, u.alice, "g", u.bob, u.carol)["id"])
				h := num(t, s.createGroup(t, u.alice, "h", u.bob)["id"])
				bob, carol := s.cable(t, u.bob), s.cable(t, u.carol)
				bob.mustConfirm(t, convIdent(g))
				bob.mustConfirm(t, convIdent(h))
				carol.mustConfirm(t, convIdent(g))

				r := tc.remove(u, g)
				require.Equal(t, http.StatusOK, r.status, "%s", r.raw)
				changed := time.Now()
				assert.JSONEq(t, `{"type":"member_left","user_id":`+itoa(u.bob.id)+`}`, toJSON(t, carol.expectEvent(t, convIdent(g), "member_left")))
				settle(changed)

				msg := s.send(t, u.alice, g, "bob is gone")
				assertEvent(t, carol.expectEvent(t, convIdent(g), "new_message"), "new_message", "message", msg)
				bob.expectNone(t, onIdent(convIdent(g), ofType("new_message")), wsQuiet)
				bob.perform(convIdent(g), map[string]any{"action": "typing"})
				carol.expectNone(t, onIdent(convIdent(g), ofType("typing_start")), wsQuiet)

				bob.mustReject(t, convIdent(g)) // a live subscription would have ignored this
				msg = s.send(t, u.alice, h, "h still works")
				assertEvent(t, bob.expectEvent(t, convIdent(h), "new_message"), "new_message", "message", msg)
			})
		}

		t.Run("conversation deleted", func(t *testing.T) {
			u := s.freshUsers()
			g := num(t, s.createGroup(t, u.alice, "g", u.bob, u.carol)["id"])
			h := num(t, s.createGroup(t, u.alice, "h", u.bob)["id"])
			bob, carol := s.cable(t, u.bob), s.cable(t, u.carol)
			bob.mustConfirm(t, convIdent(g))
			bob.mustConfirm(t, convIdent(h))
			carol.mustConfirm(t, convIdent(g))
			stream := s.subscribe(t, convStream(g))

			require.Equal(t, http.StatusOK, s.do("DELETE", convPath(g), u.alice.token, nil).status)
			settle(time.Now())
			stream.drain()

			bob.perform(convIdent(g), map[string]any{"action": "typing"})
			carol.perform(convIdent(g), map[string]any{"action": "stop_typing"})
			stream.none(t, "dropped subscriptions perform nothing")
			bob.mustReject(t, convIdent(g))
			carol.mustReject(t, convIdent(g))
			msg := s.send(t, u.alice, h, "h still works")
			assertEvent(t, bob.expectEvent(t, convIdent(h), "new_message"), "new_message", "message", msg)
		})
	})
}

// Logging a token out closes its sockets, and only its sockets.
func TestWSLogoutClosesSockets(t *testing.T) {
	eachMode(t, func(t *testing.T, m mode) {
		s := start(t, m.config(t))
		u := s.freshUsers()
		other := s.login(t, u.alice)
		a1, a2 := s.cable(t, u.alice), s.cable(t, u.alice)
		a1.mustConfirm(t, userIdent)
		a2.mustConfirm(t, presenceIdent)
		a2.expectEvent(t, presenceIdent, "initial_presence")
		kept := dial(t, s, other, nil)
		kept.expectWelcome(t)
		kept.mustConfirm(t, userIdent)
		bob := s.cable(t, u.bob)
		bob.mustConfirm(t, userIdent)

		r := s.do("DELETE", "/auth/logout", u.alice.token, nil)
		require.Equal(t, http.StatusOK, r.status, "%s", r.raw)
		loggedOut := time.Now()
		for name, c := range map[string]*wsClient{"subscribed": a1, "present": a2} {
			t.Run(name, func(t *testing.T) {
				c.discard()
				c.expectDisconnect(t, unauthorizedFrame)
				assert.Less(t, time.Since(loggedOut), time.Second+200*time.Millisecond, "closed within a second")
			})
		}
		t.Run("other tokens stay", func(t *testing.T) {
			kept.expectNone(t, anyFrame, wsQuiet)
			kept.mustConfirm(t, callIdent)
			bob.expectNone(t, anyFrame, wsQuiet)
			bob.mustConfirm(t, callIdent)
		})
		t.Run("the token cannot reconnect", func(t *testing.T) {
			dial(t, s, u.alice.token, nil).expectDisconnect(t, unauthorizedFrame)
		})
	})
}

// A client that does not read is cut off with too_slow; a reader of the
// same conversation gets everything meanwhile.
func TestWSSlowClient(t *testing.T) {
	eachMode(t, func(t *testing.T, m mode) {
		cfg := raised(m.config(t), "messages")
		// Room for a burst of ~20 frames: the fast reader must never overflow.
		cfg.CableSendQueueBytes = 16 << 10
		s := start(t, cfg)
		u := s.freshUsers()
		g := num(t, s.createGroup(t, u.alice, "g", u.bob, u.carol)["id"])
		id := convIdent(g)
		fast := s.cable(t, u.carol)
		fast.mustConfirm(t, id)
		slow := dialWith(t, slowDialer(), narrowed(t, s), u.bob.token, nil)
		slow.expectWelcome(t)
		slow.mustConfirm(t, id)
		slow.pause()

		const n = 150 // ~100 KiB of frames: far more than the queue and the narrowed TCP path hold
		pad := strings.Repeat("x", 300)
		ids := make([]int64, 0, n)
		for i := range n {
			ids = append(ids, num(t, s.send(t, u.alice, g, fmt.Sprintf("%03d %s", i, pad))["id"]))
		}
		slow.resume()

		t.Run("the slow client is told too_slow and closed", func(t *testing.T) {
			frames, err := slow.untilClosed(t)
			require.NotEmpty(t, frames, "closed with %v", err)
			assert.JSONEq(t, tooSlowFrame, frames[len(frames)-1], "the last frame")
			assert.Less(t, len(frames)-1, n, "the slow client did not get everything")
			for i, f := range frames[:len(frames)-1] {
				var got struct {
					Identifier string `json:"identifier"`
					Message    struct {
						Type    string `json:"type"`
						Message struct {
							ID int64 `json:"id"`
						} `json:"message"`
					} `json:"message"`
				}
				require.NoError(t, json.Unmarshal([]byte(f), &got), "%s", f)
				assert.Equal(t, id, got.Identifier)
				assert.Equal(t, "new_message", got.Message.Type)
				assert.Equal(t, ids[i], got.Message.Message.ID, "in order, without gaps, until the cut")
			}
			assertClosedByServer(t, err)
		})

		t.Run("the fast reader gets every message", func(t *testing.T) {
			got := make([]int64, 0, n)
			for range n {
				ev := fast.expectEvent(t, id, "new_message")
				got = append(got, num(t, obj(t, ev["message"])["id"]))
			}
			assert.Equal(t, ids, got)
			fast.quiet(t, "each message once")
			fast.mustConfirm(t, userIdent)
		})
	})
}

// Every goroutine a connection starts ends when it closes.
func TestWSGoroutinesReturnAfterClose(t *testing.T) {
	eachMode(t, func(t *testing.T, m mode) {
		s := start(t, m.config(t))
		u := s.freshUsers()
		g := num(t, s.createGroup(t, u.alice, "g", u.bob, u.carol)["id"])

		// round connects 12 clients, exchanges events, and closes them.
		round := func(t *testing.T) (open int) {
			t.Helper()
			var clients []*wsClient
			for _, a := range []account{u.alice, u.bob, u.carol} {
				for range 4 {
					c := s.cable(t, a)
					c.mustConfirm(t, convIdent(g))
					c.mustConfirm(t, presenceIdent)
					c.mustConfirm(t, userIdent)
					clients = append(clients, c)
				}
			}
			s.send(t, u.alice, g, "to everyone")
			clients[0].perform(convIdent(g), map[string]any{"action": "typing"})
			for _, c := range clients {
				c.expectEvent(t, convIdent(g), "new_message")
				c.expectEvent(t, convIdent(g), "typing_start")
			}
			open = runtime.NumGoroutine()
			for _, c := range clients {
				c.close()
			}
			s.srv.Client().CloseIdleConnections()
			return open
		}
		// The first round grows the pools (Redis, PostgreSQL) to their working size.
		round(t)
		baseline := settledGoroutines()
		open := round(t)
		assert.Greater(t, open, baseline+12, "the measure sees the connections")
		waitGoroutines(t, baseline, 3, 5*time.Second)
	})
}

// Draining tells every socket to reconnect elsewhere and closes it.
func TestWSDrainSendsServerRestart(t *testing.T) {
	eachMode(t, func(t *testing.T, m mode) {
		s := start(t, m.config(t))
		u := s.freshUsers()
		g := num(t, s.createGroup(t, u.alice, "g", u.bob)["id"])
		alice := s.cable(t, u.alice)
		alice.mustConfirm(t, convIdent(g))
		alice.mustConfirm(t, presenceIdent)
		alice.expectEvent(t, presenceIdent, "initial_presence")
		bob := s.cable(t, u.bob)
		bob.mustConfirm(t, userIdent)
		carol := s.cable(t, u.carol)

		done := make(chan struct{})
		go func() {
			s.app.Drain()
			close(done)
		}()
		for name, c := range map[string]*wsClient{"subscribed": alice, "present": bob, "bare": carol} {
			t.Run(name, func(t *testing.T) {
				c.discard()
				c.expectDisconnect(t, restartFrame)
			})
		}
		select {
		case <-done:
		case <-time.After(wsWait):
			t.Fatal("Drain did not return")
		}
		assert.Equal(t, http.StatusServiceUnavailable, s.do("GET", "/readyz", "", nil).status)
	})
}

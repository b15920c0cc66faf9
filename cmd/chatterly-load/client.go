package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// ---------- REST ----------

// API is a REST client for one server.
type API struct {
	base string
	hc   *http.Client
}

func newAPI(base string, maxConns int) *API {
	tr := &http.Transport{
		MaxIdleConns:        maxConns,
		MaxIdleConnsPerHost: maxConns,
		IdleConnTimeout:     90 * time.Second,
	}
	return &API{base: strings.TrimRight(base, "/"), hc: &http.Client{Transport: tr, Timeout: 60 * time.Second}}
}

// User is a registered user and its token.
type User struct {
	ID       int64
	Username string
	Token    string
}

type httpError struct {
	status int
	body   string
}

func (e *httpError) Error() string { return fmt.Sprintf("HTTP %d: %s", e.status, e.body) }

// do sends a JSON request and decodes a JSON answer into out (when not nil).
// It returns the status and the response headers.
func (a *API) do(ctx context.Context, method, path, token string, in, out any) (int, http.Header, error) {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return 0, nil, err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, a.base+path, body)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := a.hc.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, resp.Header, err
	}
	if resp.StatusCode >= 300 {
		return resp.StatusCode, resp.Header, &httpError{resp.StatusCode, truncate(string(b), 200)}
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return resp.StatusCode, resp.Header, fmt.Errorf("decode %s %s: %w", method, path, err)
		}
	}
	return resp.StatusCode, resp.Header, nil
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

func bearer(h http.Header) string {
	return strings.TrimPrefix(h.Get("Authorization"), "Bearer ")
}

type userBody struct {
	User struct {
		ID       int64  `json:"id"`
		Username string `json:"username"`
	} `json:"user"`
}

// Register creates a user over POST /auth/register; the JWT comes from the
// Authorization response header.
func (a *API) Register(ctx context.Context, username, password string) (User, error) {
	in := map[string]any{"user": map[string]string{
		"email": username + "@load.test", "password": password,
		"username": username, "display_name": username,
	}}
	var out userBody
	_, h, err := a.do(ctx, "POST", "/auth/register", "", in, &out)
	if err != nil {
		return User{}, fmt.Errorf("register %s: %w", username, err)
	}
	return User{ID: out.User.ID, Username: out.User.Username, Token: bearer(h)}, nil
}

// Login signs in over POST /auth/login.
func (a *API) Login(ctx context.Context, username, password string) (User, error) {
	in := map[string]any{"user": map[string]string{"email": username + "@load.test", "password": password}}
	var out userBody
	_, h, err := a.do(ctx, "POST", "/auth/login", "", in, &out)
	if err != nil {
		return User{}, fmt.Errorf("login %s: %w", username, err)
	}
	return User{ID: out.User.ID, Username: out.User.Username, Token: bearer(h)}, nil
}

// RegisterOrLogin registers username, or signs in when it exists already.
func (a *API) RegisterOrLogin(ctx context.Context, username, password string) (User, error) {
	u, err := a.Register(ctx, username, password)
	var he *httpError
	if errors.As(err, &he) && he.status == http.StatusUnprocessableEntity {
		return a.Login(ctx, username, password)
	}
	return u, err
}

// CreateGroup creates a group conversation of creator with members.
func (a *API) CreateGroup(ctx context.Context, creator User, name string, memberIDs []int64) (int64, error) {
	in := map[string]any{"conversation_type": "group", "name": name, "member_ids": memberIDs}
	var out struct {
		Data struct {
			ID int64 `json:"id"`
		} `json:"data"`
	}
	if _, _, err := a.do(ctx, "POST", "/api/v1/conversations", creator.Token, in, &out); err != nil {
		return 0, fmt.Errorf("create conversation: %w", err)
	}
	return out.Data.ID, nil
}

// AddMember adds a user to a conversation (admin only).
func (a *API) AddMember(ctx context.Context, admin User, convID, userID int64) error {
	in := map[string]any{"user_id": userID}
	if _, _, err := a.do(ctx, "POST", "/api/v1/conversations/"+strconv.FormatInt(convID, 10)+"/memberships", admin.Token, in, nil); err != nil {
		return fmt.Errorf("add member: %w", err)
	}
	return nil
}

// PostMessage sends a text message and returns the HTTP status.
func (a *API) PostMessage(ctx context.Context, token string, convID int64, content string) (int, error) {
	in := map[string]any{"content": content, "message_type": "text"}
	st, _, err := a.do(ctx, "POST", "/api/v1/conversations/"+strconv.FormatInt(convID, 10)+"/messages", token, in, nil)
	return st, err
}

// HistoryPage reads one page of history; cursor 0 means the newest page.
func (a *API) HistoryPage(ctx context.Context, token string, convID, cursor int64, limit int) (n int, next int64, err error) {
	q := url.Values{"limit": {strconv.Itoa(limit)}}
	if cursor != 0 {
		q.Set("cursor", strconv.FormatInt(cursor, 10))
	}
	var out struct {
		Data struct {
			Messages   []json.RawMessage `json:"messages"`
			NextCursor *int64            `json:"next_cursor"`
		} `json:"data"`
	}
	_, _, err = a.do(ctx, "GET", "/api/v1/conversations/"+strconv.FormatInt(convID, 10)+"/messages?"+q.Encode(), token, nil, &out)
	if err != nil {
		return 0, 0, err
	}
	if out.Data.NextCursor != nil {
		next = *out.Data.NextCursor
	}
	return len(out.Data.Messages), next, nil
}

// ---------- Action Cable ----------

// Identifiers, built once the way the web client's JSON.stringify does.
func conversationIdentifier(id int64) string {
	return `{"channel":"ConversationChannel","conversation_id":` + strconv.FormatInt(id, 10) + `}`
}

const (
	presenceIdentifier = `{"channel":"PresenceChannel"}`
	callIdentifier     = `{"channel":"CallChannel"}`
	userIdentifier     = `{"channel":"UserChannel"}`
)

// fourIdentifiers returns the web client's four subscriptions.
func fourIdentifiers(convID int64) []string {
	return []string{conversationIdentifier(convID), presenceIdentifier, callIdentifier, userIdentifier}
}

// identifiers returns the four, or the three without presence.
func identifiers(convID int64, presence bool) []string {
	if presence {
		return fourIdentifiers(convID)
	}
	return []string{conversationIdentifier(convID), callIdentifier, userIdentifier}
}

func commandFrame(command, identifier, data string) []byte {
	m := map[string]string{"command": command, "identifier": identifier}
	if data != "" {
		m["data"] = data
	}
	b, _ := json.Marshal(m)
	return b
}

var writeBufferPool = &sync.Pool{}

// dialer keeps per-connection buffers small; write buffers are pooled and
// only held while a frame is written.
var dialer = &websocket.Dialer{
	HandshakeTimeout: 30 * time.Second,
	Subprotocols:     []string{"actioncable-v1-json", "actioncable-unsupported"},
	ReadBufferSize:   1024,
	WriteBufferSize:  1024,
	WriteBufferPool:  writeBufferPool,
}

// OnMessage is called from a connection's reader goroutine for every
// broadcast, with the raw frame.
type OnMessage func(c *Cable, frame []byte, at time.Time)

// Cable is one Action Cable connection: a single reader goroutine, writes
// under a mutex from the caller (no writer goroutine).
type Cable struct {
	ws        *websocket.Conn
	wmu       sync.Mutex
	onMessage OnMessage
	// Idx is the caller's index of this connection.
	Idx int
	// UserID is the owner.
	UserID int64

	pending   atomic.Int64 // subscriptions not yet confirmed
	confirmed chan struct{}
	welcome   chan struct{}
	done      chan struct{}
	rejected  atomic.Int32
	discon    atomic.Value // string: disconnect reason
	closing   atomic.Bool
}

// cableURL turns http://host into ws://host/cable?token=...
func cableURL(base, token string) string {
	u := strings.TrimRight(base, "/")
	u = strings.Replace(u, "http://", "ws://", 1)
	u = strings.Replace(u, "https://", "wss://", 1)
	return u + "/cable?token=" + url.QueryEscape(token)
}

// DialCable connects, waits for welcome, and subscribes to identifiers.
// It returns once the subscribe commands are written; use Confirmed to wait.
func DialCable(ctx context.Context, base string, u User, idx int, identifiers []string, on OnMessage) (*Cable, error) {
	// gorilla documents that the handshake response body "does not need to be closed by the application".
	ws, resp, err := dialer.DialContext(ctx, cableURL(base, u.Token), nil) //nolint:bodyclose // see above
	if err != nil {
		if resp != nil {
			return nil, fmt.Errorf("dial: %w (HTTP %d)", err, resp.StatusCode)
		}
		return nil, fmt.Errorf("dial: %w", err)
	}
	if ws.Subprotocol() != "actioncable-v1-json" {
		ws.Close()
		return nil, fmt.Errorf("dial: server selected subprotocol %q", ws.Subprotocol())
	}
	ws.SetReadLimit(1 << 20)
	c := &Cable{ws: ws, onMessage: on, Idx: idx, UserID: u.ID,
		confirmed: make(chan struct{}), welcome: make(chan struct{}), done: make(chan struct{})}
	c.pending.Store(int64(len(identifiers)))
	if len(identifiers) == 0 {
		close(c.confirmed)
	}
	go c.readLoop()
	select {
	case <-c.welcome:
	case <-c.done:
		r, _ := c.discon.Load().(string)
		if r == "server_busy" {
			return nil, errServerBusy
		}
		return nil, fmt.Errorf("closed before welcome (disconnect reason %q)", r)
	case <-ctx.Done():
		c.Close()
		return nil, ctx.Err()
	}
	for _, id := range identifiers {
		if err := c.Send(commandFrame("subscribe", id, "")); err != nil {
			c.Close()
			return nil, err
		}
	}
	return c, nil
}

// errServerBusy is a connect the server turned away over its connect rate.
var errServerBusy = errors.New("closed before welcome: server_busy")

// Send writes one text frame.
func (c *Cable) Send(frame []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = c.ws.SetWriteDeadline(time.Now().Add(10 * time.Second))
	return c.ws.WriteMessage(websocket.TextMessage, frame)
}

// Perform sends a channel action.
func (c *Cable) Perform(identifier, action string) error {
	return c.Send(commandFrame("message", identifier, `{"action":"`+action+`"}`))
}

// Confirmed is closed when every subscription was confirmed.
func (c *Cable) Confirmed() <-chan struct{} { return c.confirmed }

// Done is closed when the reader stops.
func (c *Cable) Done() <-chan struct{} { return c.done }

// Rejected counts reject_subscription frames.
func (c *Cable) Rejected() int { return int(c.rejected.Load()) }

// Close closes the socket; the reader goroutine ends.
func (c *Cable) Close() {
	c.closing.Store(true)
	c.wmu.Lock()
	_ = c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
	c.wmu.Unlock()
	_ = c.ws.Close()
}

// frameHead holds the few fields the reader looks at; the message payload is
// left raw.
type frameHead struct {
	Type       string `json:"type"`
	Identifier string `json:"identifier"`
	Reason     string `json:"reason"`
}

var (
	typeMarker    = []byte(`"type":"`)
	messageMarker = []byte(`"message":{`)
)

func (c *Cable) readLoop() {
	defer close(c.done)
	welcomed := false
	for {
		_, b, err := c.ws.ReadMessage()
		if err != nil {
			return
		}
		at := time.Now()
		// Broadcasts carry "message":{...}; pings carry "message":<number>.
		if bytes.Contains(b, messageMarker) {
			if c.onMessage != nil {
				c.onMessage(c, b, at)
			}
			continue
		}
		if !bytes.Contains(b, typeMarker) {
			continue
		}
		var h frameHead
		if json.Unmarshal(b, &h) != nil {
			continue
		}
		switch h.Type {
		case "welcome":
			if !welcomed {
				welcomed = true
				close(c.welcome)
			}
		case "confirm_subscription":
			if c.pending.Add(-1) == 0 {
				close(c.confirmed)
			}
		case "reject_subscription":
			c.rejected.Add(1)
		case "disconnect":
			c.discon.Store(h.Reason)
		}
	}
}

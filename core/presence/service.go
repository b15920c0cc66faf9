package presence

import (
	"context"
	"encoding/json"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/chatterly/chatterly/core/users"
)

// TTL is how long a connection's entry lives without a ping (the client pings every 30 s).
const TTL = 35 * time.Second

// Contacts tells who shares a conversation with a user; chat.Store satisfies it.
type Contacts interface {
	ContactIDs(ctx context.Context, userID int64) ([]int64, error)
}

// Users is what presence needs of the user store.
type Users interface {
	Get(ctx context.Context, id int64) (users.User, error)
	Seen(ctx context.Context, id int64, at time.Time) (users.User, error)
}

// Publisher sends rendered events to streams; chat.Publisher's shape.
// Presence notices are transient: a client back from a gap gets the
// roster afresh when it subscribes, not the moves it missed.
type Publisher interface {
	PublishTransient(ctx context.Context, stream string, payload []byte) error
}

// Stream is the presence stream of a user: status changes of their
// contacts arrive there.
func Stream(userID int64) string { return "presence_" + strconv.FormatInt(userID, 10) }

// Service decides who is online and tells their contacts. Status changes
// go only to contacts (users sharing a conversation), computed when
// publishing, instead of to everyone as the original did.
type Service struct {
	tracker  Tracker
	contacts Contacts
	users    Users
	pub      Publisher
	now      func() time.Time
	log      *slog.Logger
}

// NewService returns a Service.
func NewService(tracker Tracker, contacts Contacts, us Users, pub Publisher, now func() time.Time, log *slog.Logger) *Service {
	if now == nil {
		now = time.Now
	}
	if log == nil {
		log = slog.Default()
	}
	return &Service{tracker: tracker, contacts: contacts, users: us, pub: pub, now: now, log: log}
}

// statusEvent is the original's presence broadcast: no "type" key.
type statusEvent struct {
	UserID   int64  `json:"user_id"`
	Username string `json:"username"`
	Status   string `json:"status"`
}

// Roster is what a new presence subscriber is sent first.
type Roster struct {
	Type          string  `json:"type"`
	OnlineUserIDs []int64 `json:"online_user_ids"`
}

// Connect records that connID of userID is present, announces the user to
// their contacts if this made them online, and returns the roster of their
// online contacts.
func (s *Service) Connect(ctx context.Context, userID int64, connID string) (Roster, error) {
	came, err := s.tracker.Touch(ctx, userID, connID, TTL)
	if err != nil {
		return Roster{}, err
	}
	contacts, err := s.contacts.ContactIDs(ctx, userID)
	if err != nil {
		return Roster{}, err
	}
	if came {
		s.cameOnline(ctx, userID, contacts)
	}
	online, err := s.tracker.Online(ctx, contacts)
	if err != nil {
		return Roster{}, err
	}
	r := Roster{Type: "initial_presence", OnlineUserIDs: []int64{}}
	for _, id := range contacts {
		if online[id] {
			r.OnlineUserIDs = append(r.OnlineUserIDs, id)
		}
	}
	return r, nil
}

// Ping renews connID's entry. If it had lapsed, the user is announced again.
func (s *Service) Ping(ctx context.Context, userID int64, connID string) error {
	came, err := s.tracker.Touch(ctx, userID, connID, TTL)
	if err != nil || !came {
		return err
	}
	contacts, err := s.contacts.ContactIDs(ctx, userID)
	if err != nil {
		return err
	}
	s.cameOnline(ctx, userID, contacts)
	return nil
}

// Disconnect removes connID's entry and announces the user offline when it
// was their last.
func (s *Service) Disconnect(ctx context.Context, userID int64, connID string) error {
	went, err := s.tracker.Leave(ctx, userID, connID)
	if err != nil || !went {
		return err
	}
	return s.wentOffline(ctx, userID)
}

// Sweep announces offline the users whose entries lapsed (their instance
// died without saying goodbye). Every instance runs it; the tracker hands
// each lapsed user to exactly one of them.
func (s *Service) Sweep(ctx context.Context) error {
	ids, err := s.tracker.Lapsed(ctx)
	if err != nil {
		return err
	}
	for _, id := range ids {
		if err := s.wentOffline(ctx, id); err != nil {
			s.log.Warn("announcing a lapsed user offline failed", "user_id", id, "err", err)
		}
	}
	return nil
}

// RunSweeper calls Sweep every interval until ctx is done.
func (s *Service) RunSweeper(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := s.Sweep(ctx); err != nil {
				s.log.Warn("presence sweep failed", "err", err)
			}
		}
	}
}

// Introduce announces, when users have just become contacts, each online
// newcomer to the others and each online existing member to the newcomers:
// the web client never re-reads the roster, so without this a new contact
// would look offline until they reconnect.
func (s *Service) Introduce(ctx context.Context, newcomers, existing []int64) {
	everyone := slices.Concat(newcomers, existing)
	online, err := s.tracker.Online(ctx, everyone)
	if err != nil {
		s.log.WarnContext(ctx, "presence lookup failed; new contacts not introduced", "err", err)
		return
	}
	for _, u := range everyone {
		if !online[u] {
			continue
		}
		var to []int64
		if slices.Contains(newcomers, u) {
			to = everyone
		} else {
			to = newcomers
		}
		to = slices.DeleteFunc(slices.Clone(to), func(id int64) bool { return id == u })
		if len(to) == 0 {
			continue
		}
		payload, err := s.status(ctx, u, "online")
		if err != nil {
			s.log.WarnContext(ctx, "introducing a contact failed", "user_id", u, "err", err)
			continue
		}
		s.broadcast(ctx, to, payload)
	}
}

func (s *Service) cameOnline(ctx context.Context, userID int64, contacts []int64) {
	now := s.now().UTC().Truncate(time.Microsecond)
	u, err := s.users.Seen(ctx, userID, now)
	if err != nil {
		s.log.WarnContext(ctx, "stamping last_seen_at failed", "user_id", userID, "err", err)
		if u, err = s.users.Get(ctx, userID); err != nil {
			s.log.WarnContext(ctx, "announcing online failed", "user_id", userID, "err", err)
			return
		}
	}
	payload, err := json.Marshal(statusEvent{UserID: u.ID, Username: u.Username, Status: "online"})
	if err != nil {
		s.log.WarnContext(ctx, "announcing online failed", "user_id", userID, "err", err)
		return
	}
	s.broadcast(ctx, contacts, payload)
}

func (s *Service) wentOffline(ctx context.Context, userID int64) error {
	contacts, err := s.contacts.ContactIDs(ctx, userID)
	if err != nil {
		return err
	}
	payload, err := s.status(ctx, userID, "offline")
	if err != nil {
		return err
	}
	s.broadcast(ctx, contacts, payload)
	return nil
}

func (s *Service) status(ctx context.Context, userID int64, status string) ([]byte, error) {
	u, err := s.users.Get(ctx, userID)
	if err != nil {
		return nil, err
	}
	return json.Marshal(statusEvent{UserID: u.ID, Username: u.Username, Status: status})
}

// broadcast publishes one rendered payload to each user's presence stream.
//
// The publishes run side by side, at most broadcastWidth at a time: a
// Redis client pipelines concurrent commands, so announcing a user to
// their contacts costs about one round trip instead of one per contact.
func (s *Service) broadcast(ctx context.Context, to []int64, payload []byte) {
	ctx = context.WithoutCancel(ctx)
	publish := func(id int64) {
		if err := s.pub.PublishTransient(ctx, Stream(id), payload); err != nil {
			s.log.WarnContext(ctx, "publishing presence failed", "user_id", id, "err", err)
		}
	}
	if len(to) == 1 {
		publish(to[0])
		return
	}
	var wg sync.WaitGroup
	slots := make(chan struct{}, broadcastWidth)
	for _, id := range to {
		slots <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-slots; wg.Done() }()
			publish(id)
		}()
	}
	wg.Wait()
}

const broadcastWidth = 32

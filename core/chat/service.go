package chat

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/chatterly/chatterly/core"
	"github.com/chatterly/chatterly/core/users"
)

// Limits of the contract.
const (
	MaxName         = 100
	MaxDescription  = 1000
	MaxContent      = 4000
	MaxClientID     = 64
	MaxEmoji        = 10
	MaxMemberIDs    = 1000
	DefaultPageSize = 50
	MaxPageSize     = 100
)

// Users is what chat needs of the user store.
type Users interface {
	Get(ctx context.Context, id int64) (users.User, error)
	GetMany(ctx context.Context, ids []int64) ([]users.User, error)
}

// Introducer is told when users become contacts, so that presence can
// announce them to each other; presence.Service satisfies it.
type Introducer interface {
	Introduce(ctx context.Context, newcomers, existing []int64)
}

// Deps are the Service's collaborators. Introducer is optional.
type Deps struct {
	Store      Store
	Calls      Calls
	Users      Users
	Presence   users.OnlineChecker
	Publisher  Publisher
	Introducer Introducer
	Now        func() time.Time
	// After runs f after d, for the read events held back to coalesce a
	// burst; nil means time.AfterFunc.
	After func(d time.Duration, f func())
	Log   *slog.Logger
}

// Service runs the chat use cases on behalf of an acting user.
type Service struct {
	store Store
	calls Calls
	users Users
	pres  users.OnlineChecker
	pub   Publisher
	intro Introducer
	now   func() time.Time
	log   *slog.Logger
	reads *coalescer
}

// NewService returns a Service.
func NewService(d Deps) *Service {
	s := &Service{store: d.Store, calls: d.Calls, users: d.Users, pres: d.Presence, pub: d.Publisher, intro: d.Introducer, now: d.Now, log: d.Log}
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	s.reads = newCoalescer(ReadEvery, s.now, d.After)
	return s
}

// ConversationStream and UserStream name the streams events go to.
func ConversationStream(id int64) string { return "conversation_" + strconv.FormatInt(id, 10) }

// UserStream names a user's personal stream.
func UserStream(id int64) string { return "user_" + strconv.FormatInt(id, 10) }

// clock returns the time to stamp, at the database's microsecond precision
// so that what the memory store and PostgreSQL return agree.
func (s *Service) clock() time.Time { return s.now().UTC().Truncate(time.Microsecond) }

var (
	errNotFound  = core.E(core.NotFound, "Not found")
	errForbidden = core.E(core.Forbidden, "Not authorized")
)

func (s *Service) render(event any) []byte {
	b, err := json.Marshal(event)
	if err != nil {
		// The event types are plain structs; this cannot happen short of a bug.
		panic(fmt.Sprintf("chat: rendering %T: %v", event, err))
	}
	return b
}

// publish sends an event after the change is committed. A failure is
// logged, not returned: the change stands, and clients catch up over REST.
func (s *Service) publish(ctx context.Context, stream string, payload []byte) {
	// The change is committed: a client hanging up now must not cancel its event.
	if err := s.pub.Publish(context.WithoutCancel(ctx), stream, payload); err != nil {
		s.log.WarnContext(ctx, "publishing event failed", "stream", stream, "err", err)
	}
}

// validateText checks a text the contract requires: not blank, and at most
// limit characters. field names it in the problem, as the original did.
func validateText(field, text string, limit int) []string {
	switch {
	case strings.TrimSpace(text) == "":
		return []string{field + " can't be blank"}
	case utf8.RuneCountInString(text) > limit:
		return []string{fmt.Sprintf("%s is too long (maximum is %d characters)", field, limit)}
	}
	return nil
}

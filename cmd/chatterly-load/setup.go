package main

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/chatterly/chatterly/adapters/token"
	"github.com/chatterly/chatterly/core/auth"
)

// parallel runs f(0..n-1) with at most conc at a time and returns the first error.
func parallel(ctx context.Context, n, conc int, f func(i int) error) error {
	conc = max(1, min(conc, n))
	var next atomic.Int64
	var first error
	var once sync.Once
	var wg sync.WaitGroup
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				if err := f(i); err != nil {
					once.Do(func() { first = err })
					next.Store(int64(n))
					return
				}
			}
		}()
	}
	wg.Wait()
	if first == nil {
		first = ctx.Err()
	}
	return first
}

// registerUsers makes n fresh users: over REST, or with bulkUsers when
// the tool has the server's database and JWT secret.
func registerUsers(ctx context.Context, api *API, cm common, n int) ([]User, error) {
	run := runID()
	if cm.db != "" && cm.jwtSecret != "" && n > 1 {
		return bulkUsers(ctx, api, cm, run, n)
	}
	users := make([]User, n)
	start := time.Now()
	err := parallel(ctx, n, cm.conc, func(i int) error {
		u, err := api.Register(ctx, username(run, i), cm.password)
		users[i] = u
		return err
	})
	if err != nil {
		return nil, err
	}
	stderrf("setup: registered %d users in %s\n", n, time.Since(start).Round(time.Millisecond))
	return users, nil
}

// makeGroups splits users into groups of size (the last may be smaller, but
// a lone user gets a group of one) and returns each user's conversation id
// and the conversations' member indexes.
func makeGroups(ctx context.Context, api *API, cm common, users []User, size int) (convOf []int64, groups [][]int, convs []int64, err error) {
	size = max(1, size)
	for i := 0; i < len(users); i += size {
		g := make([]int, 0, size)
		for j := i; j < min(i+size, len(users)); j++ {
			g = append(g, j)
		}
		groups = append(groups, g)
	}
	convs = make([]int64, len(groups))
	convOf = make([]int64, len(users))
	start := time.Now()
	err = parallel(ctx, len(groups), cm.conc, func(k int) error {
		g := groups[k]
		ids := make([]int64, 0, len(g)-1)
		for _, j := range g[1:] {
			ids = append(ids, users[j].ID)
		}
		first := ids[:min(len(ids), maxMemberIDs)]
		id, err := api.CreateGroup(ctx, users[g[0]], fmt.Sprintf("load %d", k), first)
		if err != nil {
			return err
		}
		if err := addMembers(ctx, api, cm, users[g[0]], id, ids[len(first):]); err != nil {
			return err
		}
		convs[k] = id
		for _, j := range g {
			convOf[j] = id
		}
		return nil
	})
	if err == nil {
		stderrf("setup: created %d conversations in %s\n", len(groups), time.Since(start).Round(time.Millisecond))
		err = analyze(ctx, cm)
	}
	return convOf, groups, convs, err
}

// Dialed is the outcome of connectAll.
type Dialed struct {
	Cables      []*Cable
	DialErrs    int
	FirstErr    error
	Unconfirmed int
	Rejected    int
	// Busy counts the connects the server turned away (server_busy) and
	// the client made again after the stock client's backoff.
	Busy int
	// ToConfirm is, per connected client, the time from its dial start to
	// its last confirm.
	ToConfirm []time.Duration
	// All is the time from the first dial to the last confirm.
	All time.Duration
}

// busyRetries bounds how often a client turned away as server_busy dials
// again.
const busyRetries = 10

// stockReconnectDelay is when @rails/actioncable's ConnectionMonitor
// reopens a connection closed attempt times in a row: it polls every
// staleThreshold (6 s) × 1.15^attempts (at most 10), with a jitter of up
// to 100 % on the first poll and 15 % after, and reopens at the first poll
// that finds the connection stale (docs/realtime.md, "Reconnect storms").
func stockReconnectDelay(attempt int) time.Duration {
	jitter := 0.15
	if attempt == 0 {
		jitter = 1
	}
	f := 6 * math.Pow(1.15, float64(min(attempt, 10))) * (1 + jitter*rand.Float64()) //nolint:gosec // load jitter, not a secret
	return time.Duration(f * float64(time.Second))
}

// connectAll opens n connections; connection i belongs to users[i%len(users)]
// and subscribes to the four channels with its conversation. It waits for
// every confirmation (or timeout).
func connectAll(ctx context.Context, cm common, users []User, convOf []int64, n int, on OnMessage) *Dialed {
	d := &Dialed{Cables: make([]*Cable, n), ToConfirm: make([]time.Duration, n)}
	var mu sync.Mutex
	start := time.Now()
	var wg sync.WaitGroup
	sem := make(chan struct{}, max(1, cm.conc))
	for i := range n {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			t0 := time.Now()
			u := users[i%len(users)]
			c, err := DialCable(ctx, cm.url, u, i, identifiers(convOf[i%len(users)], !cm.noPresence), on)
			<-sem
			for attempt := 0; errors.Is(err, errServerBusy) && attempt < busyRetries; attempt++ {
				mu.Lock()
				d.Busy++
				mu.Unlock()
				select {
				case <-time.After(stockReconnectDelay(attempt)):
				case <-ctx.Done():
				}
				sem <- struct{}{}
				c, err = DialCable(ctx, cm.url, u, i, identifiers(convOf[i%len(users)], !cm.noPresence), on)
				<-sem
			}
			if err != nil {
				mu.Lock()
				d.DialErrs++
				if d.FirstErr == nil {
					d.FirstErr = err
				}
				mu.Unlock()
				return
			}
			d.Cables[i] = c
			timer := time.NewTimer(cm.confirmMax)
			defer timer.Stop()
			select {
			case <-c.Confirmed():
				d.ToConfirm[i] = time.Since(t0)
			case <-c.Done():
			case <-timer.C:
			case <-ctx.Done():
			}
		}()
	}
	wg.Wait()
	d.All = time.Since(start)
	conf := d.ToConfirm[:0]
	for i, c := range d.Cables {
		if c == nil {
			continue
		}
		d.Rejected += c.Rejected()
		if d.ToConfirm[i] == 0 {
			d.Unconfirmed++
		} else {
			conf = append(conf, d.ToConfirm[i])
		}
	}
	d.ToConfirm = conf
	stderrf("setup: %d connections, %d confirmed, %d dial errors, %d unconfirmed, %d rejected, %d turned away (server_busy) and retried, in %s\n",
		n, len(conf), d.DialErrs, d.Unconfirmed, d.Rejected, d.Busy, d.All.Round(time.Millisecond))
	if d.FirstErr != nil {
		stderrf("setup: first dial error: %v\n", d.FirstErr)
	}
	return d
}

// closeAll closes every connection and waits for their readers.
func closeAll(cs []*Cable) {
	for _, c := range cs {
		if c != nil {
			c.Close()
		}
	}
	for _, c := range cs {
		if c != nil {
			<-c.Done()
		}
	}
}

func live(cs []*Cable) int {
	n := 0
	for _, c := range cs {
		if c != nil {
			select {
			case <-c.Done():
			default:
				n++
			}
		}
	}
	return n
}

// bulkUsers registers one user over REST, so that the server hashes the
// password, then inserts n-1 more with the same hash in one statement and
// signs every token with the server's secret. A 10,000-user scenario then
// sets up in seconds rather than in 10,000 bcrypts (~25 CPU-minutes at cost
// 12); the users are real rows, the tokens as the server would issue them.
func bulkUsers(ctx context.Context, api *API, cm common, run string, n int) ([]User, error) {
	start := time.Now()
	first, err := api.Register(ctx, username(run, 0), cm.password)
	if err != nil {
		return nil, err
	}
	signer, err := token.NewSigner([]byte(cm.jwtSecret))
	if err != nil {
		return nil, err
	}
	pool, err := pgxpool.New(ctx, cm.db)
	if err != nil {
		return nil, err
	}
	defer pool.Close()
	rows, err := pool.Query(ctx, `
		INSERT INTO users (email, encrypted_password, username, display_name, created_at, updated_at)
		SELECT $2 || g || '@load.test', u.encrypted_password, $2 || g, $2 || g, now(), now()
		FROM users u, generate_series(1, $3::int - 1) g WHERE u.id = $1
		ORDER BY g
		RETURNING id, username`, first.ID, "ld"+run+"_", n)
	if err != nil {
		return nil, fmt.Errorf("insert users: %w", err)
	}
	users := []User{first}
	for rows.Next() {
		var u User
		if err := rows.Scan(&u.ID, &u.Username); err != nil {
			rows.Close()
			return nil, err
		}
		users = append(users, u)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("insert users: %w", err)
	}
	if len(users) != n {
		return nil, fmt.Errorf("insert users: %d of %d made (is -db the server's database?)", len(users), n)
	}
	now := time.Now()
	for i := range users[1:] {
		u := &users[i+1]
		u.Token, err = signer.Sign(auth.Claims{UserID: u.ID, ID: uuid.NewString(), IssuedAt: now, ExpiresAt: now.Add(24 * time.Hour)})
		if err != nil {
			return nil, err
		}
	}
	stderrf("setup: made %d users in SQL and signed their tokens in %s\n", n, time.Since(start).Round(time.Millisecond))
	return users, nil
}

// maxMemberIDs is what one conversation creation may name (the server's
// chat.MaxMemberIDs); larger groups get the rest added afterwards.
const maxMemberIDs = 999

// addMembers adds ids to a conversation: in SQL when the tool has the
// database (one statement), else over REST, one membership at a time.
func addMembers(ctx context.Context, api *API, cm common, admin User, convID int64, ids []int64) error {
	if len(ids) == 0 {
		return nil
	}
	if cm.db != "" {
		pool, err := pgxpool.New(ctx, cm.db)
		if err != nil {
			return err
		}
		defer pool.Close()
		_, err = pool.Exec(ctx, `INSERT INTO conversation_members (conversation_id, user_id, role, created_at, updated_at)
			SELECT $1, u, 0, now(), now() FROM unnest($2::bigint[]) AS u`, convID, ids)
		if err != nil {
			return fmt.Errorf("add members: %w", err)
		}
		return nil
	}
	return parallel(ctx, len(ids), cm.conc, func(i int) error {
		return api.AddMember(ctx, admin, convID, ids[i])
	})
}

// analyze refreshes the planner's statistics after setup, as autovacuum
// would a minute later: tables filled within the last seconds still look
// empty to it, and it plans the contacts lookup as a sequential scan (4 ms
// instead of 0.05 ms at 10,000 members), which would be measured instead
// of the server.
func analyze(ctx context.Context, cm common) error {
	if cm.db == "" {
		return nil
	}
	pool, err := pgxpool.New(ctx, cm.db)
	if err != nil {
		return err
	}
	defer pool.Close()
	if _, err := pool.Exec(ctx, `ANALYZE users, conversations, conversation_members`); err != nil {
		return fmt.Errorf("analyze: %w", err)
	}
	return nil
}

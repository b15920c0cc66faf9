package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// readUser names the readers of the reads scenario.
func readUser(i int) string { return "loadread_" + strconv.Itoa(i) }

// MarkRead sets the caller's read marker in a conversation: at message
// messageID, or at the newest message when it is 0.
func (a *API) MarkRead(ctx context.Context, token string, convID, messageID int64) error {
	var in any
	if messageID != 0 {
		in = map[string]any{"message_id": messageID}
	}
	_, _, err := a.do(ctx, "POST", "/api/v1/conversations/"+strconv.FormatInt(convID, 10)+"/read", token, in, nil)
	return err
}

// ListConversations reads the caller's conversation list and returns how
// many conversations it holds.
func (a *API) ListConversations(ctx context.Context, token string) (int, error) {
	var out struct {
		Data []struct {
			UnreadCount int `json:"unread_count"`
		} `json:"data"`
	}
	_, _, err := a.do(ctx, "GET", "/api/v1/conversations", token, nil, &out)
	return len(out.Data), err
}

// runReads measures the read-state paths on a seeded database: the
// conversation list (one statement that counts each conversation's unread
// messages up to the cap) and mark-read. Its readers are users of their
// own, each a member of -conversations seeded conversations, joined
// before the first seeded message: half of the memberships have a marker
// at -depth of the conversation's history, so their counts start in an
// older partition, and half none, so their counts run from the oldest
// message until the cap.
func runReads(ctx context.Context, args []string) error {
	var cm common
	fs := flag.NewFlagSet("reads", flag.ExitOnError)
	cm.register(fs)
	requests := fs.Int("requests", 200, "requests per kind (list, mark-read)")
	readers := fs.Int("readers", 10, "reader users (registered over REST)")
	nconv := fs.Int("conversations", 50, "seeded conversations each reader is a member of")
	depth := fs.Float64("depth", 0.01, "where marked readers' markers are: fraction of a conversation's history from the newest")
	conc := fs.Int("k", 4, "concurrent requests")
	cm.parse(fs, args)
	if cm.db == "" {
		return fmt.Errorf("-db or DATABASE_URL is required")
	}
	api := newAPI(cm.url, max(*conc, 4))
	users := make([]User, *readers)
	if err := parallel(ctx, *readers, cm.conc, func(i int) error {
		u, err := api.RegisterOrLogin(ctx, readUser(i), cm.password)
		users[i] = u
		return err
	}); err != nil {
		return err
	}
	pool, err := pgxpool.New(ctx, cm.db)
	if err != nil {
		return err
	}
	defer pool.Close()
	rows, err := pool.Query(ctx, `SELECT id FROM conversations WHERE name LIKE $1 ORDER BY id`, seedConvPrefix+"%")
	if err != nil {
		return err
	}
	convs, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return err
	}
	if len(convs) < *nconv {
		return fmt.Errorf("%d seeded conversations, want at least %d (run the seed step first)", len(convs), *nconv)
	}
	// Memberships, as the seed makes its data, in SQL: a rerun starts over.
	memberOf := make([][]int64, len(users))
	for i, u := range users {
		picked := rand.Perm(len(convs))[:*nconv]
		for _, p := range picked {
			memberOf[i] = append(memberOf[i], convs[p])
		}
		if err := setupReader(ctx, pool, u.ID, memberOf[i], *depth); err != nil {
			return err
		}
	}

	var done, failed atomic.Int64
	stop := progress(cm.progress, "reads", func() string {
		return fmt.Sprintf("%d/%d requests, %d failed", done.Load(), 2**requests, failed.Load())
	})
	defer stop()
	began := time.Now()
	measure := func(f func(i int) error) (Summary, int, error) {
		var lat Latencies
		errs := make([]error, *requests)
		_ = parallel(ctx, *requests, *conc, func(i int) error {
			t0 := time.Now()
			err := f(i)
			lat.Add(i, time.Since(t0))
			done.Add(1)
			if err != nil {
				failed.Add(1)
			}
			errs[i] = err
			return nil
		})
		fails := 0
		for _, err := range errs {
			if err != nil {
				fails++
			}
		}
		return summarize(lat.All()), fails, errors.Join(errs...)
	}
	list, failL, errL := measure(func(i int) error {
		n, err := api.ListConversations(ctx, users[i%len(users)].Token)
		if err == nil && n != *nconv {
			err = fmt.Errorf("listed %d conversations, want %d", n, *nconv)
		}
		return err
	})
	// Each mark is to the newest message of one of the reader's
	// conversations: the first of a conversation moves its marker, a
	// repeat does not, as a client's repeated marks would.
	mark, failM, errM := measure(func(i int) error {
		u := i % len(users)
		return api.MarkRead(ctx, users[u].Token, memberOf[u][rand.IntN(len(memberOf[u]))], 0)
	})
	stop()
	r := newReport("reads")
	r.Result.ElapsedS = time.Since(began).Seconds()
	latencyHeader(&r.Table)
	r.Latency(fmt.Sprintf("list (%d conversations)", *nconv), "list", list)
	r.Latency("mark read (newest)", "mark", mark)
	r.Row("requests", "list failed", failL, "mark failed", failM)
	r.Result.Counts = map[string]int64{"readers": int64(len(users)), "conversations_per_reader": int64(*nconv),
		"requests": int64(*requests), "list_failed": int64(failL), "mark_failed": int64(failM)}
	report(cm, r, fmt.Sprintf("reads: %d readers in %d seeded conversations each: list %s; mark %s", len(users), *nconv, list, mark))
	var errs []error
	if errL != nil {
		errs = append(errs, fmt.Errorf("list requests failed: %w", errL))
	}
	if errM != nil {
		errs = append(errs, fmt.Errorf("mark-read requests failed: %w", errM))
	}
	return errors.Join(errs...)
}

// setupReader makes userID a member of convs only, joined before their
// first message; every other membership gets a marker at depth of its
// conversation's history.
func setupReader(ctx context.Context, pool *pgxpool.Pool, userID int64, convs []int64, depth float64) error {
	if _, err := pool.Exec(ctx, `DELETE FROM conversation_members WHERE user_id = $1`, userID); err != nil {
		return err
	}
	_, err := pool.Exec(ctx, `
		INSERT INTO conversation_members (conversation_id, user_id, role, created_at, updated_at)
		SELECT c.id, $1, 0, c.created_at, c.created_at FROM conversations c WHERE c.id = ANY ($2::bigint[])`,
		userID, convs)
	if err != nil {
		return fmt.Errorf("reader memberships: %w", err)
	}
	for i, c := range convs {
		if i%2 == 1 {
			continue
		}
		var cnt int64
		if err := pool.QueryRow(ctx, `SELECT count(*) FROM messages WHERE conversation_id = $1 AND deleted_at IS NULL`, c).Scan(&cnt); err != nil {
			return err
		}
		_, err := pool.Exec(ctx, `
			UPDATE conversation_members cm SET last_read_message_id = m.id, last_read_message_created_at = m.created_at
			FROM (SELECT id, created_at FROM messages WHERE conversation_id = $1 AND deleted_at IS NULL
			      ORDER BY created_at DESC, id DESC OFFSET $3 LIMIT 1) m
			WHERE cm.conversation_id = $1 AND cm.user_id = $2`, c, userID, int64(float64(cnt)*depth))
		if err != nil {
			return fmt.Errorf("reader marker: %w", err)
		}
	}
	return nil
}

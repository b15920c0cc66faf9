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

// The seed's users are registered over REST (the server computes their
// bcrypt hashes), named seedUser(i) with the -password; its conversations are
// named "loadseed <k>", every seeded user is a member, user 0 the creator.
func seedUser(i int) string { return "loadseed_" + strconv.Itoa(i) }

const seedConvPrefix = "loadseed "

// monthStart is the first instant of t's month in UTC.
func monthStart(t time.Time) time.Time {
	t = t.UTC()
	return time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, time.UTC)
}

// partitionName matches the server's naming (adapters/postgres).
func partitionName(t time.Time) string {
	t = t.UTC()
	return fmt.Sprintf("messages_y%04dm%02d", t.Year(), int(t.Month()))
}

// seedSpan returns the months covered: from the start of the month p-1
// months before now's to end (now minus a minute, so REST posts come later).
func seedSpan(now time.Time, p int) (from, end time.Time) {
	return monthStart(now).AddDate(0, -(max(1, p) - 1), 0), now.Add(-time.Minute)
}

// seedTime is message i's created_at among m spread evenly over [from, end).
func seedTime(from, end time.Time, i, m int) time.Time {
	span := end.Sub(from)
	return from.Add(time.Duration(float64(span) * float64(i) / float64(max(1, m))))
}

func runSeed(ctx context.Context, args []string) error {
	var cm common
	fs := flag.NewFlagSet("seed", flag.ExitOnError)
	cm.register(fs)
	dbURL := &cm.db
	m := fs.Int("messages", 10_000_000, "messages to load")
	p := fs.Int("partitions", 24, "monthly partitions the messages span (ending with the current month)")
	nconv := fs.Int("conversations", 5000, "conversations")
	nusers := fs.Int("users", 10, "users (registered over REST; all are members of every seeded conversation)")
	cm.parse(fs, args)
	if *dbURL == "" {
		return fmt.Errorf("-db or DATABASE_URL is required")
	}
	api := newAPI(cm.url, cm.conc)
	t0 := time.Now()
	users := make([]User, *nusers)
	if err := parallel(ctx, *nusers, cm.conc, func(i int) error {
		u, err := api.RegisterOrLogin(ctx, seedUser(i), cm.password)
		users[i] = u
		return err
	}); err != nil {
		return err
	}
	ids := make([]int64, len(users))
	for i, u := range users {
		ids[i] = u.ID
	}

	pool, err := pgxpool.New(ctx, *dbURL)
	if err != nil {
		return err
	}
	defer pool.Close()
	from, end := seedSpan(time.Now(), *p)
	for mo := from; mo.Before(end); mo = mo.AddDate(0, 1, 0) {
		_, err := pool.Exec(ctx, fmt.Sprintf(
			`CREATE TABLE IF NOT EXISTS %s PARTITION OF messages FOR VALUES FROM ('%s+00') TO ('%s+00')`,
			partitionName(mo), mo.Format(time.DateTime), mo.AddDate(0, 1, 0).Format(time.DateTime)))
		if err != nil {
			return fmt.Errorf("create partition %s: %w", partitionName(mo), err)
		}
	}
	rows, err := pool.Query(ctx, `
		INSERT INTO conversations (name, conversation_type, created_by_id, last_message_at, created_at, updated_at)
		SELECT $1 || g, 1, $2, $3, $4, $4 FROM generate_series(1, $5::int) g
		RETURNING id`, seedConvPrefix, ids[0], end, from, *nconv)
	if err != nil {
		return fmt.Errorf("insert conversations: %w", err)
	}
	convs, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return fmt.Errorf("insert conversations: %w", err)
	}
	if _, err := pool.Exec(ctx, `
		INSERT INTO conversation_members (conversation_id, user_id, role, created_at, updated_at)
		SELECT c, u, CASE WHEN u = $3 THEN 1 ELSE 0 END, $4, $4
		FROM unnest($1::bigint[]) c CROSS JOIN unnest($2::bigint[]) u`, convs, ids, ids[0], from); err != nil {
		return fmt.Errorf("insert members: %w", err)
	}
	stderrf("seed: %d users, %d conversations, %d partitions (%s..%s) in %s; copying %d messages\n",
		len(users), len(convs), *p, from.Format("2006-01"), end.Format("2006-01"), time.Since(t0).Round(time.Millisecond), *m)

	t1 := time.Now()
	i := 0
	row := make([]any, 6)
	content := "seeded message, a few dozen bytes of ordinary chat text"
	src := pgx.CopyFromFunc(func() ([]any, error) {
		if i >= *m {
			return nil, nil
		}
		at := seedTime(from, end, i, *m)
		row[0], row[1], row[2], row[3], row[4], row[5] = convs[i%len(convs)], ids[i%len(ids)], content, int32(0), at, at
		i++
		if i%1_000_000 == 0 {
			stderrf("seed: %d messages (%s)\n", i, time.Since(t1).Round(time.Second))
		}
		return row, nil
	})
	n, err := pool.CopyFrom(ctx, pgx.Identifier{"messages"},
		[]string{"conversation_id", "user_id", "content", "message_type", "created_at", "updated_at"}, src)
	if err != nil {
		return fmt.Errorf("copy messages: %w", err)
	}
	copied := time.Since(t1)
	if _, err := pool.Exec(ctx, `ANALYZE messages`); err != nil {
		return fmt.Errorf("analyze: %w", err)
	}
	total := time.Since(t0)
	rate := float64(n) / copied.Seconds()
	r := newReport("seed")
	r.Row("step", "rows", "time", "rows/s")
	r.Row("copy messages", n, copied.Round(time.Millisecond), fmt.Sprintf("%.0f", rate))
	r.Row("total", "", total.Round(time.Millisecond), "")
	r.Result.ElapsedS = total.Seconds()
	r.Result.Counts = map[string]int64{"messages": n, "partitions": int64(*p), "conversations": int64(len(convs)), "users": int64(len(users))}
	r.Result.Rates = map[string]float64{"copy_rows": rate}
	report(cm, r, fmt.Sprintf("seed: %d messages over %d partitions and %d conversations (%d users) in %s (%.0f rows/s COPY)",
		n, *p, len(convs), len(users), total.Round(time.Millisecond), rate))
	return nil
}

func runHistory(ctx context.Context, args []string) error {
	var cm common
	fs := flag.NewFlagSet("history", flag.ExitOnError)
	cm.register(fs)
	dbURL := &cm.db
	requests := fs.Int("requests", 200, "requests per kind (newest page, deep cursor)")
	limit := fs.Int("limit", 50, "page size")
	depth := fs.Float64("depth", 0.9, "deep cursor position: fraction of a conversation's history from the newest")
	conc := fs.Int("k", 4, "concurrent readers")
	cm.parse(fs, args)
	if *dbURL == "" {
		return fmt.Errorf("-db or DATABASE_URL is required")
	}
	api := newAPI(cm.url, max(*conc, 4))
	u, err := api.Login(ctx, seedUser(0), cm.password)
	if err != nil {
		return fmt.Errorf("%w (run the seed step first)", err)
	}
	pool, err := pgxpool.New(ctx, *dbURL)
	if err != nil {
		return err
	}
	defer pool.Close()
	rows, err := pool.Query(ctx, `
		SELECT c.id FROM conversations c JOIN conversation_members m ON m.conversation_id = c.id
		WHERE m.user_id = $1 AND c.name LIKE $2 ORDER BY c.id`, u.ID, seedConvPrefix+"%")
	if err != nil {
		return err
	}
	convs, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return err
	}
	if len(convs) == 0 {
		return fmt.Errorf("no seeded conversation found (run the seed step first)")
	}
	// Deep cursors for the sampled conversations, found in SQL.
	sample := make([]int64, *requests)
	cursors := make([]int64, *requests)
	for i := range sample {
		sample[i] = convs[rand.IntN(len(convs))]
	}
	for i, c := range sample {
		var cnt int64
		if err := pool.QueryRow(ctx, `SELECT count(*) FROM messages WHERE conversation_id = $1 AND deleted_at IS NULL`, c).Scan(&cnt); err != nil {
			return err
		}
		off := int64(float64(cnt) * *depth)
		err := pool.QueryRow(ctx, `SELECT id FROM messages WHERE conversation_id = $1 AND deleted_at IS NULL
			ORDER BY created_at DESC, id DESC OFFSET $2 LIMIT 1`, c, off).Scan(&cursors[i])
		if err != nil {
			return fmt.Errorf("deep cursor of conversation %d: %w", c, err)
		}
	}
	var done, failed atomic.Int64
	stop := progress(cm.progress, "history", func() string {
		return fmt.Sprintf("%d/%d pages read, %d failed", done.Load(), 2**requests, failed.Load())
	})
	defer stop()
	began := time.Now()
	measure := func(deep bool) (Summary, int, int, error) {
		var lat Latencies
		var short, fails int
		var first error
		errs := make([]error, *requests)
		sizes := make([]int, *requests)
		_ = parallel(ctx, *requests, *conc, func(i int) error {
			var cur int64
			if deep {
				cur = cursors[i]
			}
			t0 := time.Now()
			n, _, err := api.HistoryPage(ctx, u.Token, sample[i], cur, *limit)
			lat.Add(i, time.Since(t0))
			done.Add(1)
			if err != nil {
				failed.Add(1)
			}
			errs[i], sizes[i] = err, n
			return nil
		})
		for i := range errs {
			if errs[i] != nil {
				fails++
				if first == nil {
					first = errs[i]
				}
			} else if sizes[i] < *limit {
				short++
			}
		}
		return summarize(lat.All()), short, fails, first
	}
	newest, shortN, failN, errN := measure(false)
	deep, shortD, failD, errD := measure(true)
	stop()
	r := newReport("history")
	r.Result.ElapsedS = time.Since(began).Seconds()
	latencyHeader(&r.Table)
	r.Latency("newest page", "newest", newest)
	r.Latency(fmt.Sprintf("cursor at %.0f%% depth", *depth*100), "deep", deep)
	r.Row("pages", "newest short", shortN, "newest failed", failN, "deep short", shortD, "deep failed", failD)
	r.Result.Counts = map[string]int64{"conversations": int64(len(convs)), "requests": int64(*requests),
		"newest_short": int64(shortN), "newest_failed": int64(failN), "deep_short": int64(shortD), "deep_failed": int64(failD)}
	report(cm, r, fmt.Sprintf("history: %d seeded conversations, limit %d: newest %s; deep %s", len(convs), *limit, newest, deep))
	var errs []error
	if errN != nil {
		errs = append(errs, fmt.Errorf("newest page requests failed: %w", errN))
	}
	if errD != nil {
		errs = append(errs, fmt.Errorf("deep page requests failed: %w", errD))
	}
	return errors.Join(errs...)
}

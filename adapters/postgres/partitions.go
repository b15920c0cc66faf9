package postgres

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/chatterly/chatterly/gen/db"
)

// partitionLockKey serializes partition creation across instances: two
// concurrent CREATE TABLE IF NOT EXISTS of one table can both find it
// missing, and then the loser fails with "relation already exists".
const partitionLockKey int64 = 0x6368_6174_6d73_6770 // "chatmsgp"

// monthsAhead is how far Maintain keeps partitions ready, so that a few
// failed runs in a row cannot leave a month without one.
const monthsAhead = 3

// Partitions creates the monthly partitions of the messages table. An
// insert into a month without a partition fails, so every insert calls
// EnsureFor first and Maintain keeps the coming months ready.
type Partitions struct {
	db *DB

	mu    sync.Mutex
	known map[time.Time]bool // first instants (UTC) of months known to have a partition
}

// NewPartitions returns a Partitions over db.
func NewPartitions(db *DB) *Partitions {
	return &Partitions{db: db, known: make(map[time.Time]bool)}
}

// EnsureFor makes sure the partition for the month (in UTC) containing t
// exists, creating it if need be. Once a month is known to have one, it
// costs a map lookup. Unavailable when the database cannot be reached.
func (p *Partitions) EnsureFor(ctx context.Context, t time.Time) error {
	from := monthStart(t)
	p.mu.Lock()
	known := p.known[from]
	p.mu.Unlock()
	if known {
		return nil
	}
	if err := p.create(ctx, from); err != nil {
		return err
	}
	p.mu.Lock()
	p.known[from] = true
	p.mu.Unlock()
	return nil
}

// EnsureAhead makes sure the partitions exist for the month containing now
// and for the months following it.
func (p *Partitions) EnsureAhead(ctx context.Context, now time.Time, months int) error {
	first := monthStart(now)
	for i := range months + 1 {
		if err := p.EnsureFor(ctx, first.AddDate(0, i, 0)); err != nil {
			return err
		}
	}
	return nil
}

// Maintain keeps partitions ready for the current month and the next three:
// right away, then every interval (a day when it is not positive), until
// ctx is done. Failures are logged and retried at the next tick; with
// months in hand, a few of them hurt nobody.
func (p *Partitions) Maintain(ctx context.Context, now func() time.Time, every time.Duration, log *slog.Logger) {
	if log == nil {
		log = slog.Default()
	}
	if every <= 0 {
		every = 24 * time.Hour
	}
	ensure := func() {
		if err := p.EnsureAhead(ctx, now(), monthsAhead); err != nil && ctx.Err() == nil {
			log.ErrorContext(ctx, "cannot create message partitions", slog.Any("err", err))
		}
	}
	ensure()
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			ensure()
		}
	}
}

func (p *Partitions) create(ctx context.Context, from time.Time) error {
	return pgx.BeginFunc(ctx, p.db.primary, func(tx pgx.Tx) error { return createPartition(ctx, tx, from) })
}

// createPartition creates the partition of the month starting at from,
// unless it exists, inside the caller's transaction. The advisory lock it
// takes lasts to the end of that transaction, so that creators of a month
// take turns instead of failing with "relation already exists".
func createPartition(ctx context.Context, tx db.DBTX, from time.Time) error {
	name := partitionName(from)
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, partitionLockKey); err != nil {
		return fmt.Errorf("postgres: create partition %s: %w", name, translate(err))
	}
	// Checked first so that an existing partition costs no DDL, which
	// would lock the messages table against inserts.
	var exists bool
	if err := tx.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, name).Scan(&exists); err != nil {
		return fmt.Errorf("postgres: create partition %s: %w", name, translate(err))
	}
	if exists {
		return nil
	}
	// DDL takes no parameters; every part of it comes from integers.
	_, err := tx.Exec(ctx, fmt.Sprintf(
		`CREATE TABLE IF NOT EXISTS %s PARTITION OF messages FOR VALUES FROM ('%s') TO ('%s')`,
		name, from.Format(time.DateTime)+"+00", from.AddDate(0, 1, 0).Format(time.DateTime)+"+00"))
	if err != nil {
		return fmt.Errorf("postgres: create partition %s: %w", name, translate(err))
	}
	return nil
}

// knows reports whether the month containing t is known to have a
// partition, without a round trip.
func (p *Partitions) knows(t time.Time) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.known[monthStart(t)]
}

// partitionName is the name of the messages partition holding the month
// (in UTC) that contains t, as in messages_y2026m03.
func partitionName(t time.Time) string {
	t = t.UTC()
	return fmt.Sprintf("messages_y%04dm%02d", t.Year(), int(t.Month()))
}

func monthStart(t time.Time) time.Time {
	t = t.UTC()
	return time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, time.UTC)
}

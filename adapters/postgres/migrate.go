package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"

	"github.com/chatterly/chatterly/sql/migrations"
)

// A migration can build indexes on large tables, so instances that start
// together wait for the one that migrates for up to 15 minutes.
const (
	migrationLockRetry    = 1 // seconds between attempts to take the lock
	migrationLockAttempts = 900
)

// withProvider runs fn with a goose provider on a database/sql view of the
// direct pool (the primary's when no direct URL was given); goose needs
// database/sql, everything else uses pgx. The lock is a session lock, which
// a pooler in transaction mode would leave on whichever server session ran
// the statement that took it.
func (db *DB) withProvider(fn func(*goose.Provider) error) error {
	locker, err := lock.NewPostgresSessionLocker(lock.WithLockTimeout(migrationLockRetry, migrationLockAttempts))
	if err != nil {
		return err
	}
	sqlDB := stdlib.OpenDBFromPool(db.direct)
	defer sqlDB.Close()
	p, err := goose.NewProvider(goose.DialectPostgres, sqlDB, migrations.FS,
		goose.WithSessionLocker(locker),
		goose.WithDisableGlobalRegistry(true),
	)
	if err != nil {
		return err
	}
	return fn(p)
}

// Migrate applies the pending migrations. A Postgres session lock makes
// instances that start together take turns, so the schema is migrated once
// and every caller returns only when it is up to date.
func (db *DB) Migrate(ctx context.Context) error {
	err := db.withProvider(func(p *goose.Provider) error {
		_, err := p.Up(ctx)
		return err
	})
	if err != nil {
		return fmt.Errorf("postgres: migrate: %w", err)
	}
	return nil
}

// MigrationStatus writes one line per migration to w: its version, whether
// it is applied or pending, when it was applied, and its file. It takes the
// migration lock, so it waits for a migration in progress to finish.
func (db *DB) MigrationStatus(ctx context.Context, w io.Writer) error {
	err := db.withProvider(func(p *goose.Provider) error {
		statuses, err := p.Status(ctx)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "VERSION\tSTATE\tAPPLIED AT\tFILE")
		for _, s := range statuses {
			applied := "-"
			if s.State == goose.StateApplied {
				applied = s.AppliedAt.UTC().Format(time.RFC3339)
			}
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\n", s.Source.Version, s.State, applied, path.Base(s.Source.Path))
		}
		return tw.Flush()
	})
	if err != nil {
		return fmt.Errorf("postgres: migration status: %w", err)
	}
	return nil
}

// MigrationsApplied reports whether the database is at the latest
// migration, for readiness checks. It reads the version table directly:
// goose would create the table if it were missing and would wait for a
// migration in progress, neither of which a readiness probe should do. It
// asks the primary pool, as plain reads are safe through a pooler and
// readiness is about the connections that serve requests.
func (db *DB) MigrationsApplied(ctx context.Context) (bool, error) {
	latest, err := latestMigration()
	if err != nil {
		return false, fmt.Errorf("postgres: migrations applied: %w", err)
	}
	var exists bool
	if err := db.primary.QueryRow(ctx, `SELECT to_regclass('goose_db_version') IS NOT NULL`).Scan(&exists); err != nil {
		return false, translate(err)
	}
	if !exists {
		return false, nil
	}
	var current *int64
	if err := db.primary.QueryRow(ctx, `SELECT max(version_id) FROM goose_db_version`).Scan(&current); err != nil {
		return false, translate(err)
	}
	return current != nil && *current >= latest, nil
}

// latestMigration is the highest version among the embedded migrations.
var latestMigration = sync.OnceValues(func() (int64, error) {
	names, err := fs.Glob(migrations.FS, "*.sql")
	if err != nil {
		return 0, err
	}
	var latest int64
	for _, name := range names {
		v, err := goose.NumericComponent(name)
		if err != nil {
			return 0, err
		}
		latest = max(latest, v)
	}
	if latest == 0 {
		return 0, errors.New("no migrations embedded")
	}
	return latest, nil
})

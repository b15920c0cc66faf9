// Package postgres implements the persistence ports on PostgreSQL with pgx.
// It is the only package that uses the sqlc-generated queries in gen/db.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5/pgxpool"
)

// DB holds the connection pools: the primary takes every write and every
// read that must see them, the replica takes reads that may lag (search).
type DB struct {
	primary *pgxpool.Pool
	replica *pgxpool.Pool
}

// Open configures pools for databaseURL and, when replicaURL is not empty,
// for a read replica; without one, replica reads go to the primary. Open
// fails only for a malformed URL: pools connect lazily, so a database that
// is down at start shows up in Ping (and in readiness) rather than here.
func Open(ctx context.Context, databaseURL, replicaURL string) (*DB, error) {
	primary, err := newPool(ctx, databaseURL)
	if err != nil {
		return nil, fmt.Errorf("postgres: primary: %w", err)
	}
	db := &DB{primary: primary, replica: primary}
	if replicaURL != "" {
		if db.replica, err = newPool(ctx, replicaURL); err != nil {
			primary.Close()
			return nil, fmt.Errorf("postgres: replica: %w", err)
		}
	}
	return db, nil
}

func newPool(ctx context.Context, url string) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		// The parse error quotes the URL, password included.
		return nil, errors.New("malformed database URL")
	}
	if !strings.Contains(url, "pool_max_conns") {
		// pgx's default, max(4, cores), queues a busy server's requests
		// behind four connections while PostgreSQL idles: a message send
		// is several short round trips. PostgreSQL allows 100 by default.
		cfg.MaxConns = max(cfg.MaxConns, DefaultMaxConns)
	}
	return pgxpool.NewWithConfig(ctx, cfg)
}

// DefaultMaxConns is the pool size when DATABASE_URL does not set
// pool_max_conns.
const DefaultMaxConns = 20

// Close closes the pools, waiting for connections in use to be released.
func (db *DB) Close() {
	if db.replica != db.primary {
		db.replica.Close()
	}
	db.primary.Close()
}

// Ping checks that the primary and the replica answer. Unavailable when
// either does not.
func (db *DB) Ping(ctx context.Context) error {
	if err := db.primary.Ping(ctx); err != nil {
		return translate(err)
	}
	if db.replica != db.primary {
		if err := db.replica.Ping(ctx); err != nil {
			return translate(err)
		}
	}
	return nil
}

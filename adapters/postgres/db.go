// Package postgres implements the persistence ports on PostgreSQL with pgx.
// It is the only package that uses the sqlc-generated queries in gen/db.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// DB holds the connection pools: the primary takes every write and every
// read that must see them, the replica takes reads that may lag (search),
// and direct takes what needs a server session of its own (migrations).
type DB struct {
	primary *pgxpool.Pool
	replica *pgxpool.Pool
	direct  *pgxpool.Pool
}

// An Option configures Open.
type Option func(*options)

type options struct {
	directURL string
	queryMode string
}

// WithDirectURL names a URL that reaches PostgreSQL without a pooler in
// transaction mode (PgBouncer, Supabase's pooler) in between. Migrations
// run on it: their lock is held by a server session for as long as they
// run, and behind such a pooler consecutive transactions of one client
// connection may land on different server sessions. Without it, they run
// on the primary URL. It also changes the default query mode (see
// WithQueryMode).
func WithDirectURL(url string) Option { return func(o *options) { o.directURL = url } }

// WithQueryMode sets pgx's query exec mode, one of QueryModes, for the
// primary and replica pools. Unset (""), each takes its URL's own
// default_query_exec_mode; without one, cache_describe when a direct URL is
// given (the primary URL is then taken to be pooled), else pgx's default,
// cache_statement.
func WithQueryMode(mode string) Option { return func(o *options) { o.queryMode = mode } }

// QueryModes maps the names of pgx's query exec modes to the modes. Only
// cache_describe, exec and simple_protocol work behind a pooler in
// transaction mode: cache_statement keeps named prepared statements in the
// server session, and describe_exec sends a query in two round trips that
// the pooler may hand to two server sessions.
var QueryModes = map[string]pgx.QueryExecMode{
	"cache_statement": pgx.QueryExecModeCacheStatement,
	"cache_describe":  pgx.QueryExecModeCacheDescribe,
	"describe_exec":   pgx.QueryExecModeDescribeExec,
	"exec":            pgx.QueryExecModeExec,
	"simple_protocol": pgx.QueryExecModeSimpleProtocol,
}

// pooledMode is the query mode of a URL known to be pooled: one round trip
// per query like cache_statement, and binary parameters and results like
// it, where exec and simple_protocol send text.
const pooledMode = "cache_describe"

// Open configures pools for databaseURL and, when replicaURL is not empty,
// for a read replica; without one, replica reads go to the primary. Open
// fails only for a malformed URL or an unknown query mode: pools connect
// lazily, so a database that is down at start shows up in Ping (and in
// readiness) rather than here.
func Open(ctx context.Context, databaseURL, replicaURL string, opts ...Option) (*DB, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	mode := o.queryMode
	if _, ok := QueryModes[mode]; mode != "" && !ok {
		return nil, fmt.Errorf("postgres: unknown query mode %q", mode)
	}
	if mode == "" && o.directURL != "" {
		mode = pooledMode
	}
	// An explicit mode overrides the URLs'; the direct-URL default does not.
	explicit := o.queryMode != ""

	primary, err := newPool(ctx, databaseURL, mode, explicit)
	if err != nil {
		return nil, fmt.Errorf("postgres: primary: %w", err)
	}
	db := &DB{primary: primary, replica: primary, direct: primary}
	if replicaURL != "" {
		replica, err := newPool(ctx, replicaURL, mode, explicit)
		if err != nil {
			db.Close()
			return nil, fmt.Errorf("postgres: replica: %w", err)
		}
		db.replica = replica
	}
	if o.directURL != "" {
		direct, err := newDirectPool(ctx, o.directURL)
		if err != nil {
			db.Close()
			return nil, fmt.Errorf("postgres: direct: %w", err)
		}
		db.direct = direct
	}
	return db, nil
}

// newPool configures a pool on url. mode, if not empty, is the query mode
// unless the URL names its own and explicit is false.
func newPool(ctx context.Context, url, mode string, explicit bool) (*pgxpool.Pool, error) {
	cfg, err := parseConfig(url)
	if err != nil {
		return nil, err
	}
	if mode != "" && (explicit || !strings.Contains(url, "default_query_exec_mode")) {
		cfg.ConnConfig.DefaultQueryExecMode = QueryModes[mode]
	}
	if !strings.Contains(url, "pool_max_conns") {
		// pgx's default, max(4, cores), queues a busy server's requests
		// behind four connections while PostgreSQL idles: a message send
		// is several short round trips. PostgreSQL allows 100 by default.
		cfg.MaxConns = max(cfg.MaxConns, DefaultMaxConns)
	}
	return pgxpool.NewWithConfig(ctx, cfg)
}

// newDirectPool configures the small pool for migrations. Direct
// connections are the scarce ones where a pooler is in front (Supabase
// allows a few dozen), so it keeps none open once they go idle.
func newDirectPool(ctx context.Context, url string) (*pgxpool.Pool, error) {
	cfg, err := parseConfig(url)
	if err != nil {
		return nil, err
	}
	if !strings.Contains(url, "pool_max_conns") {
		// goose holds one connection for its lock and may open a second.
		cfg.MaxConns = 2
	}
	cfg.MinConns = 0
	cfg.MaxConnIdleTime = time.Minute
	return pgxpool.NewWithConfig(ctx, cfg)
}

func parseConfig(url string) (*pgxpool.Config, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		// The parse error quotes the URL, password included.
		return nil, errors.New("malformed database URL")
	}
	return cfg, nil
}

// DefaultMaxConns is the pool size when DATABASE_URL does not set
// pool_max_conns.
const DefaultMaxConns = 20

// Close closes the pools, waiting for connections in use to be released.
func (db *DB) Close() {
	if db.direct != db.primary {
		db.direct.Close()
	}
	if db.replica != db.primary {
		db.replica.Close()
	}
	db.primary.Close()
}

// Ping checks that the primary and the replica answer. Unavailable when
// either does not. The direct URL is left out: it serves migrations only,
// and may be unreachable from where the server runs (Supabase's direct
// address has no IPv4 without an add-on; its pooler's has).
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

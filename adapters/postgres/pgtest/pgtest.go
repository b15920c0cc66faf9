// Package pgtest gives tests a fresh PostgreSQL database each, on the server
// named by CHATTERLY_TEST_DATABASE_URL, and drops it when the test ends.
//
// Migrated databases are copied from a template that is migrated once per
// schema, so a test pays for CREATE DATABASE, not for the migrations.
//
// With CHATTERLY_TEST_PGBOUNCER_URL set as well, PooledURL reaches those
// databases through PgBouncer, for tests of the server behind a pooler in
// transaction mode (Supabase's shape: a pooled URL and a direct one).
package pgtest

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/chatterly/chatterly/adapters/postgres"
	"github.com/chatterly/chatterly/sql/migrations"
)

// The environment variables that point tests at services.
const (
	EnvDatabaseURL     = "CHATTERLY_TEST_DATABASE_URL"
	EnvRequireServices = "CHATTERLY_TEST_REQUIRE_SERVICES"
	// EnvPgBouncerURL names a PgBouncer in front of the server of
	// EnvDatabaseURL, with a "*" database entry that maps every name to it:
	// the databases are created per test.
	EnvPgBouncerURL = "CHATTERLY_TEST_PGBOUNCER_URL"
)

// Every database this package creates has one of these prefixes, so a
// leftover one (from a killed test run) is easy to spot and drop.
const (
	testPrefix     = "chatterly_t_"
	templatePrefix = "chatterly_tmpl_"
)

const setupTimeout = 2 * time.Minute

// New returns an open connection to a fresh, migrated database. The
// database is closed and dropped when the test ends. It skips the test
// when CHATTERLY_TEST_DATABASE_URL is unset, unless
// CHATTERLY_TEST_REQUIRE_SERVICES=1, which makes that a failure.
func New(t testing.TB) *postgres.DB {
	t.Helper()
	u := URL(t)
	ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
	defer cancel()
	db, err := postgres.Open(ctx, u, "")
	if err != nil {
		t.Fatalf("pgtest: open: %v", err)
	}
	// Registered after URL's cleanup, so it runs before the drop.
	t.Cleanup(db.Close)
	return db
}

// URL returns the URL of a fresh, migrated database, dropped when the test
// ends; for tests that open their own connections, such as ones that start
// the whole application. It skips or fails as New does.
func URL(t testing.TB) string {
	t.Helper()
	s := server(t)
	tmpl, err := s.template()
	if err != nil {
		t.Fatalf("pgtest: template database: %v", err)
	}
	return s.create(t, tmpl)
}

// NewURL returns the URL of a fresh, empty database, dropped when the test
// ends; for tests of migrating itself. It skips or fails as New does.
func NewURL(t testing.TB) string {
	t.Helper()
	return server(t).create(t, "template0")
}

// PooledURL returns the URL of the database at direct (a URL that URL or
// NewURL returned) through the PgBouncer of CHATTERLY_TEST_PGBOUNCER_URL,
// in a query mode that a pooler in transaction mode allows; "" when that
// variable is unset. Databases are created and dropped on the direct URL,
// as CREATE DATABASE ... TEMPLATE needs a session of its own.
func PooledURL(t testing.TB, direct string) string {
	t.Helper()
	raw := os.Getenv(EnvPgBouncerURL)
	if raw == "" {
		return ""
	}
	pooled, err := url.Parse(raw)
	if err != nil || (pooled.Scheme != "postgres" && pooled.Scheme != "postgresql") {
		t.Fatalf("pgtest: %s must be a postgres:// URL", EnvPgBouncerURL)
	}
	d, err := url.Parse(direct)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	pooled.Path = d.Path
	q := pooled.Query()
	if !q.Has("default_query_exec_mode") {
		q.Set("default_query_exec_mode", "cache_describe")
	}
	pooled.RawQuery = q.Encode()
	return pooled.String()
}

// A testServer is the PostgreSQL server the tests use, reached through its
// maintenance database (the one in the environment's URL).
type testServer struct {
	base  *url.URL
	admin *pgxpool.Pool

	mu       sync.Mutex
	tmplName string // set once the template exists
}

var (
	serversMu sync.Mutex
	servers   = map[string]*testServer{}
)

func server(t testing.TB) *testServer {
	t.Helper()
	raw := os.Getenv(EnvDatabaseURL)
	if raw == "" {
		if os.Getenv(EnvRequireServices) == "1" {
			t.Fatalf("pgtest: %s is not set and %s=1", EnvDatabaseURL, EnvRequireServices)
		}
		t.Skipf("pgtest: %s is not set", EnvDatabaseURL)
	}
	serversMu.Lock()
	defer serversMu.Unlock()
	if s, ok := servers[raw]; ok {
		return s
	}
	base, err := url.Parse(raw)
	if err != nil || (base.Scheme != "postgres" && base.Scheme != "postgresql") {
		t.Fatalf("pgtest: %s must be a postgres:// URL", EnvDatabaseURL)
	}
	// The pool lives as long as the process: tests in parallel share it.
	admin, err := pgxpool.New(context.Background(), raw)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	s := &testServer{base: base, admin: admin}
	servers[raw] = s
	return s
}

// urlFor returns the URL of the database name on the same server.
func (s *testServer) urlFor(name string) string {
	u := *s.base
	u.Path = "/" + name
	return u.String()
}

// create makes a copy of the database tmpl and drops it when t ends.
func (s *testServer) create(t testing.TB, tmpl string) string {
	t.Helper()
	name := testPrefix + randomHex(8)
	ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
	defer cancel()
	sql := fmt.Sprintf("CREATE DATABASE %s TEMPLATE %s", pgx.Identifier{name}.Sanitize(), pgx.Identifier{tmpl}.Sanitize())
	if _, err := s.admin.Exec(ctx, sql); err != nil {
		t.Fatalf("pgtest: %s: %v", sql, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		// FORCE ends connections that the test left open.
		if _, err := s.admin.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
			t.Errorf("pgtest: drop database %s: %v", name, err)
		}
	})
	return s.urlFor(name)
}

// template returns the name of a migrated database to copy, creating it the
// first time. It is named after a hash of the migrations, so a changed
// schema gets a new one and test runs of different branches coexist.
func (s *testServer) template() (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.tmplName != "" {
		return s.tmplName, nil
	}
	sum, err := migrationsHash()
	if err != nil {
		return "", err
	}
	name := templatePrefix + hex.EncodeToString(sum[:8])
	// Any 64 bits will do for the lock key; these differ per schema too.
	key := int64(binary.BigEndian.Uint64(sum[8:16])) //nolint:gosec // wrapping around is harmless here
	ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
	defer cancel()
	if err := s.buildTemplate(ctx, name, key); err != nil {
		return "", err
	}
	s.tmplName = name
	return name, nil
}

// buildTemplate creates the template unless another process did. Test
// binaries of several packages run at once, so they take turns under an
// advisory lock; the template is built under another name and renamed when
// complete, so one left half-built by a killed process is never copied.
func (s *testServer) buildTemplate(ctx context.Context, name string, key int64) (err error) {
	conn, err := s.admin.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", key); err != nil {
		return err
	}
	defer func() {
		if _, uerr := conn.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1)", key); uerr != nil && err == nil {
			err = uerr
		}
	}()
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&exists); err != nil {
		return err
	}
	if exists {
		return nil
	}
	build := pgx.Identifier{name + "_build"}.Sanitize()
	for _, sql := range []string{
		"DROP DATABASE IF EXISTS " + build + " WITH (FORCE)",
		"CREATE DATABASE " + build + " TEMPLATE template0",
	} {
		if _, err := conn.Exec(ctx, sql); err != nil {
			return fmt.Errorf("%s: %w", sql, err)
		}
	}
	db, err := postgres.Open(ctx, s.urlFor(name+"_build"), "")
	if err != nil {
		return err
	}
	err = db.Migrate(ctx)
	db.Close()
	if err != nil {
		return err
	}
	if _, err := conn.Exec(ctx, "ALTER DATABASE "+build+" RENAME TO "+pgx.Identifier{name}.Sanitize()); err != nil {
		return fmt.Errorf("rename template: %w", err)
	}
	return nil
}

// migrationsHash is a SHA-256 of the migration files' names and contents.
func migrationsHash() ([]byte, error) {
	h := sha256.New()
	err := fs.WalkDir(migrations.FS, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".sql") {
			return err
		}
		b, err := fs.ReadFile(migrations.FS, path)
		if err != nil {
			return err
		}
		fmt.Fprintf(h, "%s\x00%d\x00", path, len(b))
		h.Write(b)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return h.Sum(nil), nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

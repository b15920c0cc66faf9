package postgres

import (
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Primary lets the black-box tests run statements that no store method
// makes, to check the schema itself.
func Primary(db *DB) *pgxpool.Pool { return db.primary }

// Pools are the primary, replica and direct pools, which may be one.
func Pools(db *DB) (primary, replica, direct *pgxpool.Pool) {
	return db.primary, db.replica, db.direct
}

// QueryMode is the query exec mode a pool's connections use.
func QueryMode(p *pgxpool.Pool) pgx.QueryExecMode {
	return p.Config().ConnConfig.DefaultQueryExecMode
}

// Translate is the one place errors are classified.
var Translate = translate

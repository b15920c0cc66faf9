package postgres

import "github.com/jackc/pgx/v5/pgxpool"

// Primary lets the black-box tests run statements that no store method
// makes, to check the schema itself.
func Primary(db *DB) *pgxpool.Pool { return db.primary }

// Translate is the one place errors are classified.
var Translate = translate

// Package migrations holds the database schema as goose SQL migrations,
// embedded so that the binary can migrate a database on its own.
package migrations

import "embed"

// FS holds the migration files, named NNNNN_description.sql, at its root.
//
//go:embed *.sql
var FS embed.FS

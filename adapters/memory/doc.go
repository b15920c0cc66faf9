// Package memory implements every port in process memory. Tests use it, and
// so does the no-infrastructure dev mode; nothing it holds survives a restart.
// Each type passes the same contract suite as its PostgreSQL or Redis twin.
package memory

//go:build !sqlite_preupdate_hook

package sqlite

// hasvc captures changes with SQLite's preupdate hook, which
// github.com/mattn/go-sqlite3 compiles in only with a build tag. Without
// it, this line stops the build with a message saying so.
var _ = "build hasvc with -tags sqlite_preupdate_hook (the Makefile does)" + 1

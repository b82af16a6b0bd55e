package sqlite

import (
	"strings"

	"hasvc/internal/apply"
)

// SQLite authorizer action codes (sqlite3.h).
const (
	authCreateIndex     = 1
	authCreateTable     = 2
	authCreateTempIndex = 3
	authCreateTempTable = 4
	authCreateTempTrig  = 5
	authCreateTempView  = 6
	authCreateTrigger   = 7
	authCreateView      = 8
	authDelete          = 9
	authDropIndex       = 10
	authDropTable       = 11
	authDropTempIndex   = 12
	authDropTempTable   = 13
	authDropTempTrigger = 14
	authDropTempView    = 15
	authDropTrigger     = 16
	authDropView        = 17
	authInsert          = 18
	authPragma          = 19
	authRead            = 20
	authTransaction     = 22
	authUpdate          = 23
	authAttach          = 24
	authDetach          = 25
	authAlterTable      = 26
	authCreateVTable    = 29
	authDropVTable      = 30
	authFunction        = 31
	authSavepoint       = 32
	authSelect          = 21
	authOK              = 0
	authDeny            = 1
)

// Pragmas tenants may run, and only to read. Every other pragma, and every
// assignment, could change the connection or the file outside the change
// log, so it is refused. schemaPragmas take a table or index name as their
// argument; valuePragmas take none (an argument would be an assignment).
var (
	schemaPragmas = map[string]bool{
		"table_info": true, "table_xinfo": true, "table_list": true,
		"index_list": true, "index_info": true, "index_xinfo": true,
		"foreign_key_list": true, "foreign_key_check": true,
		"integrity_check": true, "quick_check": true,
	}
	valuePragmas = map[string]bool{
		"collation_list": true, "function_list": true, "pragma_list": true,
		"user_version": true, "schema_version": true, "application_id": true,
		"page_count": true, "page_size": true, "freelist_count": true,
		"encoding": true, "foreign_keys": true, "data_version": true,
	}
)

// authorize is the SQLite authorizer of every connection. It runs while a
// statement is prepared. For hasvc's own SQL (c.tenant false) it only notes
// schema changes; for tenants' SQL it is the sandbox: no ATTACH, no
// extension loading, no temporary objects or virtual tables (neither is
// replicated), no transaction control (a request is one transaction), no
// pragma but the read-only ones, and no access to hasvc's tables. Each
// refusal says what it refused (see deny).
func (c *Conn) authorize(op int, arg1, arg2, dbName string) int {
	switch op {
	case authCreateIndex, authCreateTable, authCreateTrigger, authCreateView,
		authDropIndex, authDropTable, authDropTrigger, authDropView, authAlterTable:
		c.ddl = true
	}
	switch op {
	case authCreateTable:
		c.created = arg1
	case authSelect:
		c.selected = true
	case authInsert:
		if isReplicatedTable(arg1) {
			c.inserts = true
		}
	case authRead:
		if isSchemaTable(arg1) {
			c.readsSchema = true
		}
	}
	if !c.tenant {
		return authOK
	}
	switch op {
	case authAttach, authDetach:
		return c.deny("ATTACH and DETACH are not allowed: a database is one file")
	case authTransaction:
		return c.deny(strings.ToUpper(arg1) + ": a request is already one transaction")
	case authSavepoint:
		return c.deny("SAVEPOINT, RELEASE and ROLLBACK TO are not allowed here: a request is already one transaction")
	case authCreateTempIndex, authCreateTempTable, authCreateTempTrig, authCreateTempView,
		authDropTempIndex, authDropTempTable, authDropTempTrigger, authDropTempView:
		return c.deny("temporary tables, views, indexes and triggers are not allowed: they would not replicate")
	case authCreateVTable, authDropVTable:
		return c.deny("virtual tables are not allowed: they would not replicate")
	case authFunction:
		if strings.EqualFold(arg2, "load_extension") {
			return c.deny("load_extension is not allowed")
		}
		return authOK
	case authAlterTable:
		// arg1 is the schema, arg2 the table (and the last argument a
		// dropped column's name, not a schema).
		switch {
		case arg1 != "main":
			return c.deny("access to " + arg1 + "." + arg2 + " is not allowed: only the main schema is")
		case isInternalTable(arg2):
			return c.deny("table " + arg2 + " is hasvc's own and not accessible")
		}
		return authOK
	case authPragma:
		name := strings.ToLower(arg1)
		switch {
		case schemaPragmas[name] && !isInternalTable(arg2):
			return authOK
		case valuePragmas[name] && arg2 == "":
			return authOK
		case valuePragmas[name]:
			return c.deny("PRAGMA " + name + " may only be read")
		}
		return c.deny("PRAGMA " + name + " is not allowed")
	}
	if (op == authInsert || op == authUpdate || op == authDelete) && strings.EqualFold(arg1, "sqlite_sequence") && !c.ddl {
		// A schema change keeps sqlite_sequence itself (ALTER TABLE
		// RENAME renames its row, DROP TABLE deletes it), and replays
		// the same way on every copy; a tenant's own write would not.
		return c.deny("sqlite_sequence is kept by SQLite (AUTOINCREMENT); writing it would not replicate")
	}
	if isInternalTable(arg1) || isInternalTable(arg2) {
		// The sqlite_ tables stay readable (clients browse the schema);
		// SQLite itself refuses writes to them.
		return c.deny("table " + internalName(arg1, arg2) + " is hasvc's own and not accessible")
	}
	switch dbName {
	case "", "main":
	case "temp":
		if (op == authRead || op == authUpdate) && isSchemaTable(arg1) {
			// ALTER TABLE ... RENAME reads and rewrites the temp schema
			// for objects to fix up; tenants can create none, so it is
			// empty (and SQLite refuses direct writes to a schema table).
			return authOK
		}
		return c.deny("temporary tables, views, indexes and triggers are not allowed: they would not replicate")
	default:
		return c.deny("access to " + dbName + "." + arg1 + " is not allowed: only the main schema is")
	}
	return authOK
}

// deny records the first refusal of the statement being prepared, which
// prepare reports in place of SQLite's "not authorized".
func (c *Conn) deny(why string) int {
	if c.refused == "" {
		c.refused = why
	}
	return authDeny
}

// internalName returns whichever of a and b names one of hasvc's tables.
func internalName(a, b string) string {
	if isInternalTable(a) {
		return a
	}
	return b
}

// isInternalTable reports whether name is one of hasvc's bookkeeping tables.
func isInternalTable(name string) bool { return apply.Internal(name) }

// isReplicatedTable reports whether changes to table name are captured.
func isReplicatedTable(name string) bool { return apply.Replicated(name) }

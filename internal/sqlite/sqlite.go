package sqlite

// This file is the thin cgo layer over the SQLite library that
// github.com/mattn/go-sqlite3 compiles into the binary. Connections are
// opened here (only those that take Go functions go through mattn's driver,
// see Options.Functions), and statements run through the functions below
// because the driver's row scanning changes storage classes (TEXT with a
// DATETIME declared type becomes a time, BLOB and TEXT both become
// []byte), and hasvc must return every value with the storage class SQLite
// holds.
//
// The prototypes are declared here rather than included from a header so that
// building needs nothing beyond the Go module; they match sqlite3.h exactly.

/*
#include <stdint.h>
#include <stdlib.h>

typedef struct sqlite3 sqlite3;
typedef struct sqlite3_stmt sqlite3_stmt;
typedef struct sqlite3_value sqlite3_value;
typedef long long int sqlite3_int64;

const char *sqlite3_libversion(void);
int sqlite3_prepare_v3(sqlite3*, const char*, int, unsigned int, sqlite3_stmt**, const char**);
int sqlite3_step(sqlite3_stmt*);
int sqlite3_reset(sqlite3_stmt*);
int sqlite3_finalize(sqlite3_stmt*);
int sqlite3_clear_bindings(sqlite3_stmt*);
int sqlite3_bind_parameter_count(sqlite3_stmt*);
const char *sqlite3_bind_parameter_name(sqlite3_stmt*, int);
int sqlite3_bind_int64(sqlite3_stmt*, int, sqlite3_int64);
int sqlite3_bind_double(sqlite3_stmt*, int, double);
int sqlite3_bind_text(sqlite3_stmt*, int, const char*, int, void(*)(void*));
int sqlite3_bind_blob(sqlite3_stmt*, int, const void*, int, void(*)(void*));
int sqlite3_bind_zeroblob(sqlite3_stmt*, int, int);
int sqlite3_bind_null(sqlite3_stmt*, int);
int sqlite3_column_count(sqlite3_stmt*);
const char *sqlite3_column_name(sqlite3_stmt*, int);
const char *sqlite3_column_decltype(sqlite3_stmt*, int);
int sqlite3_column_type(sqlite3_stmt*, int);
sqlite3_int64 sqlite3_column_int64(sqlite3_stmt*, int);
double sqlite3_column_double(sqlite3_stmt*, int);
const unsigned char *sqlite3_column_text(sqlite3_stmt*, int);
const void *sqlite3_column_blob(sqlite3_stmt*, int);
int sqlite3_column_bytes(sqlite3_stmt*, int);
int sqlite3_stmt_readonly(sqlite3_stmt*);
sqlite3_int64 sqlite3_changes64(sqlite3*);
sqlite3_int64 sqlite3_last_insert_rowid(sqlite3*);
void sqlite3_set_last_insert_rowid(sqlite3*, sqlite3_int64);
const char *sqlite3_errmsg(sqlite3*);
int sqlite3_extended_errcode(sqlite3*);
int sqlite3_get_autocommit(sqlite3*);
void sqlite3_interrupt(sqlite3*);
int sqlite3_limit(sqlite3*, int, int);
int sqlite3_db_config(sqlite3*, int op, ...);
int sqlite3_preupdate_old(sqlite3*, int, sqlite3_value**);
int sqlite3_preupdate_new(sqlite3*, int, sqlite3_value**);
int sqlite3_preupdate_count(sqlite3*);
int sqlite3_value_type(sqlite3_value*);
sqlite3_int64 sqlite3_value_int64(sqlite3_value*);
double sqlite3_value_double(sqlite3_value*);
const unsigned char *sqlite3_value_text(sqlite3_value*);
const void *sqlite3_value_blob(sqlite3_value*);
int sqlite3_value_bytes(sqlite3_value*);

#define HASVC_TRANSIENT ((void(*)(void*))-1)

typedef struct sqlite3_context sqlite3_context;
int sqlite3_set_authorizer(sqlite3*, int(*)(void*, int, const char*, const char*, const char*, const char*), void*);
void sqlite3_progress_handler(sqlite3*, int, int(*)(void*), void*);
void *sqlite3_preupdate_hook(sqlite3*, void(*)(void*, sqlite3*, int, const char*, const char*, sqlite3_int64, sqlite3_int64), void*);
int sqlite3_create_function_v2(sqlite3*, const char*, int, int, void*,
	void (*)(sqlite3_context*, int, sqlite3_value**), void (*)(sqlite3_context*, int, sqlite3_value**),
	void (*)(sqlite3_context*), void (*)(void*));
void *sqlite3_user_data(sqlite3_context*);

// The Go side of the callbacks (callbacks.go). Each gets the cgo handle of
// its connection, the one thing SQLite keeps for it.
extern int hasvcAuthorize(uintptr_t, int, char*, char*, char*);
extern void hasvcPreupdate(uintptr_t, int, char*, char*, long long, long long);
extern void hasvcRowid(uintptr_t, void*, char*, int);
extern int hasvcProgress(uintptr_t);

static int hasvc_authorize(void *h, int op, const char *a1, const char *a2, const char *db, const char *inner) {
	return hasvcAuthorize((uintptr_t)h, op, (char*)a1, (char*)a2, (char*)db);
}

static void hasvc_preupdate(void *h, sqlite3 *db, int op, const char *dbname, const char *table,
		sqlite3_int64 oldRowid, sqlite3_int64 newRowid) {
	hasvcPreupdate((uintptr_t)h, op, (char*)dbname, (char*)table, oldRowid, newRowid);
}

static int hasvc_progress(void *h) {
	return hasvcProgress((uintptr_t)h);
}

static void hasvc_rowid(sqlite3_context *ctx, int n, sqlite3_value **argv) {
	const unsigned char *t = sqlite3_value_text(argv[0]);
	hasvcRowid((uintptr_t)sqlite3_user_data(ctx), ctx, (char*)t, t ? sqlite3_value_bytes(argv[0]) : 0);
}

int sqlite3_open_v2(const char*, sqlite3**, int, const char*);
int sqlite3_close_v2(sqlite3*);
int sqlite3_busy_timeout(sqlite3*, int);
typedef struct sqlite3_backup sqlite3_backup;
sqlite3_backup *sqlite3_backup_init(sqlite3*, const char*, sqlite3*, const char*);
int sqlite3_backup_step(sqlite3_backup*, int);
int sqlite3_backup_finish(sqlite3_backup*);
int sqlite3_errcode(sqlite3*);

// hasvc_open opens a connection without SQLite's own mutex (a Conn is used
// by one goroutine at a time), reading name as a URI ("file:...?mode=ro",
// "vfs=memdb").
static int hasvc_open(const char *name, sqlite3 **db) {
	// SQLITE_OPEN_READWRITE | _CREATE | _URI | _NOMUTEX
	int rc = sqlite3_open_v2(name, db, 0x02 | 0x04 | 0x40 | 0x8000, 0);
	// Readers and the writer wait for each other instead of failing at
	// once; in WAL mode that only happens at checkpoints.
	if (rc == 0) sqlite3_busy_timeout(*db, 5000);
	return rc;
}

// hasvc_copy replaces dst's main database with src's (the backup API).
static int hasvc_copy(sqlite3 *dst, sqlite3 *src) {
	sqlite3_backup *b = sqlite3_backup_init(dst, "main", src, "main");
	if (!b) return sqlite3_errcode(dst);
	sqlite3_backup_step(b, -1);
	return sqlite3_backup_finish(b);
}

// How many virtual machine instructions SQLite runs between two looks at
// whether the statement is to stop (Conn.interrupted): a few tens of
// microseconds of work, so a callback into Go costs well under 1% of a long
// statement, and a point query (a few dozen instructions) never pays it.
#define HASVC_PROGRESS_OPS 4096

static int hasvc_set_callbacks(sqlite3 *db, uintptr_t h, int capture) {
	int rc = sqlite3_set_authorizer(db, hasvc_authorize, (void*)h);
	if (rc == 0 && capture) sqlite3_preupdate_hook(db, hasvc_preupdate, (void*)h);
	if (rc == 0) sqlite3_progress_handler(db, HASVC_PROGRESS_OPS, hasvc_progress, (void*)h);
	return rc;
}

static int hasvc_create_rowid_function(sqlite3 *db, const char *name, uintptr_t h) {
	return sqlite3_create_function_v2(db, name, 1, 1, (void*)h, hasvc_rowid, 0, 0, 0);  // SQLITE_UTF8
}

static int hasvc_prepare(sqlite3 *db, _GoString_ sql, int off, sqlite3_stmt **st, int *used) {
	const char *p = _GoStringPtr(sql) + off;
	const char *tail = 0;
	int rc = sqlite3_prepare_v3(db, p, (int)(_GoStringLen(sql) - off), 0x01, st, &tail);
	*used = tail ? (int)(tail - p) : (int)(_GoStringLen(sql) - off);
	return rc;
}

static int hasvc_bind_text(sqlite3_stmt *st, int i, _GoString_ v) {
	size_t n = _GoStringLen(v);
	return sqlite3_bind_text(st, i, n ? _GoStringPtr(v) : "", (int)n, HASVC_TRANSIENT);
}

static int hasvc_bind_blob(sqlite3_stmt *st, int i, const void *p, int n) {
	if (n == 0) return sqlite3_bind_zeroblob(st, i, 0);
	return sqlite3_bind_blob(st, i, p, n, HASVC_TRANSIENT);
}

int sqlite3_config(int, ...);

// Turn off SQLite's memory statistics: keeping them takes a process-wide
// mutex on every allocation, which readers on different cores then fight
// over. Only effective before the library initializes.
static int hasvc_config_memstatus_off(void) {
	return sqlite3_config(9, 0);  // SQLITE_CONFIG_MEMSTATUS
}

// SQLITE_DBCONFIG_* options taking (int, int*); sqlite3_db_config is variadic,
// which cgo cannot call directly.
static int hasvc_db_config(sqlite3 *db, int op, int on) {
	return sqlite3_db_config(db, op, on, (int*)0);
}

// hasvc_reset makes a statement ready to run again, its parameters unbound:
// one call into C instead of two.
static void hasvc_reset(sqlite3_stmt *st) {
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
}

// A column's value as hasvc_step reads it: its storage class (type), and
// i, f, or p and n (text and blobs, valid until the next step).
typedef struct {
	int type;
	int n;
	sqlite3_int64 i;
	double f;
	const void *p;
} hasvc_value;

int sqlite3_stmt_status(sqlite3_stmt*, int, int);

// hasvc_column reads column c of the current row into v. Text is read
// before its length, as SQLite asks.
static void hasvc_column(sqlite3_stmt *st, int c, hasvc_value *v) {
	v->type = sqlite3_column_type(st, c);
	switch (v->type) {
	case 1: v->i = sqlite3_column_int64(st, c); break;
	case 2: v->f = sqlite3_column_double(st, c); break;
	case 3: v->p = sqlite3_column_text(st, c); v->n = sqlite3_column_bytes(st, c); break;
	case 4: v->p = sqlite3_column_blob(st, c); v->n = sqlite3_column_bytes(st, c); break;
	}
}

// hasvc_row reads the ncols columns of the current row into out.
static void hasvc_row(sqlite3_stmt *st, int ncols, hasvc_value *out) {
	for (int c = 0; c < ncols; c++) hasvc_column(st, c, &out[c]);
}

// hasvc_step steps a statement and, if it gives a row, reads it into out:
// one call into C per row instead of two or three per column. *prepared
// counts the times SQLite prepared the statement again (the schema
// changed under it): if that step did, the row is not read, as its
// columns may not be the ncols the caller knows.
static int hasvc_step(sqlite3_stmt *st, int ncols, hasvc_value *out, int *prepared) {
	int rc = sqlite3_step(st);
	int n = sqlite3_stmt_status(st, 5, 0);  // SQLITE_STMTSTATUS_REPREPARE
	if (n != *prepared) {
		*prepared = n;
		return rc;
	}
	if (rc == 100) hasvc_row(st, ncols, out);  // SQLITE_ROW
	return rc;
}

// hasvc_preupdate_value reads column i of the old (which == 0) or new row in
// a preupdate hook, keeping its storage class.
static int hasvc_preupdate_value(sqlite3 *db, int which, int i, int *type,
		sqlite3_int64 *iv, double *fv, const void **p, int *n) {
	sqlite3_value *v = 0;
	int rc = which ? sqlite3_preupdate_new(db, i, &v) : sqlite3_preupdate_old(db, i, &v);
	if (rc != 0) return rc;
	*type = sqlite3_value_type(v);
	switch (*type) {
	case 1: *iv = sqlite3_value_int64(v); break;
	case 2: *fv = sqlite3_value_double(v); break;
	case 3: *p = sqlite3_value_text(v); *n = sqlite3_value_bytes(v); break;
	case 4: *p = sqlite3_value_blob(v); *n = sqlite3_value_bytes(v); break;
	}
	return 0;
}
*/
import "C"

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"runtime/cgo"
	"sync"
	"unsafe"

	"github.com/mattn/go-sqlite3"
)

// SQLite result codes and constants used here.
const (
	sqliteOK   = 0
	sqliteRow  = 100
	sqliteDone = 101

	sqliteInteger = 1
	sqliteFloat   = 2
	sqliteText    = 3
	sqliteBlob    = 4
	sqliteNull    = 5

	dbconfigEnableFKey    = 1002
	dbconfigEnableTrigger = 1003
	dbconfigDefensive     = 1010
	dbconfigTrustedSchema = 1017

	limitLength    = 0
	limitSQLLength = 1
)

// Version returns the version of the SQLite library in the binary.
func Version() string { return C.GoString(C.sqlite3_libversion()) }

var configureOnce sync.Once

// configureSQLite sets process-wide SQLite options before the first
// connection opens.
func configureSQLite() {
	configureOnce.Do(func() { C.hasvc_config_memstatus_off() })
}

// rawConn is a SQLite connection handle.
type rawConn struct{ db *C.sqlite3 }

// openRaw opens a connection to dsn (a file name or URI).
func openRaw(dsn string) (rawConn, error) {
	name := C.CString(dsn)
	defer C.free(unsafe.Pointer(name))
	var db *C.sqlite3
	rc := C.hasvc_open(name, &db)
	r := rawConn{db: db}
	if rc != sqliteOK {
		if db == nil {
			return r, fmt.Errorf("open %s: out of memory", dsn)
		}
		err := r.err(rc)
		C.sqlite3_close_v2(db)
		return rawConn{}, fmt.Errorf("open %s: %w", dsn, err)
	}
	return r, nil
}

// close closes the connection; its statements must be finalized first.
func (r rawConn) close() error { return r.err(C.sqlite3_close_v2(r.db)) }

// copyFrom replaces r's main database with src's, page by page.
func (r rawConn) copyFrom(src rawConn) error { return r.err(C.hasvc_copy(r.db, src.db)) }

// handleOf returns the sqlite3* behind a mattn connection. The driver keeps
// it in an unexported field; reading it through reflect is the one place
// hasvc relies on the driver's layout, and every test that opens a database
// covers it.
func handleOf(sc *sqlite3.SQLiteConn) rawConn {
	return rawConn{db: (*C.sqlite3)(reflect.ValueOf(sc).Elem().FieldByName("db").UnsafePointer())}
}

func (r rawConn) err(rc C.int) error {
	if rc == sqliteOK || rc == sqliteRow || rc == sqliteDone {
		return nil
	}
	return newError(int(C.sqlite3_extended_errcode(r.db)), C.GoString(C.sqlite3_errmsg(r.db)))
}

func (r rawConn) prepare(sql string, off int) (*C.sqlite3_stmt, int, error) {
	var st *C.sqlite3_stmt
	var used C.int
	rc := C.hasvc_prepare(r.db, sql, C.int(off), &st, &used)
	if rc != sqliteOK {
		return nil, 0, r.err(rc)
	}
	return st, int(used), nil
}

// prepareRaw prepares the statement at sql[off:] on c, with what the
// authorizer notes about it reset first; a refusal says what it refused.
func (c *Conn) prepareRaw(sql string, off int) (*C.sqlite3_stmt, int, error) {
	c.ddl, c.refused, c.created, c.selected, c.readsSchema, c.inserts = false, "", "", false, false, false
	st, used, err := c.raw.prepare(sql, off)
	if err != nil {
		var se *Error
		if errors.As(err, &se) && se.Kind == KindRefused && c.refused != "" {
			se.Message = c.refused
		}
		return nil, 0, err
	}
	return st, used, nil
}

func (r rawConn) changes() int64      { return int64(C.sqlite3_changes64(r.db)) }
func (r rawConn) lastInsertID() int64 { return int64(C.sqlite3_last_insert_rowid(r.db)) }
func (r rawConn) setLastInsertID(id int64) {
	C.sqlite3_set_last_insert_rowid(r.db, C.sqlite3_int64(id))
}
func (r rawConn) autocommit() bool { return C.sqlite3_get_autocommit(r.db) != 0 }
func (r rawConn) interrupt()       { C.sqlite3_interrupt(r.db) }

func (r rawConn) dbConfig(op int, on bool) error {
	v := 0
	if on {
		v = 1
	}
	return r.err(C.hasvc_db_config(r.db, C.int(op), C.int(v)))
}

func (r rawConn) setLimit(id, v int) { C.sqlite3_limit(r.db, C.int(id), C.int(v)) }

// setCallbacks gives SQLite the handle of the connection for its
// authorizer, its progress handler and, if capture, its preupdate hook
// (callbacks.go).
func (r rawConn) setCallbacks(h cgo.Handle, capture bool) error {
	c := C.int(0)
	if capture {
		c = 1
	}
	return r.err(C.hasvc_set_callbacks(r.db, C.uintptr_t(h), c))
}

// createRowidFunction makes SQL function name call the connection's
// nextRowid (callbacks.go).
func (r rawConn) createRowidFunction(name string, h cgo.Handle) error {
	cs := C.CString(name)
	defer C.free(unsafe.Pointer(cs))
	return r.err(C.hasvc_create_rowid_function(r.db, cs, C.uintptr_t(h)))
}

// preupdateCount returns the number of columns of the row in a preupdate hook.
func (r rawConn) preupdateCount() int { return int(C.sqlite3_preupdate_count(r.db)) }

// preupdateValue returns column i of the old or new row in a preupdate hook
// as int64, float64, string, []byte or nil, and about how many bytes it
// takes. A text or blob larger than room is not copied: errNoRoom.
func (r rawConn) preupdateValue(newRow bool, i int, room int) (any, int, error) {
	var typ, n C.int
	var iv C.sqlite3_int64
	var fv C.double
	var p unsafe.Pointer
	which := C.int(0)
	if newRow {
		which = 1
	}
	if rc := C.hasvc_preupdate_value(r.db, which, C.int(i), &typ, &iv, &fv, &p, &n); rc != 0 {
		return nil, 0, r.err(rc)
	}
	size := 8
	if typ == sqliteText || typ == sqliteBlob {
		size += int(n)
	}
	if size > room {
		return nil, 0, errNoRoom
	}
	switch typ {
	case sqliteInteger:
		return int64(iv), size, nil
	case sqliteFloat:
		return float64(fv), size, nil
	case sqliteText:
		return C.GoStringN((*C.char)(p), n), size, nil
	case sqliteBlob:
		return C.GoBytes(p, n), size, nil
	}
	return nil, size, nil
}

// Stmt is a prepared statement.
type Stmt struct {
	st     *C.sqlite3_stmt
	raw    rawConn
	sql    string // the text of this one statement
	ncols  int
	names  []string // column names
	decl   []string // declared types of the columns ("" for expressions)
	ddl    bool     // the authorizer saw a schema change while preparing
	ctas   string   // the table a CREATE TABLE ... AS SELECT creates
	cached bool     // owned by the connection's cache
	inUse  bool     // handed out and not yet released
	params []string // parameter names, "" for anonymous '?'
	// readOnly is sqlite3_stmt_readonly, read once: it depends on the
	// text alone, which a statement prepared again keeps.
	readOnly bool
	vals     []C.hasvc_value // the row stepRow read, one per column
	// prepared counts SQLite's preparing the statement again when the
	// schema changed (stepRow then describes it again); ownNames are
	// the column names to keep when it does (see Conn.prepare).
	prepared C.int
	ownNames []string
}

// ReadOnly reports whether the statement leaves the database as it is.
func (s *Stmt) ReadOnly() bool { return s.readOnly }

// ColumnCount is the number of columns of the statement's rows.
func (s *Stmt) ColumnCount() int { return s.ncols }

func (s *Stmt) finalize() {
	if s.st != nil {
		C.sqlite3_finalize(s.st)
		s.st = nil
	}
}

func (s *Stmt) reset() { C.hasvc_reset(s.st) }

// describe fills column and parameter names after prepare.
func (s *Stmt) describe() {
	s.ncols = int(C.sqlite3_column_count(s.st))
	s.readOnly = C.sqlite3_stmt_readonly(s.st) != 0
	s.names = make([]string, s.ncols)
	s.decl = make([]string, s.ncols)
	s.vals = make([]C.hasvc_value, s.ncols)
	for i := range s.ncols {
		s.names[i] = C.GoString(C.sqlite3_column_name(s.st, C.int(i)))
		s.decl[i] = s.declType(i)
	}
	if s.ownNames != nil && len(s.ownNames) == s.ncols {
		copy(s.names, s.ownNames)
	}
	n := int(C.sqlite3_bind_parameter_count(s.st))
	s.params = make([]string, n)
	for i := range n {
		if p := C.sqlite3_bind_parameter_name(s.st, C.int(i+1)); p != nil {
			s.params[i] = C.GoString(p)
		}
	}
}

// declType returns the declared type of result column i, or "".
func (s *Stmt) declType(i int) string {
	if p := C.sqlite3_column_decltype(s.st, C.int(i)); p != nil {
		return C.GoString(p)
	}
	return ""
}

// bind binds v (int64, float64, string, []byte, bool or nil) to parameter i
// (1-based).
func (s *Stmt) bind(i int, v any) error {
	var rc C.int
	switch x := v.(type) {
	case nil:
		rc = C.sqlite3_bind_null(s.st, C.int(i))
	case int64:
		rc = C.sqlite3_bind_int64(s.st, C.int(i), C.sqlite3_int64(x))
	case int:
		rc = C.sqlite3_bind_int64(s.st, C.int(i), C.sqlite3_int64(x))
	case bool:
		b := 0
		if x {
			b = 1
		}
		rc = C.sqlite3_bind_int64(s.st, C.int(i), C.sqlite3_int64(b))
	case float64:
		rc = C.sqlite3_bind_double(s.st, C.int(i), C.double(x))
	case string:
		if len(x) > math.MaxInt32 {
			return newError(codeTooBig, "string or blob too big")
		}
		rc = C.hasvc_bind_text(s.st, C.int(i), x)
	case []byte:
		if len(x) > math.MaxInt32 {
			return newError(codeTooBig, "string or blob too big")
		}
		var p unsafe.Pointer
		if len(x) > 0 {
			p = unsafe.Pointer(&x[0])
		}
		rc = C.hasvc_bind_blob(s.st, C.int(i), p, C.int(len(x)))
	default:
		return fmt.Errorf("cannot bind value of type %T", v)
	}
	return s.raw.err(rc)
}

// step advances the statement: true if a row is available.
func (s *Stmt) step() (bool, error) {
	return s.result(C.sqlite3_step(s.st))
}

// stepRow advances the statement and, if a row is available, reads it
// whole (values then calls for it without calling into C). If SQLite
// prepared the statement again on that step (another connection changed
// the schema: `SELECT *` may now have another column), the statement is
// described again first: ColumnCount, the names and declared types are
// then those of the new program. That can only happen on a run's first
// step, before its read transaction holds the schema.
func (s *Stmt) stepRow() (bool, error) {
	var out *C.hasvc_value
	if s.ncols > 0 {
		out = &s.vals[0]
	}
	was := s.prepared
	rc := C.hasvc_step(s.st, C.int(s.ncols), out, &s.prepared)
	if s.prepared != was {
		s.describe()
		if rc == sqliteRow && s.ncols > 0 {
			C.hasvc_row(s.st, C.int(s.ncols), &s.vals[0])
		}
	}
	return s.result(rc)
}

// values puts the row stepRow read into row (len(row) == ColumnCount()),
// each value with its storage class, as Column gives it.
func (s *Stmt) values(row []any) {
	for i := range row {
		row[i] = goValue(&s.vals[i])
	}
}

// goValue is a column's value as hasvc_column read it, with its storage
// class: int64, float64, string, []byte or nil.
func goValue(v *C.hasvc_value) any {
	switch v._type {
	case sqliteInteger:
		return int64(v.i)
	case sqliteFloat:
		return float64(v.f)
	case sqliteText:
		return C.GoStringN((*C.char)(v.p), v.n)
	case sqliteBlob:
		if v.n == 0 {
			return []byte{}
		}
		return C.GoBytes(v.p, v.n)
	}
	return nil
}

func (s *Stmt) result(rc C.int) (bool, error) {
	switch rc {
	case sqliteRow:
		return true, nil
	case sqliteDone:
		return false, nil
	default:
		err := s.raw.err(rc)
		if err == nil {
			err = errors.New("sqlite step failed")
		}
		return false, err
	}
}

// Column returns result column i of the current row, keeping its storage
// class: int64, float64, string, []byte or nil.
func (s *Stmt) Column(i int) any {
	var v C.hasvc_value
	C.hasvc_column(s.st, C.int(i), &v)
	return goValue(&v)
}

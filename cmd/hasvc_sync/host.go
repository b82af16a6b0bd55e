package main

/*
#include <stdlib.h>
#include "ext.h"
*/
import "C"

import (
	"errors"
	"fmt"
	"unsafe"

	"hasvc/internal/apply"
	"hasvc/internal/change"
	"hasvc/internal/replica"
)

// SQLite result codes the extension looks at.
const (
	sqliteOK   = 0
	sqliteRow  = 100
	sqliteDone = 101
)

// hostDB is the extension's own connection to the host's database file,
// opened with the host's SQLite: the replica.Target the follower writes.
// Triggers and foreign-key actions are off on it for good (their effects
// are in the messages already); the host's connection is untouched.
type hostDB struct {
	db     *C.sqlite3
	tables map[string]*apply.Table
}

// open opens a connection to the file at path with the host's SQLite.
func open(path string) (*hostDB, error) {
	var db *C.sqlite3
	rc := cstr(path, func(p *C.char) C.int { return C.hs_open(p, &db) })
	h := &hostDB{db: db, tables: map[string]*apply.Table{}}
	if rc != sqliteOK {
		err := h.err(rc)
		h.close()
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	return h, nil
}

// openHost opens the follower's connection to the host's database file.
func openHost(path string) (*hostDB, error) {
	h, err := open(path)
	if err != nil {
		return nil, err
	}
	// WAL, so that the host's readers and the follower never block each
	// other; a busy timeout for the host's own brief locks.
	err = h.execAll("PRAGMA busy_timeout = 5000; PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = OFF")
	if err == nil && C.hs_triggers(h.db, 0) != sqliteOK {
		err = h.err(sqliteOK)
	}
	if err != nil {
		h.close()
		return nil, fmt.Errorf("prepare %s: %w", path, err)
	}
	return h, nil
}

func (h *hostDB) close() {
	if h.db != nil {
		C.hs_close(h.db)
		h.db = nil
	}
}

// err describes the connection's last error.
func (h *hostDB) err(rc C.int) error {
	if h.db == nil {
		return fmt.Errorf("sqlite error %d", rc)
	}
	return errors.New(C.GoString(C.hs_errmsg(h.db)))
}

// run prepares the first statement of sql, binds args, steps it through
// (calling row, if set, at each row) and returns how much of sql it used.
func (h *hostDB) run(sql string, args []any, row func(vals []any) error) (int, error) {
	p := C.CString(sql)
	defer C.free(unsafe.Pointer(p))
	var st *C.sqlite3_stmt
	var used C.int
	if rc := C.hs_prepare(h.db, p, C.int(len(sql)), &st, &used); rc != sqliteOK {
		return 0, h.err(rc)
	}
	if st == nil { // white space or a comment
		return int(used), nil
	}
	defer C.hs_finalize(st)
	for i, a := range args {
		if err := bind(st, C.int(i+1), a); err != nil {
			return 0, err
		}
	}
	for {
		switch rc := C.hs_step(st); rc {
		case sqliteDone:
			return int(used), nil
		case sqliteRow:
			if row == nil {
				continue
			}
			vals := make([]any, C.hs_column_count(st))
			for i := range vals {
				vals[i] = column(st, C.int(i))
			}
			if err := row(vals); err != nil {
				return 0, err
			}
		default:
			return 0, h.err(rc)
		}
	}
}

func bind(st *C.sqlite3_stmt, i C.int, v any) error {
	var rc C.int
	switch x := v.(type) {
	case nil:
		rc = C.hs_bind_null(st, i)
	case int64:
		rc = C.hs_bind_int64(st, i, C.int64_t(x))
	case float64:
		rc = C.hs_bind_double(st, i, C.double(x))
	case string:
		p := C.CString(x)
		rc = C.hs_bind_text(st, i, p, C.int(len(x)))
		C.free(unsafe.Pointer(p))
	case []byte:
		var p unsafe.Pointer
		if len(x) > 0 {
			p = C.CBytes(x)
			defer C.free(p)
		}
		rc = C.hs_bind_blob(st, i, p, C.int(len(x)))
	default:
		return fmt.Errorf("cannot bind a %T", v)
	}
	if rc != sqliteOK {
		return fmt.Errorf("bind parameter %d: sqlite error %d", i, rc)
	}
	return nil
}

// SQLite's storage classes.
const (
	sqliteInteger = 1
	sqliteFloat   = 2
	sqliteText    = 3
	sqliteBlob    = 4
)

func column(st *C.sqlite3_stmt, i C.int) any {
	switch C.hs_column_type(st, i) {
	case sqliteInteger:
		return int64(C.hs_column_int64(st, i))
	case sqliteFloat:
		return float64(C.hs_column_double(st, i))
	case sqliteText:
		p := C.hs_column_blob(st, i)
		return string(C.GoBytes(p, C.hs_column_bytes(st, i)))
	case sqliteBlob:
		p := C.hs_column_blob(st, i)
		return C.GoBytes(p, C.hs_column_bytes(st, i))
	}
	return nil
}

// execAll runs every statement of sql.
func (h *hostDB) execAll(sql string) error {
	for len(sql) > 0 {
		used, err := h.run(sql, nil, nil)
		if err != nil {
			return err
		}
		if used == 0 {
			break
		}
		sql = sql[used:]
	}
	return nil
}

// queryInt64 returns the first column of the first row of sql.
func (h *hostDB) queryInt64(sql string) (int64, error) {
	var n int64
	found := false
	_, err := h.run(sql, nil, func(v []any) error {
		if !found {
			n, _ = v[0].(int64)
			found = true
		}
		return nil
	})
	if err == nil && !found {
		err = errors.New("no row")
	}
	return n, err
}

// Applied implements replica.Target.
func (h *hostDB) Applied() (uint64, bool, error) {
	tables, err := h.queryInt64("SELECT count(*) FROM sqlite_schema")
	if err != nil {
		return 0, false, replica.BadTargetError{Err: err}
	}
	if tables == 0 {
		return 0, false, nil
	}
	seq, err := h.queryInt64("SELECT seq FROM " + replica.StateTable)
	if err != nil {
		return 0, false, replica.BadTargetError{Err: fmt.Errorf("the database is not a replica of a hasvc database (%w): start it on a new, empty file", err)}
	}
	return uint64(seq), true, nil
}

// Restore implements replica.Target: it records seq in the downloaded file
// and copies it over the database with SQLite's backup API, in one
// transaction.
func (h *hostDB) Restore(path string, seq uint64) error {
	src, err := open(path)
	if err != nil {
		return err
	}
	defer src.close()
	err = src.execAll("CREATE TABLE " + replica.StateTable + " (seq INTEGER NOT NULL)")
	if err == nil {
		_, err = src.run("INSERT INTO "+replica.StateTable+" (seq) VALUES (?)", []any{int64(seq)}, nil)
	}
	if err != nil {
		return err
	}
	clear(h.tables)
	if rc := C.hs_backup(h.db, src.db); rc != sqliteOK {
		return h.err(rc)
	}
	return nil
}

// Apply implements replica.Target.
func (h *hostDB) Apply(seq uint64, msg *change.Message) error {
	if err := h.execAll("BEGIN IMMEDIATE"); err != nil {
		return err
	}
	err := apply.Message(h, msg, false)
	if err == nil {
		_, err = h.run("UPDATE "+replica.StateTable+" SET seq = ?", []any{int64(seq)}, nil)
	}
	if err == nil {
		err = h.execAll("COMMIT")
	}
	if err != nil {
		h.execAll("ROLLBACK")
		clear(h.tables) // a schema change may have been rolled back
	}
	return err
}

// Exec implements apply.Conn.
func (h *hostDB) Exec(sql string, args ...any) (int64, error) {
	if _, err := h.run(sql, args, nil); err != nil {
		return 0, err
	}
	return int64(C.hs_changes(h.db)), nil
}

// Schema implements apply.Conn. The statement was accepted by the node's
// sandbox when it was written.
func (h *hostDB) Schema(sql string) error {
	clear(h.tables)
	return h.execAll(sql)
}

// Query implements apply.Conn.
func (h *hostDB) Query(sql string, args []any, row func([]any) error) error {
	_, err := h.run(sql, args, row)
	return err
}

// Table implements apply.Conn.
func (h *hostDB) Table(name string) (*apply.Table, error) {
	if t, ok := h.tables[name]; ok {
		return t, nil
	}
	t, err := apply.Describe(func(sql string, args []any, row func([]any) error) error {
		_, err := h.run(sql, args, row)
		return err
	}, name)
	if err != nil {
		return nil, err
	}
	h.tables[name] = t
	return t, nil
}

package sqlite

// The callbacks SQLite makes into Go: the authorizer and the progress
// handler (every connection), the preupdate hook (the writer's capture)
// and the rowid function (an eventual-mode writer). SQLite keeps one cgo
// handle of the connection for them, made at open and deleted at close.
//
// mattn's driver offers the same registrations, but it registers five
// functions of its own on every connection it opens and, closing one,
// walks every callback of every connection in the process to find its
// own: at density, with hundreds of databases open, closing one to open
// another spent a third of the node's CPU there (BENCHMARKS.md). So
// connections are opened without the driver (Open), and their callbacks
// are these.

/*
#include <stdint.h>
#include <stdlib.h>

typedef struct sqlite3_context sqlite3_context;
void sqlite3_result_int64(sqlite3_context*, long long);
void sqlite3_result_null(sqlite3_context*);
void sqlite3_result_error(sqlite3_context*, const char*, int);
*/
import "C"

import (
	"runtime/cgo"
	"unsafe"
)

// connOf returns the connection a callback's handle stands for.
func connOf(h C.uintptr_t) *Conn { return cgo.Handle(h).Value().(*Conn) }

//export hasvcAuthorize
func hasvcAuthorize(h C.uintptr_t, op C.int, arg1, arg2, dbName *C.char) C.int {
	return C.int(connOf(h).authorize(int(op), C.GoString(arg1), C.GoString(arg2), C.GoString(dbName)))
}

//export hasvcPreupdate
func hasvcPreupdate(h C.uintptr_t, op C.int, dbName, table *C.char, oldRowid, newRowid C.longlong) {
	c := connOf(h)
	if c.capture == nil {
		return
	}
	c.capture.hook(preupdate{
		op:       int(op),
		database: C.GoString(dbName),
		table:    C.GoString(table),
		oldRowid: int64(oldRowid),
		newRowid: int64(newRowid),
	})
}

//export hasvcRowid
func hasvcRowid(h C.uintptr_t, ctx unsafe.Pointer, table *C.char, n C.int) {
	sc := (*C.sqlite3_context)(ctx)
	rowid, ok, err := connOf(h).nextRowid(C.GoStringN(table, n))
	switch {
	case err != nil:
		msg := C.CString(err.Error())
		defer C.free(unsafe.Pointer(msg))
		C.sqlite3_result_error(sc, msg, -1)
	case !ok:
		C.sqlite3_result_null(sc)
	default:
		C.sqlite3_result_int64(sc, C.longlong(rowid))
	}
}

//export hasvcProgress
func hasvcProgress(h C.uintptr_t) C.int {
	if connOf(h).interrupted() {
		return 1 // SQLite stops the statement with SQLITE_INTERRUPT
	}
	return 0
}

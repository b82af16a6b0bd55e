package sqlite

/*
#include <stdlib.h>
int sqlite3_complete(const char *sql);
*/
import "C"

import (
	"strings"
	"unsafe"
)

// Complete reports whether sql ends a statement as SQLite reads it: a
// semicolon outside strings, quoted names, comments and trigger bodies
// (SQLite's own sqlite3_complete, which the sqlite3 shell uses to decide
// when to run what was typed). Text that is only white space and
// comments is not complete.
func Complete(sql string) bool {
	if strings.IndexByte(sql, 0) >= 0 {
		return false
	}
	cs := C.CString(sql)
	defer C.free(unsafe.Pointer(cs))
	return C.sqlite3_complete(cs) != 0
}

// SplitComplete splits sql into the complete statements it begins with
// (each with its semicolon, surrounding white space trimmed; statements
// holding only comments dropped) and the rest, which does not end a
// statement yet.
func SplitComplete(sql string) (stmts []string, rest string) {
	start := 0
	for i := 0; i < len(sql); i++ {
		if sql[i] != ';' || !Complete(sql[start:i+1]) {
			continue
		}
		if s := strings.TrimSpace(sql[start : i+1]); !onlyTrivia(s) {
			stmts = append(stmts, s)
		}
		start = i + 1
	}
	return stmts, sql[start:]
}

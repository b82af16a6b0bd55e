// Command hasvc_sync is a SQLite loadable extension (build it with
// `make ext`: go build -buildmode=c-shared) that keeps the database it is
// loaded into a live, read-only replica of a hasvc database, inside the
// host process, in any language that loads SQLite extensions:
//
//	.load ./hasvc_sync
//	SELECT hasvc_sync_start('http://node:8080', 'mydb', 'TOKEN');
//	SELECT hasvc_sync_status();   -- {"state":"following","sequence":42,...}
//	SELECT hasvc_sync_wait(42);   -- blocks until sequence 42 is applied
//	SELECT hasvc_sync_stop();
//
// It follows with package replica, as `hasvc replica` does, and writes
// through its own connection to the same file, opened with the host's
// SQLite (the routines the host hands an extension): two copies of SQLite
// in one process would not see each other's locks and could corrupt the
// file, so the extension links none. The token may be left out and given
// in HA_TOKEN or HASVC_TOKEN instead. A follower that failed (see
// hasvc_sync_status) may be started again without a stop.
package main

/*
#include <stdlib.h>
#include "ext.h"
*/
import "C"

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
	"unsafe"

	"hasvc/internal/replica"
)

func main() {}

// A follower is one replica, started on one host connection.
type follower struct {
	r      *replica.Replica
	cancel context.CancelFunc
	done   chan struct{}
}

var (
	mu    sync.Mutex
	syncs = map[uintptr]*follower{} // by host connection
)

// answer hands a result to the C side: malloc'd text it frees, and
// whether it is an error.
func answer(out string, err error, failed *C.int) *C.char {
	if err != nil {
		*failed = 1
		return C.CString("hasvc_sync: " + err.Error())
	}
	return C.CString(out)
}

//export hasvcSyncStart
func hasvcSyncStart(conn C.uintptr_t, file, urls, db, token *C.char, failed *C.int) *C.char {
	out, err := start(uintptr(conn), gostr(file), gostr(urls), gostr(db), gostr(token))
	return answer(out, err, failed)
}

func start(conn uintptr, file, urls, db, token string) (string, error) {
	if file == "" {
		return "", errors.New("the connection has no database file (a memory or temporary database cannot be a replica)")
	}
	if db == "" || urls == "" {
		return "", errors.New("usage: hasvc_sync_start(url, database [, token])")
	}
	if token == "" {
		token = os.Getenv("HA_TOKEN")
	}
	if token == "" {
		token = os.Getenv("HASVC_TOKEN")
	}
	if token == "" {
		return "", errors.New("give a read token for the database as the third argument, or in HA_TOKEN")
	}
	mu.Lock()
	defer mu.Unlock()
	if s, ok := syncs[conn]; ok {
		if st := s.r.Status().State; st != "failed" && st != "stopped" {
			return "", errors.New("this connection already follows a database: hasvc_sync_stop() first")
		}
		// It failed (or stopped): its Run has returned, the state being
		// set on the way out, and its connection is closing. Start anew
		// once it has.
		<-s.done
	}
	local, err := openHost(file)
	if err != nil {
		return "", err
	}
	var list []string
	for _, u := range strings.Split(urls, ",") {
		if u = strings.TrimSpace(u); u != "" {
			list = append(list, u)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &follower{cancel: cancel, done: make(chan struct{})}
	s.r = &replica.Replica{
		URLs: list, DB: db, Token: token, Target: local, Dir: filepath.Dir(file),
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: logLevel()})).With("component", "hasvc_sync"),
	}
	syncs[conn] = s
	go func() {
		defer close(s.done)
		s.r.Run(ctx) // its outcome is in its status
		local.close()
	}()
	return "started", nil
}

// logLevel is HASVC_SYNC_LOG (debug, info, warn or error; default error):
// the extension writes to its host's standard error, which is the host's
// own, so by default only what stops it.
func logLevel() slog.Level {
	var l slog.Level
	if err := l.UnmarshalText([]byte(os.Getenv("HASVC_SYNC_LOG"))); err != nil {
		return slog.LevelError
	}
	return l
}

//export hasvcSyncStatus
func hasvcSyncStatus(conn C.uintptr_t, failed *C.int) *C.char {
	mu.Lock()
	s := syncs[uintptr(conn)]
	mu.Unlock()
	st := replica.Status{State: "stopped"}
	if s != nil {
		st = s.r.Status()
	}
	out, err := json.Marshal(st)
	return answer(string(out), err, failed)
}

//export hasvcSyncWait
func hasvcSyncWait(conn C.uintptr_t, seq, timeoutMs C.int64_t, failed *C.int) *C.char {
	mu.Lock()
	s := syncs[uintptr(conn)]
	mu.Unlock()
	if s == nil {
		return answer("", errors.New("this connection follows no database: hasvc_sync_start() first"), failed)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(timeoutMs)*time.Millisecond)
	defer cancel()
	if err := s.r.WaitFor(ctx, uint64(seq)); err != nil {
		return answer("", err, failed)
	}
	return answer(fmt.Sprint(s.r.Status().Sequence), nil, failed)
}

//export hasvcSyncStop
func hasvcSyncStop(conn C.uintptr_t, failed *C.int) *C.char {
	mu.Lock()
	s := syncs[uintptr(conn)]
	delete(syncs, uintptr(conn))
	mu.Unlock()
	if s == nil {
		return answer("", errors.New("this connection follows no database"), failed)
	}
	s.cancel()
	<-s.done
	return answer(fmt.Sprint(s.r.Status().Sequence), nil, failed)
}

func gostr(s *C.char) string {
	if s == nil {
		return ""
	}
	return C.GoString(s)
}

// cstr is s as C text for the duration of fn.
func cstr[T any](s string, fn func(*C.char) T) T {
	p := C.CString(s)
	defer C.free(unsafe.Pointer(p))
	return fn(p)
}

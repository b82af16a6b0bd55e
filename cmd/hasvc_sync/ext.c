/* hasvc_sync: a SQLite extension that keeps the database it is loaded
 * into a live replica of a hasvc database (see main.go). This file is the
 * extension's face to SQLite: its entry point, its SQL functions, and thin
 * wrappers through which the Go side calls the host's SQLite. */
#include <stdlib.h>
#include <string.h>
#include <sqlite3ext.h>
SQLITE_EXTENSION_INIT1

#include "ext.h"
#include "_cgo_export.h"

int hs_open(const char *path, sqlite3 **db) {
	return sqlite3_open_v2(path, db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, NULL);
}
int hs_close(sqlite3 *db) { return sqlite3_close_v2(db); }
const char *hs_errmsg(sqlite3 *db) { return sqlite3_errmsg(db); }
int hs_prepare(sqlite3 *db, const char *sql, int n, sqlite3_stmt **st, int *used) {
	const char *tail = sql;
	int rc = sqlite3_prepare_v2(db, sql, n, st, &tail);
	*used = (int)(tail - sql);
	return rc;
}
int hs_bind_int64(sqlite3_stmt *st, int i, int64_t v) { return sqlite3_bind_int64(st, i, v); }
int hs_bind_double(sqlite3_stmt *st, int i, double v) { return sqlite3_bind_double(st, i, v); }
int hs_bind_text(sqlite3_stmt *st, int i, const char *p, int n) { return sqlite3_bind_text(st, i, p, n, SQLITE_TRANSIENT); }
int hs_bind_blob(sqlite3_stmt *st, int i, const void *p, int n) {
	if (n == 0) return sqlite3_bind_zeroblob(st, i, 0);
	return sqlite3_bind_blob(st, i, p, n, SQLITE_TRANSIENT);
}
int hs_bind_null(sqlite3_stmt *st, int i) { return sqlite3_bind_null(st, i); }
int hs_step(sqlite3_stmt *st) { return sqlite3_step(st); }
int hs_finalize(sqlite3_stmt *st) { return sqlite3_finalize(st); }
int hs_column_count(sqlite3_stmt *st) { return sqlite3_column_count(st); }
int hs_column_type(sqlite3_stmt *st, int i) { return sqlite3_column_type(st, i); }
int64_t hs_column_int64(sqlite3_stmt *st, int i) { return sqlite3_column_int64(st, i); }
double hs_column_double(sqlite3_stmt *st, int i) { return sqlite3_column_double(st, i); }
const void *hs_column_blob(sqlite3_stmt *st, int i) { return sqlite3_column_blob(st, i); }
int hs_column_bytes(sqlite3_stmt *st, int i) { return sqlite3_column_bytes(st, i); }
int64_t hs_changes(sqlite3 *db) { return sqlite3_changes(db); }
int hs_triggers(sqlite3 *db, int on) { return sqlite3_db_config(db, SQLITE_DBCONFIG_ENABLE_TRIGGER, on, (int *)0); }

int hs_backup(sqlite3 *dst, sqlite3 *src) {
	sqlite3_backup *b = sqlite3_backup_init(dst, "main", src, "main");
	if (!b) return sqlite3_errcode(dst);
	sqlite3_backup_step(b, -1);
	return sqlite3_backup_finish(b);
}

/* text returns argument i as text, or NULL. */
static const char *text(int argc, sqlite3_value **argv, int i) {
	if (i >= argc) return NULL;
	return (const char *)sqlite3_value_text(argv[i]);
}

/* answer sets the function's result from what the Go side returned: a
 * malloc'd JSON text, or an error. */
static void answer(sqlite3_context *ctx, char *out, int failed) {
	if (failed) {
		sqlite3_result_error(ctx, out, -1);
	} else {
		sqlite3_result_text(ctx, out, -1, SQLITE_TRANSIENT);
	}
	free(out);
}

/* hasvc_sync_start(url, database [, token]) */
static void start_fn(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
	sqlite3 *db = sqlite3_context_db_handle(ctx);
	const char *file = sqlite3_db_filename(db, "main");
	int failed = 0;
	char *out = hasvcSyncStart((uintptr_t)db, (char *)(file ? file : ""), (char *)text(argc, argv, 0),
		(char *)text(argc, argv, 1), (char *)text(argc, argv, 2), &failed);
	answer(ctx, out, failed);
}

/* hasvc_sync_status() */
static void status_fn(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
	int failed = 0;
	char *out = hasvcSyncStatus((uintptr_t)sqlite3_context_db_handle(ctx), &failed);
	answer(ctx, out, failed);
}

/* hasvc_sync_wait(sequence [, timeout_ms]) */
static void wait_fn(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
	int failed = 0;
	sqlite3_int64 timeout = argc > 1 ? sqlite3_value_int64(argv[1]) : 10000;
	char *out = hasvcSyncWait((uintptr_t)sqlite3_context_db_handle(ctx), sqlite3_value_int64(argv[0]), timeout, &failed);
	answer(ctx, out, failed);
}

/* hasvc_sync_stop() */
static void stop_fn(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
	int failed = 0;
	char *out = hasvcSyncStop((uintptr_t)sqlite3_context_db_handle(ctx), &failed);
	answer(ctx, out, failed);
}

/* The entry point SQLite derives from the file name hasvc_sync.so. */
#ifdef _WIN32
__declspec(dllexport)
#endif
int sqlite3_hasvcsync_init(sqlite3 *db, char **pzErrMsg, const sqlite3_api_routines *pApi) {
	SQLITE_EXTENSION_INIT2(pApi);
	int rc = SQLITE_OK;
	int flags = SQLITE_UTF8 | SQLITE_DIRECTONLY;
	if (rc == SQLITE_OK) rc = sqlite3_create_function(db, "hasvc_sync_start", 2, flags, 0, start_fn, 0, 0);
	if (rc == SQLITE_OK) rc = sqlite3_create_function(db, "hasvc_sync_start", 3, flags, 0, start_fn, 0, 0);
	if (rc == SQLITE_OK) rc = sqlite3_create_function(db, "hasvc_sync_status", 0, flags, 0, status_fn, 0, 0);
	if (rc == SQLITE_OK) rc = sqlite3_create_function(db, "hasvc_sync_wait", 1, flags, 0, wait_fn, 0, 0);
	if (rc == SQLITE_OK) rc = sqlite3_create_function(db, "hasvc_sync_wait", 2, flags, 0, wait_fn, 0, 0);
	if (rc == SQLITE_OK) rc = sqlite3_create_function(db, "hasvc_sync_stop", 0, flags, 0, stop_fn, 0, 0);
	return rc;
}

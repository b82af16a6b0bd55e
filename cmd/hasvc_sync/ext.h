/* The host process's SQLite, as the hasvc_sync extension calls it. Every
 * call goes through the routines the host handed the extension when it
 * loaded it (sqlite3ext.h): the extension links no SQLite of its own. */
#include <stdint.h>
#include <sqlite3.h>

int hs_open(const char *path, sqlite3 **db);
int hs_close(sqlite3 *db);
const char *hs_errmsg(sqlite3 *db);
int hs_prepare(sqlite3 *db, const char *sql, int n, sqlite3_stmt **st, int *used);
int hs_bind_int64(sqlite3_stmt *st, int i, int64_t v);
int hs_bind_double(sqlite3_stmt *st, int i, double v);
int hs_bind_text(sqlite3_stmt *st, int i, const char *p, int n);
int hs_bind_blob(sqlite3_stmt *st, int i, const void *p, int n);
int hs_bind_null(sqlite3_stmt *st, int i);
int hs_step(sqlite3_stmt *st);
int hs_finalize(sqlite3_stmt *st);
int hs_column_count(sqlite3_stmt *st);
int hs_column_type(sqlite3_stmt *st, int i);
int64_t hs_column_int64(sqlite3_stmt *st, int i);
double hs_column_double(sqlite3_stmt *st, int i);
const void *hs_column_blob(sqlite3_stmt *st, int i);
int hs_column_bytes(sqlite3_stmt *st, int i);
int64_t hs_changes(sqlite3 *db);
int hs_triggers(sqlite3 *db, int on);
int hs_backup(sqlite3 *dst, sqlite3 *src);

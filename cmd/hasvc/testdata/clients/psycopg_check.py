"""Checks hasvc through psycopg2 (client-side parameters, simple protocol)
or psycopg 3 (server-side parameters, extended protocol, prepared
statements after the threshold, binary results). Connection settings come
from the PG* environment variables. Usage: psycopg_check.py 2|3.
Exits non-zero on the first failed check."""
import io
import os
import sys

which = sys.argv[1]
if which == "2":
    import psycopg2 as driver
    from psycopg2 import errors as pgerrors

    def connect():
        return driver.connect(host=os.environ["PGHOST"], port=os.environ["PGPORT"],
                              dbname=os.environ["PGDATABASE"], user=os.environ["PGUSER"],
                              password=os.environ["PGPASSWORD"], sslmode="disable")
    table = "p2"
else:
    import psycopg as driver
    from psycopg import errors as pgerrors

    def connect():
        return driver.connect(host=os.environ["PGHOST"], port=os.environ["PGPORT"],
                              dbname=os.environ["PGDATABASE"], user=os.environ["PGUSER"],
                              password=os.environ["PGPASSWORD"], sslmode="disable",
                              prepare_threshold=2)
    table = "p3"


def check(ok, what):
    if not ok:
        print("FAIL:", what, file=sys.stderr)
        sys.exit(1)


conn = connect()
cur = conn.cursor()
cur.execute(f"CREATE TABLE {table} (id BIGINT PRIMARY KEY, name TEXT NOT NULL, score DOUBLE PRECISION, raw BYTEA, ok BOOLEAN)")
for i in range(1, 21):
    cur.execute(f"INSERT INTO {table} (id, name, score, raw, ok) VALUES (%s, %s, %s, %s, %s)",
                (i, f"n{i}", i + 0.25, bytes([0, i]), i % 2 == 0))
conn.commit()

# Values and types, several times (psycopg 3 prepares after two).
for _ in range(4):
    cur.execute(f"SELECT id, name, score, raw, ok FROM {table} WHERE id = %s", (4,))
    row = cur.fetchone()
    check(row[0] == 4 and row[1] == "n4" and row[2] == 4.25, f"row {row}")
    check(bytes(row[3]) == b"\x00\x04", f"bytea {row[3]!r}")
    check(row[4] is True, f"bool {row[4]!r}")
    oids = [d.type_code for d in cur.description]
    check(oids == [20, 25, 701, 17, 16], f"type oids {oids}")

if which == "3":
    # Binary results.
    bcur = conn.cursor(binary=True)
    bcur.execute(f"SELECT id, score, ok FROM {table} WHERE id = %s", (3,))
    check(bcur.fetchone() == (3, 3.25, False), "binary row")

# NULLs and text with quotes.
cur.execute(f"INSERT INTO {table} (id, name) VALUES (%s, %s)", (100, "it's"))
cur.execute(f"SELECT name, score, raw, ok FROM {table} WHERE id = 100")
check(cur.fetchone() == ("it's", None, None, None), "nulls")
conn.rollback()
cur.execute(f"SELECT count(*) FROM {table}")
check(cur.fetchone()[0] == 20, "rollback undid the insert")

# A unique violation has its SQLSTATE, and the transaction is aborted.
try:
    cur.execute(f"INSERT INTO {table} (id, name) VALUES (1, 'dup')")
    check(False, "duplicate accepted")
except pgerrors.UniqueViolation as e:
    check(e.pgcode == "23505" if which == "2" else e.sqlstate == "23505", "sqlstate")
try:
    cur.execute("SELECT 1")
    check(False, "statement after an error ran")
except pgerrors.InFailedSqlTransaction:
    pass
conn.rollback()

# Autocommit and server settings.
conn.autocommit = True
cur.execute("SELECT current_database(), current_setting('server_version')")
db, version = cur.fetchone()
check(db == os.environ["PGDATABASE"] and version.startswith("15"), f"{db} {version}")
cur.execute(f"UPDATE {table} SET score = score * 2 WHERE id <= %s", (10,))
check(cur.rowcount == 10, f"rowcount {cur.rowcount}")
cur.execute(f"SELECT sum(score) FROM {table}")
total = cur.fetchone()[0]
check(abs(total - (sum(i + 0.25 for i in range(1, 11)) * 2 + sum(i + 0.25 for i in range(11, 21)))) < 1e-9, f"sum {total}")

# COPY both ways, as each driver does it.
cur.execute("CREATE TABLE IF NOT EXISTS copied_" + which + " (id INTEGER PRIMARY KEY, name TEXT)")
if which == "2":
    cur.copy_expert("COPY copied_2 FROM STDIN WITH (FORMAT csv)", io.StringIO('1,"a, b"\n2,\n'))
    out = io.StringIO()
    cur.copy_expert("COPY copied_2 TO STDOUT WITH (FORMAT csv)", out)
    check(out.getvalue() == '1,"a, b"\n2,\n', "copy out " + repr(out.getvalue()))
else:
    with cur.copy("COPY copied_3 (id, name) FROM STDIN") as cp:
        cp.write_row((1, "a\tb"))
        cp.write_row((2, None))
    with cur.copy("COPY copied_3 TO STDOUT") as cp:
        rows = [tuple(r) for r in cp.rows()]
    check(rows == [("1", "a\tb"), ("2", None)], "copy out " + repr(rows))
conn.close()
print(f"psycopg{which} ok")

#!/usr/bin/env bash
# pgbench point selects against hasvc and against a real PostgreSQL on the
# same machine, side by side, with two result shapes: pgbench -S's query on
# a 100,000-row pgbench_accounts (one integer column) and
# `SELECT id, name FROM users WHERE id = :id` on a 100,000-row users table
# (an integer and a text column). 8 clients, simple, extended and prepared
# protocols, rounds alternating between the two servers.
#
#   ./bench/pgbench.sh                      # 10 s per run, 3 rounds
#   DURATION=20 ROUNDS=5 ./bench/pgbench.sh
#
# Needs bin/hasvc (make build), pgbench and psql, and PostgreSQL's server
# binaries (Debian: apt-get install postgresql). As root, PostgreSQL runs
# as the postgres user.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-10}
ROUNDS=${ROUNDS:-3}
CLIENTS=${CLIENTS:-8}
HASVC_HTTP_PORT=${HASVC_HTTP_PORT:-18531}
HASVC_PG_PORT=${HASVC_PG_PORT:-18532}
PG_PORT=${PG_PORT:-18533}
PGBIN=${PGBIN:-$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)}
dir=$(mktemp -d)
chmod 755 "$dir"
as_pg() { if [ "$(id -u)" = 0 ]; then su postgres -c "$*"; else bash -c "$*"; fi; }
cleanup() {
	as_pg "$PGBIN/pg_ctl -D $dir/pg -m immediate stop" >/dev/null 2>&1 || true
	kill $(jobs -p) 2>/dev/null || true
	wait 2>/dev/null || true
	rm -rf "$dir"
}
trap cleanup EXIT

# hasvc, with pgbench_accounts loaded in chunks (one message per chunk).
./bin/hasvc --name bench --host 127.0.0.1 --port "$HASVC_HTTP_PORT" --nats-port -1 --pg-port "$HASVC_PG_PORT" \
	--data-dir "$dir/hasvc" --log-level warn >"$dir/hasvc.log" 2>&1 &
for _ in $(seq 100); do
	curl -fs "http://127.0.0.1:$HASVC_HTTP_PORT/healthz" >/dev/null 2>&1 && break
	sleep 0.1
done
token=$(cat "$dir/hasvc/admin.token")
curl -fs -H "Authorization: Bearer $token" -d '{"name":"bench"}' "http://127.0.0.1:$HASVC_HTTP_PORT/databases" >/dev/null
export PGPASSWORD=$token
hpsql() { psql -X -q -h 127.0.0.1 -p "$HASVC_PG_PORT" -U bench -d bench -v ON_ERROR_STOP=1 "$@"; }
hpsql -c "CREATE TABLE pgbench_accounts (aid INTEGER PRIMARY KEY, bid INTEGER, abalance INTEGER, filler TEXT)"
for k in 0 1 2 3 4; do
	hpsql -c "INSERT INTO pgbench_accounts WITH RECURSIVE s(i) AS (SELECT $k*20000+1 UNION ALL SELECT i+1 FROM s WHERE i < ($k+1)*20000)
		SELECT i, 1, 0, printf('%84s', '') FROM s"
done
hpsql -c "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL)"
for k in 0 1 2 3 4; do
	hpsql -c "INSERT INTO users WITH RECURSIVE s(i) AS (SELECT $k*20000+1 UNION ALL SELECT i+1 FROM s WHERE i < ($k+1)*20000)
		SELECT i, 'user-' || i FROM s"
done

# PostgreSQL, initialised by pgbench -i (scale 1: the same 100,000 rows).
if [ "$(id -u)" = 0 ]; then chown postgres "$dir"; fi
as_pg "$PGBIN/initdb -D $dir/pg -A trust -U postgres" >/dev/null
as_pg "$PGBIN/pg_ctl -D $dir/pg -o '-p $PG_PORT -k $dir -c listen_addresses=127.0.0.1' -l $dir/pg.log -w start" >/dev/null
pgbench -i -s 1 -q -h 127.0.0.1 -p "$PG_PORT" -U postgres postgres >/dev/null 2>&1
ppsql() { PGPASSWORD= psql -X -q -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres -v ON_ERROR_STOP=1 "$@"; }
ppsql -c "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL)"
ppsql -c "INSERT INTO users SELECT i, 'user-' || i FROM generate_series(1, 100000) AS s(i)"
ppsql -c "VACUUM ANALYZE users"

printf '\\set aid random(1, 100000)\nSELECT abalance FROM pgbench_accounts WHERE aid = :aid;\n' >"$dir/int.sql"
printf '\\set id random(1, 100000)\nSELECT id, name FROM users WHERE id = :id;\n' >"$dir/text.sql"
run() { # server mode shape
	script="$dir/$3.sql"
	if [ "$1" = hasvc ]; then
		pgbench -n -h 127.0.0.1 -p "$HASVC_PG_PORT" -U bench -c "$CLIENTS" -j 2 -T "$DURATION" -M "$2" -f "$script" bench
	else
		PGPASSWORD= pgbench -n -h 127.0.0.1 -p "$PG_PORT" -U postgres -c "$CLIENTS" -j 2 -T "$DURATION" -M "$2" -f "$script" postgres
	fi 2>&1 | awk '/^tps/ {printf "%.0f", $3}'
}
echo "# $(date -u +%F) $(nproc) cores, PostgreSQL $("$PGBIN/postgres" --version | awk '{print $3}'), $CLIENTS clients, ${DURATION}s per run, tps"
for r in $(seq "$ROUNDS"); do
	for shape in int text; do
		for mode in simple extended prepared; do
			# Alternate which server goes first from round to round.
			if [ $((r % 2)) = 1 ]; then
				h=$(run hasvc "$mode" "$shape")
				p=$(run postgres "$mode" "$shape")
			else
				p=$(run postgres "$mode" "$shape")
				h=$(run hasvc "$mode" "$shape")
			fi
			echo "round $r $shape $mode hasvc $h postgres $p"
		done
	done
done

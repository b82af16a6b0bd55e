#!/usr/bin/env bash
# Snapshots of a database of about SIZE_MB megabytes (default 100): the
# time and size of a snapshot, the time a node that lost its copy takes
# to answer its first query when it replays the stream from sequence 1
# against when it boots from the snapshot, and the time of a fork.
#
#   ./bench/snapshots.sh                 # after make build
#   SIZE_MB=200 ./bench/snapshots.sh
set -euo pipefail
cd "$(dirname "$0")/.."
SIZE_MB=${SIZE_MB:-100}
HTTP_PORT=${HTTP_PORT:-18581}
dir=$(mktemp -d)
pid=
cleanup() {
	[ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
	rm -rf "$dir"
}
trap cleanup EXIT
url=http://127.0.0.1:$HTTP_PORT
start() {
	./bin/hasvc --name bench --host 127.0.0.1 --port "$HTTP_PORT" --nats-port -1 --pg-port 0 \
		--data-dir "$dir/data" --log-level info >>"$dir/node.log" 2>&1 &
	pid=$!
	for _ in $(seq 300); do
		curl -fs "$url/healthz" >/dev/null 2>&1 && return
		sleep 0.1
	done
	echo "node did not start:" >&2
	tail -5 "$dir/node.log" >&2
	exit 1
}
stop() { kill "$pid"; wait "$pid" 2>/dev/null || true; pid=; }
req() { curl -fsS -H "Authorization: Bearer $(cat "$dir/data/admin.token")" "$@"; }
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }
first_query() { # sets took: seconds until the first read of a lost copy answers
	stop
	rm -f "$dir/data/db/big.db" "$dir/data/db/big.db-wal" "$dir/data/db/big.db-shm"
	start
	local t0
	t0=$(now)
	req -X POST "$url/db/big" -d '{"sql":"SELECT count(*) FROM t"}' >/dev/null
	took=$(secs "$t0" "$(now)")
}

start
req -X POST "$url/databases" -d '{"name":"big"}' >/dev/null
req -X POST "$url/db/big" -d '{"sql":"CREATE TABLE t (id INTEGER PRIMARY KEY, n INTEGER, s TEXT)"}' >/dev/null
# Messages of 20,000 rows of about 250 bytes (5 MB each): an integer and
# 240 random hexadecimal characters, which compress about 2:1.
rows=$((SIZE_MB * 4000))
for ((k = 0; k < rows; k += 20000)); do
	req -X POST "$url/db/big" -d "{\"sql\":\"INSERT INTO t (n, s) WITH RECURSIVE r(i) AS (SELECT $k UNION ALL SELECT i + 1 FROM r WHERE i < $k + 19999) SELECT i, hex(randomblob(120)) FROM r\"}" >/dev/null
done
size=$(stat -c %s "$dir/data/db/big.db")
echo "# $(date -u +%F) $(nproc) cores; database $((size / 1000000)) MB, $rows rows, $((rows / 20000)) messages"
first_query
echo "replay from sequence 1: first query after $took s"
t0=$(now)
snap=$(req -X POST "$url/db/big/snapshot")
echo "snapshot: $(secs "$t0" "$(now)") s, $snap"
first_query
echo "boot from the snapshot: first query after $took s"
t0=$(now)
req -X POST "$url/databases" -d '{"name":"fork","from":{"database":"big"}}' >/dev/null
echo "fork: $(secs "$t0" "$(now)") s"
t0=$(now)
req -X POST "$url/db/fork" -d '{"sql":"SELECT count(*) FROM t"}' >/dev/null
echo "fork's first query: $(secs "$t0" "$(now)") s"

#!/usr/bin/env bash
# Disk use of one database under steady writes with retention on: a node
# with --snapshot-interval and --retention-age short enough to cycle
# several times, 4 writers inserting rows of about 200 bytes, and every
# STEP seconds the size of the SQLite file (with its WAL), of the
# JetStream store (the stream and the snapshot bucket) and the stream's
# first and last sequences.
#
# The table is kept at KEEP rows (each request inserts one and deletes
# those more than KEEP behind), so the SQLite file stops growing once it
# holds KEEP rows and what is left to grow is history.
#
#   ./bench/retention.sh                              # 10 minutes, after make build
#   MINUTES=3 INTERVAL=20s AGE=40s KEEP=2000 ./bench/retention.sh
set -euo pipefail
cd "$(dirname "$0")/.."
MINUTES=${MINUTES:-10}
INTERVAL=${INTERVAL:-30s}
AGE=${AGE:-60s}
STEP=${STEP:-30}
KEEP=${KEEP:-2000}
HTTP_PORT=${HTTP_PORT:-18591}
dir=$(mktemp -d)
pid=
cleanup() {
	[ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
	kill $(jobs -p) 2>/dev/null || true
	rm -rf "$dir"
}
trap cleanup EXIT
url=http://127.0.0.1:$HTTP_PORT
./bin/hasvc --name bench --host 127.0.0.1 --port "$HTTP_PORT" --nats-port -1 --pg-port 0 \
	--data-dir "$dir/data" --log-level warn --snapshot-interval "$INTERVAL" --retention-age "$AGE" >"$dir/node.log" 2>&1 &
pid=$!
for _ in $(seq 300); do
	curl -fs "$url/healthz" >/dev/null 2>&1 && break
	sleep 0.1
done
token=$(cat "$dir/data/admin.token")
req() { curl -fsS -H "Authorization: Bearer $token" "$@"; }
req -X POST "$url/databases" -d '{"name":"steady"}' >/dev/null
req -X POST "$url/db/steady" -d '{"sql":"CREATE TABLE t (id INTEGER PRIMARY KEY, s TEXT)"}' >/dev/null
end=$(($(date +%s) + MINUTES * 60))
for w in 1 2 3 4; do
	(
		while [ "$(date +%s)" -lt "$end" ]; do
			req -X POST "$url/db/steady" -d '[{"sql":"INSERT INTO t (s) VALUES (hex(randomblob(100)))"},{"sql":"DELETE FROM t WHERE id <= (SELECT max(id) FROM t) - '"$KEEP"'"}]' >/dev/null || true
		done
	) &
done
mb() { echo "scale=1; $(du -sk "$1" 2>/dev/null | cut -f1) / 1000" | bc; }
echo "# $(date -u +%F) $(nproc) cores; snapshot every $INTERVAL, retention age $AGE, table kept at $KEEP rows, ${MINUTES} min of 4 writers"
echo "| minute | SQLite file + WAL (MB) | JetStream store (MB) | of which the stream | of which the bucket | stream first..last | snapshots |"
echo "|---|---|---|---|---|---|---|"
start=$(date +%s)
while [ "$(date +%s)" -lt "$end" ]; do
	sleep "$STEP"
	info=$(req "$url/databases/steady")
	first=$(echo "$info" | sed -n 's/.*"stream_first_seq":\([0-9]*\).*/\1/p')
	last=$(echo "$info" | sed -n 's/.*"stream_seq":\([0-9]*\).*/\1/p')
	snaps=$(req "$url/db/steady/snapshots" | grep -o '"sequence"' | wc -l)
	db=$(($(stat -c %s "$dir/data/db/steady.db") + $(stat -c %s "$dir/data/db/steady.db-wal" 2>/dev/null || echo 0)))
	printf "| %.1f | %.1f | %s | %s | %s | %s..%s | %s |\n" "$(echo "($(date +%s) - $start) / 60" | bc -l)" "$(echo "$db / 1000000" | bc -l)" \
		"$(mb "$dir/data/jetstream")" "$(mb "$(find "$dir/data/jetstream" -type d -name HASVC_steady | head -1)")" \
		"$(mb "$(find "$dir/data/jetstream" -type d -name OBJ_hasvc_snap_steady | head -1)")" "$first" "$last" "$snaps"
done

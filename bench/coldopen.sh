#!/usr/bin/env bash
# Cold opens at density (issue 16): N idle databases on a fresh node
# (created as bench/databases.sh does), then, once the node has closed
# them all for idleness, one query on each in random order (or on SAMPLE
# of them; 1 client, or CLIENTS), then ROTATE of them queried in turn,
# each once a second, for DURATION: p50, p99 and the slowest of each.
#
#   make build && go build -o bin/load ./bench/load
#   ./bench/coldopen.sh 10000
#   SAMPLE=10000 ROTATE=1000 DURATION=30s ./bench/coldopen.sh 100000
#
# CREATE_RATE paces the creates (per second). The embedded NATS server
# keeps a new stream's block file open until it has been idle 30 s and its
# next sync (every minute) closes it, so under an open-file limit L a node
# can create at most about L / 90 s databases a second without running out
# of files: CREATE_RATE=150 under this machine's limit of 20,000. The
# script reports the most files the node held open.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-10000}
HTTP_PORT=${HTTP_PORT:-18581}
NATS_PORT=${NATS_PORT:-18583}
IDLE=${IDLE:-10}
ROTATE=${ROTATE:-1000}
DURATION=${DURATION:-20s}
dir=$(mktemp -d)
"${HASVC:-./bin/hasvc}" --name bench --host 127.0.0.1 --port "$HTTP_PORT" --nats-port "$NATS_PORT" --pg-port 0 \
	--data-dir "$dir/data" --idle-timeout "${IDLE}s" --log-level warn >"$dir/node.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$dir"' EXIT
for _ in $(seq 100); do
	curl -fs "http://127.0.0.1:$HTTP_PORT/healthz" >/dev/null 2>&1 && break
	sleep 0.1
done
token=$(cat "$dir/data/admin.token")
# The most files the node holds open, sampled every second.
(
	most=0
	while kill -0 "$pid" 2>/dev/null; do
		n=$(ls "/proc/$pid/fd" 2>/dev/null | wc -l)
		[ "$n" -gt "$most" ] && most=$n && echo "$most" >"$dir/fdmax"
		sleep 1
	done
) &
load() { ./bin/load -url "http://127.0.0.1:$HTTP_PORT" -token "$token" -db idle -pid "$pid" "$@"; }
# Wait until the node has closed every database.
closed() {
	for _ in $(seq 600); do
		open=$(curl -fs -H "Authorization: Bearer $token" "http://127.0.0.1:$HTTP_PORT/metrics" | awk '/^hasvc_databases_open / {print $2}')
		[ "$open" = 0 ] && return 0
		sleep 1
	done
	echo "databases still open: $open" >&2
	return 1
}
load -scenario dbs -n "$N" -c 8 -create-rate "${CREATE_RATE:-0}"
closed
echo "# $(date -u +%F) $(nproc) cores, $N databases, all closed; RSS $(awk '/VmRSS/ {printf "%.0f MB", $2 / 1024}' "/proc/$pid/status")"
load -scenario cold -n "$N" -sample "${SAMPLE:-0}" -c "${CLIENTS:-1}"
closed
load -scenario rotate -n "$ROTATE" -rate "$ROTATE" -d "$DURATION"
echo "most files open at once: $(cat "$dir/fdmax") (limit $(ulimit -n)); RSS $(awk '/VmRSS/ {printf "%.0f MB", $2 / 1024}' "/proc/$pid/status")"

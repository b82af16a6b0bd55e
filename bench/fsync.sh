#!/usr/bin/env bash
# The price of durability (BENCHMARKS.md): single-row INSERT requests
# against one node under `--fsync always` (the default: every answer
# waits for the disk, one fsync per group of requests) and under an
# interval (2m, NATS's own default), with 16 and 64 clients. Policies
# alternate, a fresh node per round, so noise hits both alike.
#
#   make build && go build -o bin/load ./bench/load
#   ROUNDS=3 DURATION=8s ./bench/fsync.sh
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-8s}
ROUNDS=${ROUNDS:-3}
HASVC=${HASVC:-./bin/hasvc}
HTTP_PORT=${HTTP_PORT:-18480}
NATS_PORT=${NATS_PORT:-18422}
dir=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$dir"' EXIT
echo "# $(date -u +%F) $(nproc) cores, $(go version | cut -d' ' -f3), ${DURATION} per scenario, data on $(df -T "$dir" | awk 'NR==2 {print $2}')"
round() {
	local fsync=$1
	rm -rf "$dir/data"
	"$HASVC" --name bench --host 127.0.0.1 --port "$HTTP_PORT" --nats-port "$NATS_PORT" --pg-port 0 \
		--data-dir "$dir/data" --fsync "$fsync" --log-level warn >"$dir/node.log" 2>&1 &
	local pid=$!
	for _ in $(seq 100); do
		curl -fs "http://127.0.0.1:$HTTP_PORT/healthz" >/dev/null 2>&1 && break
		sleep 0.1
	done
	local token
	token=$(cat "$dir/data/admin.token")
	for c in 16 64; do
		echo "fsync=$fsync $(./bin/load -url "http://127.0.0.1:$HTTP_PORT" -token "$token" -db "ins$c" -scenario insert -c "$c" -d "$DURATION")"
	done
	kill "$pid"
	wait "$pid" 2>/dev/null || true
}
for r in $(seq "$ROUNDS"); do
	echo "## round $r"
	if (( r % 2 )); then round 2m; round always; else round always; round 2m; fi
done

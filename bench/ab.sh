#!/usr/bin/env bash
# Two builds side by side (BENCHMARKS.md): single-row INSERT requests
# against one fresh node per round, build A and build B alternating (A
# first in odd rounds), 16 clients, in the database mode MODE.
#
#   git worktree add /tmp/old <rev> && (cd /tmp/old && make build)
#   make build && go build -o bin/load ./bench/load
#   A=/tmp/old/bin/hasvc B=./bin/hasvc MODE=eventual ROUNDS=4 ./bench/ab.sh
set -euo pipefail
cd "$(dirname "$0")/.."
: "${A:?A=path of build A}" "${B:?B=path of build B}"
DURATION=${DURATION:-8s}
ROUNDS=${ROUNDS:-4}
MODE=${MODE:-strong}
FSYNC=${FSYNC:-2m}
CLIENTS=${CLIENTS:-16}
HTTP_PORT=${HTTP_PORT:-18490}
NATS_PORT=${NATS_PORT:-18432}
dir=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$dir"' EXIT
echo "# $(date -u +%F) $(nproc) cores, ${DURATION} per run, mode=$MODE, fsync=$FSYNC, $CLIENTS clients"
run() { # LABEL BINARY
	rm -rf "$dir/data"
	"$2" --name bench --host 127.0.0.1 --port "$HTTP_PORT" --nats-port "$NATS_PORT" --pg-port 0 \
		--data-dir "$dir/data" --fsync "$FSYNC" --log-level warn >"$dir/node.log" 2>&1 &
	local pid=$!
	for _ in $(seq 100); do
		curl -fs "http://127.0.0.1:$HTTP_PORT/healthz" >/dev/null 2>&1 && break
		sleep 0.1
	done
	echo "$1 $(./bin/load -url "http://127.0.0.1:$HTTP_PORT" -token "$(cat "$dir/data/admin.token")" -db ab -mode "$MODE" -scenario insert -c "$CLIENTS" -d "$DURATION")"
	kill "$pid"
	wait "$pid" 2>/dev/null || true
}
for r in $(seq "$ROUNDS"); do
	echo "## round $r"
	if (( r % 2 )); then run A "$A"; run B "$B"; else run B "$B"; run A "$A"; fi
done

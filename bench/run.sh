#!/usr/bin/env bash
# Runs the HTTP benchmarks of BENCHMARKS.md side by side, on this machine,
# against a fresh node started from bin/hasvc: INSERT with 1 and 16
# clients, point SELECT with 16 clients, and a bare net/http handler
# serving a point-select-sized body with the same load generator; and range
# reads of 1,000 rows (16 clients) and 100,000 rows (2 clients, a 3 MB
# response, streamed).
#
#   make bench                         # 10 s per scenario
#   DURATION=30s ROUNDS=3 make bench   # longer; report the median round
#   HASVC=/path/to/other/hasvc ./bench/run.sh   # another build, for a side-by-side run
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-10s}
ROUNDS=${ROUNDS:-1}
FSYNC=${FSYNC:-2m}
HASVC=${HASVC:-./bin/hasvc}
HTTP_PORT=${HTTP_PORT:-18480}
NATS_PORT=${NATS_PORT:-18422}
BARE_PORT=${BARE_PORT:-18490}
dir=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$dir"' EXIT

"$HASVC" --name bench --host 127.0.0.1 --port "$HTTP_PORT" --nats-port "$NATS_PORT" --pg-port 0 \
	--data-dir "$dir/data" --fsync "$FSYNC" --log-level warn >"$dir/node.log" 2>&1 &
./bin/load -serve-bare "127.0.0.1:$BARE_PORT" &
for _ in $(seq 100); do
	curl -fs "http://127.0.0.1:$HTTP_PORT/healthz" >/dev/null 2>&1 && break
	sleep 0.1
done
token=$(cat "$dir/data/admin.token")
url="http://127.0.0.1:$HTTP_PORT"
echo "# $(date -u +%F) $(nproc) cores, $(go version | cut -d' ' -f3), fsync=$FSYNC, ${DURATION} per scenario"
for r in $(seq "$ROUNDS"); do
	echo "## round $r"
	./bin/load -url "$url" -token "$token" -db ins1 -scenario insert -c 1 -d "$DURATION"
	./bin/load -url "$url" -token "$token" -db ins16 -scenario insert -c 16 -d "$DURATION"
	./bin/load -url "$url" -token "$token" -db sel -scenario select -c 16 -d "$DURATION"
	./bin/load -url "$url" -token "$token" -db scan -scenario scan -limit 1000 -c 16 -d "$DURATION"
	./bin/load -url "$url" -token "$token" -db scan -scenario scan -limit 100000 -c 2 -d "$DURATION"
	./bin/load -url "http://127.0.0.1:$BARE_PORT" -scenario bare -c 16 -d "$DURATION"
done

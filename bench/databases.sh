#!/usr/bin/env bash
# Measures how a node grows with its number of databases: creates N idle
# databases (8 clients, or CLIENTS) on a fresh node and prints the time
# taken, the node's resident memory before and after, and how long one
# create took in the first and in the last tenth.
#
#   ./bench/databases.sh 1000 10000    # after make build and go build -o bin/load ./bench/load
#   HASVC=/path/to/other/hasvc FSYNC=2m ./bench/databases.sh 1000   # another build, another policy
set -euo pipefail
cd "$(dirname "$0")/.."
HTTP_PORT=${HTTP_PORT:-18481}
NATS_PORT=${NATS_PORT:-18423}
FSYNC=${FSYNC:-always}
for n in "${@:-1000}"; do
	dir=$(mktemp -d)
	"${HASVC:-./bin/hasvc}" --name bench --host 127.0.0.1 --port "$HTTP_PORT" --nats-port "$NATS_PORT" --pg-port 0 \
		--data-dir "$dir/data" --fsync "$FSYNC" --log-level warn >"$dir/node.log" 2>&1 &
	pid=$!
	for _ in $(seq 100); do
		curl -fs "http://127.0.0.1:$HTTP_PORT/healthz" >/dev/null 2>&1 && break
		sleep 0.1
	done
	./bin/load -url "http://127.0.0.1:$HTTP_PORT" -token "$(cat "$dir/data/admin.token")" -db idle -scenario dbs -n "$n" -c "${CLIENTS:-8}" -pid "$pid"
	kill "$pid"
	wait "$pid" || true
	rm -rf "$dir"
done

#!/usr/bin/env bash
# Two builds side by side over pgwire (BENCHMARKS.md): both nodes up at
# once with the same 100,000-row users table, pgbench running
# `SELECT id, name FROM users WHERE id = :id` against one then the other
# (A first in odd rounds), 8 clients, in pgbench's protocol MODE
# (simple, extended or prepared).
#
#   git worktree add /tmp/old <rev> && (cd /tmp/old && make build)
#   make build
#   A=/tmp/old/bin/hasvc B=./bin/hasvc MODE=prepared ROUNDS=4 ./bench/pgab.sh
set -euo pipefail
cd "$(dirname "$0")/.."
: "${A:?A=path of build A}" "${B:?B=path of build B}"
DURATION=${DURATION:-10}
ROUNDS=${ROUNDS:-4}
MODE=${MODE:-prepared}
CLIENTS=${CLIENTS:-8}
PORT=${PORT:-18600} # node A: PORT (HTTP) and PORT+1 (pgwire); node B: PORT+10, PORT+11
dir=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$dir"' EXIT
start() { # LABEL BINARY HTTP_PORT
	"$2" --name bench --host 127.0.0.1 --port "$3" --nats-port -1 --pg-port $(($3 + 1)) \
		--data-dir "$dir/$1" --log-level warn >"$dir/$1.log" 2>&1 &
	for _ in $(seq 100); do
		curl -fs "http://127.0.0.1:$3/healthz" >/dev/null 2>&1 && break
		sleep 0.1
	done
	local token
	token=$(cat "$dir/$1/admin.token")
	curl -fs -H "Authorization: Bearer $token" -d '{"name":"bench"}' "http://127.0.0.1:$3/databases" >/dev/null
	PGPASSWORD=$token psql -X -q -h 127.0.0.1 -p $(($3 + 1)) -U bench -d bench -v ON_ERROR_STOP=1 \
		-c "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL)"
	for k in 0 1 2 3 4; do
		PGPASSWORD=$token psql -X -q -h 127.0.0.1 -p $(($3 + 1)) -U bench -d bench -v ON_ERROR_STOP=1 \
			-c "INSERT INTO users WITH RECURSIVE s(i) AS (SELECT $k*20000+1 UNION ALL SELECT i+1 FROM s WHERE i < ($k+1)*20000)
				SELECT i, 'user-' || i FROM s"
	done
}
start A "$A" "$PORT"
start B "$B" $((PORT + 10))
printf '\\set id random(1, 100000)\nSELECT id, name FROM users WHERE id = :id;\n' >"$dir/text.sql"
echo "# $(date -u +%F) $(nproc) cores, ${DURATION}s per run, -M $MODE, $CLIENTS clients, tps"
run() { # LABEL HTTP_PORT
	echo "$1 $(PGPASSWORD=$(cat "$dir/$1/admin.token") pgbench -n -h 127.0.0.1 -p $(($2 + 1)) -U bench \
		-c "$CLIENTS" -j 2 -T "$DURATION" -M "$MODE" -f "$dir/text.sql" bench 2>&1 | awk '/^tps/ {print $3}')"
}
for r in $(seq "$ROUNDS"); do
	echo "## round $r"
	if ((r % 2)); then run A "$PORT"; run B $((PORT + 10)); else run B $((PORT + 10)); run A "$PORT"; fi
done

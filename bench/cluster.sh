#!/usr/bin/env bash
# Cluster benchmarks of BENCHMARKS.md: three nodes as processes on this
# machine. INSERT with 16 clients in strong mode, all on the node that
# leads the database's stream, all on another node, and spread over the
# three (and spread in eventual mode, for comparison), and replication
# lag at a steady 1,000 writes/s.
#
#   make build && go build -o bin/load ./bench/load && ./bench/cluster.sh
#   ROUNDS=3 DURATION=8s ./bench/cluster.sh   # report the median round
#   FORWARD=false ./bench/cluster.sh          # nodes race for the stream instead of forwarding writes
#   DENSITY=2000 ./bench/cluster.sh           # instead: 2,000 idle databases (3 replicas), then each node's RSS and idle CPU
#                                             # (with a pprof build, also node 1's idle CPU profile in cluster-idle-<n>.pb.gz)
#   PGTX=1 ./bench/cluster.sh                 # instead: pgbench transfers (BEGIN..COMMIT), 12 clients on the leader's node, then spread over the three
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-10s}
ROUNDS=${ROUNDS:-1}
FSYNC=${FSYNC:-2m}
FORWARD=${FORWARD:-true}
base=${BASE_PORT:-18500}
dir=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$dir"' EXIT
export HA_NATS_PASS=bench-cluster HA_JWT_SECRET=0123456789abcdef0123456789abcdef-bench
urls=()
pids=()
for i in 1 2 3; do
	peers=()
	for j in 1 2 3; do [[ $j != "$i" ]] && peers+=("127.0.0.1:$((base + 20 + j))"); done
	HASVC_PPROF_ADDR=127.0.0.1:$((base + 40 + i)) ./bin/hasvc --name "node$i" --host 127.0.0.1 --port "$((base + i))" --nats-port "$((base + 10 + i))" --pg-port "$((base + 30 + i))" \
		--cluster-port "$((base + 20 + i))" --join "$(IFS=,; echo "${peers[*]}")" \
		--data-dir "$dir/data$i" --fsync "$FSYNC" --forward-writes="$FORWARD" --log-level error >"$dir/node$i.log" 2>&1 &
	pids+=("$!")
	urls+=("http://127.0.0.1:$((base + i))")
done
for u in "${urls[@]}"; do
	for _ in $(seq 600); do
		curl -fs "$u/healthz" >/dev/null 2>&1 && break
		sleep 0.1
	done
done
token=$(./bin/hasvc token --db '*' --perm admin --ttl 1h)
all=$(IFS=,; echo "${urls[*]}")
create() {
	curl -fs -X POST "${urls[0]}/databases" -H "Authorization: Bearer $token" -d "{\"name\":\"$1\"}" >/dev/null
}
# leader DB and follower DB print the URL of the node that leads the
# database's stream, and of one that does not.
leader() {
	local n
	n=$(curl -fs "${urls[0]}/databases/$1" -H "Authorization: Bearer $token" | sed -n 's/.*"stream_leader":"node\([0-9]\)".*/\1/p')
	echo "${urls[$((n - 1))]}"
}
follower() {
	local l
	l=$(leader "$1")
	for u in "${urls[@]}"; do
		[[ $u != "$l" ]] && { echo "$u"; return; }
	done
}
# cpu_ticks PID: the user and system clock ticks process PID has used.
cpu_ticks() {
	awk '{print $14 + $15}' "/proc/$1/stat"
}
if [[ -n ${DENSITY:-} ]]; then
	echo "# $(date -u +%F) $(nproc) cores, 3 nodes on this machine, $DENSITY idle databases with the default replicas, fsync=$FSYNC"
	for k in 0 1 2; do echo "node$((k + 1)) before: RSS $(($(ps -o rss= -p "${pids[$k]}") / 1024)) MB"; done
	./bin/load -url "${urls[0]}" -token "$token" -db idle -scenario dbs -n "$DENSITY" -c "${CLIENTS:-8}" -pid "${pids[0]}"
	sleep "${IDLE:-60}"
	hz=$(getconf CLK_TCK)
	before=()
	for k in 0 1 2; do before+=("$(cpu_ticks "${pids[$k]}")"); done
	if curl -fs "http://127.0.0.1:$((base + 41))/debug/pprof/" >/dev/null 2>&1; then
		curl -fs "http://127.0.0.1:$((base + 41))/debug/pprof/profile?seconds=20" -o "cluster-idle-$DENSITY.pb.gz" &
	fi
	sleep 30
	for k in 0 1 2; do
		used=$(($(cpu_ticks "${pids[$k]}") - before[k]))
		echo "node$((k + 1)) idle: RSS $(($(ps -o rss= -p "${pids[$k]}") / 1024)) MB, CPU $(awk -v t="$used" -v hz="$hz" 'BEGIN{printf "%.1f", 100 * t / hz / 30}')% of a core over 30 s"
	done
	exit 0
fi
if [[ -n ${PGTX:-} ]]; then
	# One transfer between two of 100 accounts per transaction; pgbench
	# runs a transaction that gets 40001 again (up to 16 tries) and
	# counts it as retried.
	cat >"$dir/transfer.sql" <<'SQL'
\set from random(1, 100)
\set to random(1, 100)
BEGIN;
UPDATE accounts SET balance = balance - 1 WHERE id = :from;
UPDATE accounts SET balance = balance + 1 WHERE id = :to;
INSERT INTO moves (src, dst) VALUES (:from, :to);
COMMIT;
SQL
	export PGPASSWORD=$token
	echo "# $(date -u +%F) $(nproc) cores, 3 nodes on this machine, strong mode, fsync=$FSYNC, forward-writes=$FORWARD, pgbench transfers, 12 clients, ${DURATION} per run"
	for r in $(seq "$ROUNDS"); do
		echo "## round $r"
		db="pgtx$r"
		create "$db"
		curl -fs -X POST "${urls[0]}/db/$db" -H "Authorization: Bearer $token" -d '[{"sql":"CREATE TABLE accounts (id INTEGER PRIMARY KEY, balance INTEGER NOT NULL)"},{"sql":"CREATE TABLE moves (id INTEGER PRIMARY KEY, src INTEGER, dst INTEGER)"},{"sql":"WITH RECURSIVE s(v) AS (SELECT 1 UNION ALL SELECT v + 1 FROM s WHERE v < 100) INSERT INTO accounts SELECT v, 1000 FROM s"}]' >/dev/null
		l=$(leader "$db")
		lp=$((${l##*:} + 30))
		run() { # PORT CLIENTS
			pgbench -n -h 127.0.0.1 -p "$1" -U bench -c "$2" -j 1 -T "${DURATION%s}" --max-tries 16 -f "$dir/transfer.sql" "$db" 2>&1 |
				sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p; s/^number of transactions retried: \([0-9]*\).*/retried \1/p; s/^number of failed transactions: \([0-9]*\).*/failed \1/p' | paste -sd' '
		}
		echo "leader ($l): $(run "$lp" 12)"
		pids_pg=()
		for k in 1 2 3; do
			run "$((base + 30 + k))" 4 >"$dir/spread$k" &
			pids_pg+=("$!")
		done
		wait "${pids_pg[@]}"
		echo "spread: $(cat "$dir/spread1") | $(cat "$dir/spread2") | $(cat "$dir/spread3")"
		echo "total balance: $(curl -fs -X POST "${urls[0]}/db/$db" -H "Authorization: Bearer $token" -d '{"sql":"SELECT sum(balance) FROM accounts"}' | sed -n 's/.*"rows":\[\[\([0-9]*\)\]\].*/\1/p') (want 100000)"
	done
	exit 0
fi
echo "# $(date -u +%F) $(nproc) cores, 3 nodes on this machine, strong mode, fsync=$FSYNC, forward-writes=$FORWARD, ${DURATION} per scenario"
for r in $(seq "$ROUNDS"); do
	echo "## round $r"
	# All clients on the node that leads the database's stream, then all
	# on a node that does not (its writes are forwarded, or race), then
	# spread over the three.
	create "lead$r"
	create "follow$r"
	echo "leader:   $(leader "lead$r")"
	./bin/load -url "$(leader "lead$r")" -token "$token" -db "lead$r" -scenario insert -c 16 -d "$DURATION"
	echo "follower: $(follower "follow$r")"
	./bin/load -url "$(follower "follow$r")" -token "$token" -db "follow$r" -scenario insert -c 16 -d "$DURATION"
	./bin/load -url "$all" -token "$token" -db "spread$r" -scenario insert -c 16 -d "$DURATION"
	./bin/load -url "$all" -token "$token" -db "spread-eventual$r" -mode eventual -scenario insert -c 16 -d "$DURATION"
	# Open the database on every node first: a node keeps (and follows) a
	# copy of a database once it has been used there.
	curl -fs -X POST "${urls[0]}/databases" -H "Authorization: Bearer $token" -d "{\"name\":\"lag$r\"}" >/dev/null
	for u in "${urls[@]}"; do
		curl -fs -X POST "$u/db/lag$r" -H "Authorization: Bearer $token" -d '{"sql":"SELECT 1"}' >/dev/null
	done
	./bin/load -url "${urls[0]}" -token "$token" -db "lag$r" -scenario lag -rate 1000 -d "$DURATION"
done

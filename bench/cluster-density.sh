#!/usr/bin/env bash
# Density of a three-node cluster (issue 16): three nodes as processes on
# this machine, N idle databases created through node 1 (3 replicas each,
# the cluster's default), then after QUIET seconds each node's resident
# memory and the CPU it uses over 20 s while nothing is asked of it.
#
#   make build && go build -o bin/load ./bench/load && ./bench/cluster-density.sh 2000
#   HASVC=/path/to/other/hasvc QUIET=60 ./bench/cluster-density.sh 10000
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-2000}
QUIET=${QUIET:-30}
FSYNC=${FSYNC:-always}
base=${BASE_PORT:-18600}
dir=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$dir"' EXIT
export HA_NATS_PASS=bench-cluster HA_JWT_SECRET=0123456789abcdef0123456789abcdef-bench
pids=()
urls=()
for i in 1 2 3; do
	peers=()
	for j in 1 2 3; do [[ $j != "$i" ]] && peers+=("127.0.0.1:$((base + 20 + j))"); done
	"${HASVC:-./bin/hasvc}" --name "node$i" --host 127.0.0.1 --port "$((base + i))" --nats-port "$((base + 10 + i))" --pg-port 0 \
		--cluster-port "$((base + 20 + i))" --join "$(IFS=,; echo "${peers[*]}")" \
		--data-dir "$dir/data$i" --fsync "$FSYNC" --log-level error >"$dir/node$i.log" 2>&1 &
	pids+=($!)
	urls+=("http://127.0.0.1:$((base + i))")
done
for u in "${urls[@]}"; do
	for _ in $(seq 600); do
		curl -fs "$u/readyz" >/dev/null 2>&1 && break
		sleep 0.1
	done
done
token=$("${HASVC:-./bin/hasvc}" token --db '*' --perm admin --ttl 1h)
./bin/load -url "${urls[0]}" -token "$token" -db idle -scenario dbs -n "$N" -c 8 -pid "${pids[0]}"
sleep "$QUIET"
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }
declare -A t0
for p in "${pids[@]}"; do t0[$p]=$(cpu "$p"); done
sleep 20
ticks=$(getconf CLK_TCK)
echo "# $(date -u +%F) $(nproc) cores, 3 nodes on this machine, $N idle databases (3 replicas), fsync=$FSYNC, after ${QUIET}s quiet"
for i in 0 1 2; do
	p=${pids[$i]}
	echo "node$((i + 1)): RSS $(awk '/VmRSS/ {printf "%.0f MB", $2 / 1024}' "/proc/$p/status"), idle CPU $(echo "scale=1; 100 * ($(cpu "$p") - ${t0[$p]}) / $ticks / 20" | bc)% of a core, $(ls /proc/$p/task | wc -l) threads"
done

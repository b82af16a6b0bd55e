#!/usr/bin/env bash
# Where an idle node's memory and CPU go as it holds more databases
# (issue 16): a node built with the pprof tag, N idle databases created
# through HTTP, then, after a quiet minute, its RSS and Go heap, the
# heap's biggest holders (inuse_space), its goroutines, and what it
# spends CPU on while nothing is asked of it (20 s profile).
#
#   make build TAGS='sqlite_preupdate_hook pprof' && go build -o bin/load ./bench/load
#   ./bench/density-profile.sh 2000
#   HASVC=/path/to/other/hasvc ./bench/density-profile.sh 2000   # another build
#   HASVC=/path/to/other/hasvc ./bench/density-profile.sh 2000   # another build
#
# Profiles stay in ./density-profile-<N>/ (heap.pb.gz, cpu.pb.gz,
# goroutine.txt) for `go tool pprof`.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-2000}
HTTP_PORT=${HTTP_PORT:-18491}
NATS_PORT=${NATS_PORT:-18493}
PPROF=${PPROF:-127.0.0.1:18495}
QUIET=${QUIET:-60}
out=density-profile-$N
mkdir -p "$out"
dir=$(mktemp -d)
HASVC_PPROF_ADDR=$PPROF "${HASVC:-./bin/hasvc}" --name bench --host 127.0.0.1 --port "$HTTP_PORT" --nats-port "$NATS_PORT" --pg-port 0 \
	--data-dir "$dir/data" --log-level warn >"$dir/node.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$dir"' EXIT
for _ in $(seq 100); do
	curl -fs "http://127.0.0.1:$HTTP_PORT/healthz" >/dev/null 2>&1 && break
	sleep 0.1
done
curl -fs "http://$PPROF/debug/pprof/" >/dev/null || { echo "no profiler: build with TAGS='sqlite_preupdate_hook pprof'" >&2; exit 1; }
./bin/load -url "http://127.0.0.1:$HTTP_PORT" -token "$(cat "$dir/data/admin.token")" -db idle -scenario dbs -n "$N" -c 8 -pid "$pid"
sleep "$QUIET"
rss() { awk '/VmRSS/ {printf "%.0f", $2 / 1024}' "/proc/$pid/status"; }
cpu() { awk '{print $14 + $15}' "/proc/$pid/stat"; }
curl -fs "http://$PPROF/debug/pprof/heap?gc=1" -o "$out/heap.pb.gz"
curl -fs "http://$PPROF/debug/pprof/goroutine?debug=1" -o "$out/goroutine.txt"
t0=$(cpu)
curl -fs "http://$PPROF/debug/pprof/profile?seconds=20" -o "$out/cpu.pb.gz"
t1=$(cpu)
ticks=$(getconf CLK_TCK)
echo "# $(date -u +%F) $(nproc) cores, $N idle databases, after ${QUIET}s quiet"
echo "RSS $(rss) MB; idle CPU $(echo "scale=1; 100 * ($t1 - $t0) / $ticks / 20" | bc)% of a core over 20 s"
echo "goroutines: $(head -1 "$out/goroutine.txt")"
echo "heap in use, biggest holders:"
go tool pprof -sample_index=inuse_space -top -nodecount 25 "$out/heap.pb.gz" 2>/dev/null | tail -n +5
echo "idle CPU, biggest users (cumulative):"
go tool pprof -top -cum -nodecount 30 "$out/cpu.pb.gz" 2>/dev/null | tail -n +5

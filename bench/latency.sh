#!/usr/bin/env bash
# Writes from every node of three under link latency (issue 14): every
# route between the nodes crosses a proxy that delays each byte (bench/
# delay), and each node advertises its proxy, so NATS's gossip leads the
# others there too. A load generator on each node writes one strong-mode
# database with 4 clients at once, and each prints what it achieved.
# Without forwarding (FORWARD=false) the nodes race for the stream's next
# sequence, and those far from its leader starve.
#
#   make build && go build -o bin/load ./bench/load && go build -o bin/delay ./bench/delay
#   DELAY=50ms ./bench/latency.sh
#   DELAY=50ms FORWARD=false ./bench/latency.sh
set -euo pipefail
cd "$(dirname "$0")/.."
DELAY=${DELAY:-50ms}
DURATION=${DURATION:-10s}
FORWARD=${FORWARD:-true}
base=${BASE_PORT:-18600}
dir=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$dir"' EXIT
export HA_NATS_PASS=bench-latency HA_JWT_SECRET=0123456789abcdef0123456789abcdef-bench
urls=()
for i in 1 2 3; do
	./bin/delay -listen "127.0.0.1:$((base + 30 + i))" -to "127.0.0.1:$((base + 20 + i))" -delay "$DELAY" &
done
for i in 1 2 3; do
	peers=()
	for j in 1 2 3; do [[ $j != "$i" ]] && peers+=("127.0.0.1:$((base + 30 + j))"); done
	./bin/hasvc --name "node$i" --host 127.0.0.1 --port "$((base + i))" --nats-port "$((base + 10 + i))" --pg-port 0 \
		--cluster-port "$((base + 20 + i))" --cluster-advertise "127.0.0.1:$((base + 30 + i))" \
		--join "$(IFS=,; echo "${peers[*]}")" --publish-timeout 30s \
		--data-dir "$dir/data$i" --forward-writes="$FORWARD" --log-level error >"$dir/node$i.log" 2>&1 &
	urls+=("http://127.0.0.1:$((base + i))")
done
for u in "${urls[@]}"; do
	for _ in $(seq 1200); do
		curl -fs "$u/readyz" >/dev/null 2>&1 && break
		sleep 0.1
	done
done
token=$(./bin/hasvc token --db '*' --perm admin --ttl 1h)
curl -fs -X POST "${urls[0]}/databases" -H "Authorization: Bearer $token" -d '{"name":"lat"}' >/dev/null
leader=$(curl -fs "${urls[0]}/databases/lat" -H "Authorization: Bearer $token" | sed -n 's/.*"stream_leader":"\([^"]*\)".*/\1/p')
echo "# $(date -u +%F) $(nproc) cores, 3 nodes, every route delayed $DELAY each way, forward-writes=$FORWARD, stream leader $leader, 4 clients per node, $DURATION"
pids=()
for i in 0 1 2; do
	./bin/load -url "${urls[$i]}" -token "$token" -db lat -scenario insert -c 4 -d "$DURATION" >"$dir/load$i.out" 2>&1 &
	pids+=($!)
done
wait "${pids[@]}" || true
for i in 0 1 2; do
	echo "node$((i + 1)): $(cat "$dir/load$i.out")"
done

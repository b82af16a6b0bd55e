#!/usr/bin/env bash
# Builds the real Dockerfile with buildah and checks the image: it runs as
# a non-root user, answers /readyz, creates a database and queries it,
# and its HEALTHCHECK (hasvc ready) passes. Needs root, buildah and
# debootstrap (.ci/run installs them).
#
# No registry is needed: the two base images the Dockerfile names as
# build arguments are made here from Debian's packages (debootstrap) and
# the Go toolchain this machine runs, once, and kept as
# localhost/hasvc-base and localhost/hasvc-builder. The host's module
# and build caches are mounted into the build so modules are not
# fetched again.
set -euo pipefail
cd "$(dirname "$0")/.."
B=(buildah --storage-driver vfs)
image=localhost/hasvc:test
port=${HASVC_IMAGE_PORT:-18480}
work=$(mktemp -d)
ctr= server=
cleanup() {
	[ -n "$server" ] && kill "$server" 2>/dev/null || true
	pkill -KILL -f '^/usr/local/bin/hasvc --name hasvc-image-test-node' 2>/dev/null || true
	[ -n "$ctr" ] && "${B[@]}" rm "$ctr" >/dev/null 2>&1 || true
	rm -rf "$work"
}
trap cleanup EXIT

# The Debian mirror apt uses here.
mirror=$(sed -n 's/^URIs: *//p' /etc/apt/sources.list.d/*.sources 2>/dev/null | grep -v security | head -1)
[ -n "$mirror" ] || mirror=$(awk '$1 == "deb" {print $2; exit}' /etc/apt/sources.list)

# base NAME [debootstrap args...]: a local image made from a Debian root.
base() {
	local name=$1
	shift
	if "${B[@]}" inspect --type image "$name" >/dev/null 2>&1; then
		return
	fi
	echo "making $name"
	local root="$work/root-${name##*/}"
	debootstrap --variant=minbase "$@" bookworm "$root" "$mirror" >"$root.log" 2>&1 ||
		{ tail -20 "$root.log"; exit 1; }
	if [ "$name" = localhost/hasvc-builder ]; then
		# Go as the official golang image has it: /usr/local/go, GOPATH /go.
		cp -a "$(go env GOROOT)" "$root/usr/local/go"
	fi
	local c m
	c=$("${B[@]}" from scratch)
	m=$("${B[@]}" mount "$c")
	cp -a "$root/." "$m/"
	"${B[@]}" umount "$c" >/dev/null
	if [ "$name" = localhost/hasvc-builder ]; then
		"${B[@]}" config --env PATH=/go/bin:/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
			--env GOPATH=/go --env GOTOOLCHAIN=local "$c"
	fi
	"${B[@]}" commit -q "$c" "$name" >/dev/null
	"${B[@]}" rm "$c" >/dev/null
	rm -rf "$root"
}
# The two bases at once: each is mostly waiting on downloads.
base localhost/hasvc-base &
base localhost/hasvc-builder --include=gcc,libc6-dev,ca-certificates &
wait -n && wait -n || { echo "making the base images failed"; exit 1; }

# A new build replaces the last one rather than leave it behind untagged.
"${B[@]}" rmi -f "$image" >/dev/null 2>&1 || true
echo "building $image"
start=$(date +%s)
"${B[@]}" bud --isolation chroot --format docker --pull=never --layers=false -q \
	--build-arg BUILDER=localhost/hasvc-builder --build-arg BASE=localhost/hasvc-base \
	--build-arg VERSION="$(git describe --tags --always 2>/dev/null || echo dev)" \
	--build-arg COMMIT="$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)" \
	--build-arg BUILT="$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
	-v "$(go env GOMODCACHE):/go/pkg/mod" -v "$(go env GOCACHE):/root/.cache/go-build" \
	-t "$image" . >/dev/null
echo "built in $(($(date +%s) - start)) s"

# The image's configuration, white space removed.
config=$("${B[@]}" inspect --type image "$image" | tr -d ' \n\t')
for want in '"User":"hasvc"' '"Entrypoint":["hasvc"]' '"/data":{}' '"8080/tcp":{}' '"5432/tcp":{}' \
	'"4222/tcp":{}' '"6222/tcp":{}' '"Healthcheck":{"Test":["CMD","hasvc","ready"]'; do
	grep -qF "$want" <<<"$config" || { echo "the image's configuration lacks $want"; exit 1; }
done

ctr=$("${B[@]}" from "$image")
run() { "${B[@]}" run --isolation chroot --env HA_PORT="$port" "$ctr" -- "$@"; }
uid=$(run id -u)
[ "$uid" != 0 ] || { echo "the image runs as root"; exit 1; }
run hasvc version

# A node in the image (chroot isolation shares this machine's network);
# its /data is the container's volume, which later runs in it see.
run hasvc --name hasvc-image-test-node --host 127.0.0.1 --pg-port 0 --nats-port -1 >"$work/node.log" 2>&1 &
server=$!
for _ in $(seq 1 100); do
	curl -fs "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break
	sleep 0.3
done
curl -fsS "http://127.0.0.1:$port/readyz" || { echo "not ready:"; cat "$work/node.log"; exit 1; }
echo
run hasvc ready
token=$(run cat /data/admin.token)
owner=$(run stat -c %u /data/admin.token)
[ "$owner" = "$uid" ] || { echo "data/admin.token belongs to uid $owner, not the image's user $uid"; exit 1; }
curl -fsS -X POST "http://127.0.0.1:$port/databases" -H "Authorization: Bearer $token" -d '{"name": "mydb"}'
echo
curl -fsS "http://127.0.0.1:$port/db/mydb" -H "Authorization: Bearer $token" \
	-d '[{"sql": "CREATE TABLE t(x TEXT)"}, {"sql": "INSERT INTO t VALUES (?)", "params": ["from the image"]}]' >/dev/null
out=$(curl -fsS "http://127.0.0.1:$port/db/mydb" -H "Authorization: Bearer $token" -d '{"sql": "SELECT x FROM t"}')
echo "$out"
grep -qF '"rows":[["from the image"]]' <<<"$out" || { echo "unexpected answer"; exit 1; }
curl -fsS -o /dev/null "http://127.0.0.1:$port/ui/" || { echo "no console"; exit 1; }
# A clean stop: SIGTERM to the node itself (buildah run does not pass
# signals on), which logs "stopped".
pkill -TERM -f '^/usr/local/bin/hasvc --name hasvc-image-test-node'
wait "$server" 2>/dev/null || true
server=
grep -q "stopped" "$work/node.log" || { echo "the node did not log a clean stop:"; tail -5 "$work/node.log"; exit 1; }
echo "image OK"

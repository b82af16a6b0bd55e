# hasvc's container image: a node with its data in /data.
#
#   docker build -t hasvc .
#   docker run -p 8080:8080 -p 5432:5432 -v hasvc-data:/data hasvc
#
# The base images are build arguments so that a machine without a
# registry can build from local images (deploy/image-test.sh does).
ARG BUILDER=golang:1.26-bookworm
ARG BASE=debian:bookworm-slim

FROM ${BUILDER} AS build
WORKDIR /src
# Modules first: they change less often than the code.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
ARG COMMIT=unknown
ARG BUILT=unknown
# go-sqlite3 is cgo; change capture needs its preupdate hook, which only
# this build tag turns on.
RUN CGO_ENABLED=1 go build -trimpath -tags sqlite_preupdate_hook \
      -ldflags "-s -w -X main.version=${VERSION} -X main.commit=${COMMIT} -X main.buildDate=${BUILT}" \
      -o /out/hasvc ./cmd/hasvc

FROM ${BASE}
RUN useradd --uid 10001 --user-group --home-dir /data --no-create-home --shell /usr/sbin/nologin hasvc \
 && mkdir -p /data && chown hasvc:hasvc /data && chmod 0700 /data
COPY --from=build /out/hasvc /usr/local/bin/hasvc
USER hasvc
WORKDIR /data
VOLUME /data
# Every flag has an HA_* variable (hasvc --help lists them). A container
# reaches the node through its network, not loopback: tokens over plain
# HTTP and pgwire passwords without TLS are refused unless the operator
# allows them (HA_ALLOW_CLEARTEXT, HA_PG_ALLOW_CLEARTEXT) or gives
# certificates (HA_TLS_CERT, HA_PG_CERT).
ENV HA_DATA_DIR=/data \
    HA_PORT=8080 \
    HA_PG_PORT=5432 \
    HA_NATS_PORT=4222 \
    HA_CLUSTER_PORT=6222
# HTTP, PostgreSQL, NATS clients, NATS cluster routes.
EXPOSE 8080 5432 4222 6222
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 CMD ["hasvc", "ready"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["hasvc"]

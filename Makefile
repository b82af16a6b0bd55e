# hasvc's two everyday commands: `make run` starts a node, `make test`
# runs every test. Change capture needs go-sqlite3's preupdate hook, which
# only a build tag turns on; every target passes it.

TAGS    := sqlite_preupdate_hook
GO      ?= go
ARGS    ?=
BIN     := bin/hasvc

.PHONY: build ext run test fuzz bench bench-engine image image-test clean

# The binary says what it was built from (hasvc version): the git
# commit and the nearest tag (when built in a checkout), and the time.
COMMIT  := $(shell git rev-parse --short=12 HEAD 2>/dev/null)$(shell git diff --quiet HEAD 2>/dev/null || echo -dirty)
BUILT   := $(shell date -u +%Y-%m-%dT%H:%M:%SZ)
VERSION := $(shell git describe --tags --always 2>/dev/null)
LDFLAGS := -X main.commit=$(COMMIT) -X main.buildDate=$(BUILT) -X main.version=$(VERSION)

build:
	$(GO) build -tags "$(TAGS)" -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/hasvc

# The hasvc_sync SQLite extension (bin/hasvc_sync.so): `.load
# bin/hasvc_sync` in the sqlite3 shell. It calls the host's SQLite, so
# building it needs SQLite's headers (Debian package libsqlite3-dev).
ext:
	$(GO) build -buildmode=c-shared -o bin/hasvc_sync.so ./cmd/hasvc_sync
	rm -f bin/hasvc_sync.h

# Starts a node on :8080 (HTTP) and :4222 (NATS) with ./data; pass more
# flags with ARGS="...".
run: build
	./$(BIN) $(ARGS)

# Every test, with the race detector.
test:
	$(GO) vet -tags "$(TAGS)" ./...
	$(GO) test -race -tags "$(TAGS)" -count=1 -timeout 50m ./...

# The fuzz targets, each for FUZZTIME (a count of inputs such as 100000x,
# or a duration; Go 1.26 may fail a duration spuriously at its end,
# golang/go#75804): the HTTP statement parser, the SQL
# statement splitter, the apply of change messages, the pgwire startup
# reader and the COPY record reader. Their seed corpora run with every
# `make test` too.
FUZZTIME ?= 100000x
FUZZ := FuzzParseStatements:./internal/api FuzzSplit:./internal/sqlite FuzzApply:./internal/sqlite FuzzStartup:./internal/pg FuzzCopyRecord:./internal/pg
fuzz:
	@set -e; for t in $(FUZZ); do \
		echo "fuzz $${t%%:*} for $(FUZZTIME)"; \
		$(GO) test -tags "$(TAGS)" -run '^$$' -fuzz "^$${t%%:*}$$" -fuzztime $(FUZZTIME) $${t#*:}; \
	done

# The container image (needs docker, or buildah: make image DOCKER=buildah).
DOCKER ?= docker
image:
	$(DOCKER) build -t hasvc --build-arg VERSION=$(VERSION) --build-arg COMMIT=$(COMMIT) --build-arg BUILT=$(BUILT) .

# Builds the Dockerfile with buildah from local base images, runs the
# image and uses it (root, buildah and debootstrap; CI runs it).
image-test:
	./deploy/image-test.sh

# The HTTP benchmarks of BENCHMARKS.md, side by side in one run.
bench: build
	$(GO) build -o bin/load ./bench/load
	./bench/run.sh
	./bench/databases.sh 1000 10000

# The in-process benchmarks (commit ceiling, point select).
bench-engine:
	$(GO) test -tags "$(TAGS)" -run '^$$' -bench . -benchtime 3s ./internal/engine/

clean:
	rm -rf bin

# fae — make run: faed on its embedded default config; make test: the whole suite.
GO       ?= go
VERSION  ?= 0.1.0
BUILD_ID ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
LDFLAGS  := -X main.version=$(VERSION) -X main.buildID=$(BUILD_ID)
# Where make idl writes (the tests regenerate into a temp dir to compare).
IDL_OUT  ?= .

# The Go benchmarks make bench runs after the suite: the in-process hot paths.
HOTPATH_BENCH ?= Codec|Dispatch|Lcache|IdNext|Classify|QueryCacheDecode|ReplyWrite|LRUGetParallel|ServantPing|RPCPing|LatencyObserve

.PHONY: all build pingfae faeconf stress run test chaos screenshot deps vet idl bench bench-compare fuzz fuzz-seeds clean services-stop

all: build

build: pingfae faeconf stress
	$(GO) build -ldflags "$(LDFLAGS)" -o bin/faed ./cmd/faed

# The operator tools: pingfae pings nodes (one, or all registered in ZooKeeper);
# faeconf keeps the JSON/PHP file of the live nodes that FaeClient.php reads.
pingfae:
	$(GO) build -o bin/pingfae ./cmd/pingfae

faeconf:
	$(GO) build -o bin/faeconf ./cmd/faeconf

# The load generator: php-fpm-like sessions, closed or open loop (README "Stress tool").
stress:
	$(GO) build -o bin/stress ./cmd/stress

# faed on its embedded default config: RPC 127.0.0.1:9001, HTTP 127.0.0.1:9101,
# dashboard 127.0.0.1:9102.
run: build
	@echo "faed: RPC 127.0.0.1:9001, HTTP API http://127.0.0.1:9101/, dashboard http://127.0.0.1:9102/"
	./bin/faed -lockfile ""

# Everything: installs what the tests need (apt packages, Go modules), checks
# formatting and vet, then runs every test with the race detector.
# FAE_REQUIRE_CHROMIUM: the dashboard's browser test fails, never skips, without chromium.
test: deps vet
	FAE_REQUIRE_CHROMIUM=1 $(GO) test -race -count=1 -timeout 30m ./...

# The chaos suite (chaos/): every case at its full length — each backend
# killed with -9 and frozen with SIGSTOP, ZooKeeper away 60 s, a peer killed,
# SIGTERM under load, the log on a full disk, a 12,000-connection storm —
# under load from the stress tool; prints the table, writes
# chaos/results/<date>.md, fails when an expectation is missed. make test
# runs its fast subset. About 3 minutes; bounded at 15.
chaos: deps
	FAE_CHAOS=full $(GO) test -count=1 -timeout 15m -v ./chaos/

# Regenerates docs/dashboard.png (the README's picture): a real faed under a
# minute of varying load, its dashboard shot by headless Chromium.
screenshot:
	FAE_REQUIRE_CHROMIUM=1 FAE_DASHBOARD_SCREENSHOT=$(CURDIR)/docs/dashboard.png \
		$(GO) test -count=1 -timeout 10m -run TestDashboardInChromium -v ./dashboard/browsertest/

deps:
	bash contrib/install-deps
	$(GO) mod download
	bash contrib/test-services start

vet:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$unformatted" ]; then echo "gofmt needed: $$unformatted"; exit 1; fi
	$(GO) vet ./...

# Regenerate the Go, PHP, Python and Java stubs from idl/servant.thrift with
# Debian's thrift-compiler 0.17.0 (the Go code is then gofmt'ed; never edit it
# by hand). The Java stubs suppress the @javax.annotation.Generated
# annotation (not in the JDK since 11) and build against Debian's
# libthrift-java 0.16.
idl:
	@test "$$(thrift --version)" = "Thrift version 0.17.0" || { echo "need thrift-compiler 0.17.0 (make deps)"; exit 1; }
	rm -rf $(IDL_OUT)/idl/fun $(IDL_OUT)/contrib/php/gen-php $(IDL_OUT)/contrib/python/gen-py $(IDL_OUT)/contrib/java/gen-java
	mkdir -p $(IDL_OUT)/idl $(IDL_OUT)/contrib/php/gen-php $(IDL_OUT)/contrib/python/gen-py $(IDL_OUT)/contrib/java/gen-java
	thrift --gen go:package_prefix=github.com/fae-go/fae/idl/,skip_remote -out $(IDL_OUT)/idl idl/servant.thrift
	gofmt -w $(IDL_OUT)/idl/fun
	thrift --gen php -out $(IDL_OUT)/contrib/php/gen-php idl/servant.thrift
	thrift --gen py -out $(IDL_OUT)/contrib/python/gen-py idl/servant.thrift
	rm -f $(IDL_OUT)/contrib/python/gen-py/fun/rpc/FunServant-remote
	thrift --gen java:generated_annotations=suppress -out $(IDL_OUT)/contrib/java/gen-java idl/servant.thrift

# make bench: every scenario of the benchmark suite (bench/suite_test.go) with
# its baselines, alternating, on servers of its own; prints one table (targets
# first) and writes bench/results/<date>.md with an SVG chart per scenario.
# FAE_BENCH_WINDOW, FAE_BENCH_ROUNDS, FAE_BENCH_ONLY tune it. Then the Go
# benchmarks of the in-process hot paths (codec, dispatch, lcache, id
# generator, metrics), 6 runs each, summarised by benchstat (median ± the
# 95 % interval). make bench-compare BASE=<git rev> runs those of BASE and of
# the working tree in 6 alternated runs and compares them (contrib/bench-compare).
bench:
	bash contrib/install-deps bench
	@start=$$(date +%s); hot=bench/results/$$(date +%F)-hotpath.txt; \
	$(GO) test -run '^$$' -bench '^BenchmarkSuite$$' -benchtime 1x -timeout 30m ./bench/ || exit 1; \
	$(GO) test -run '^$$' -bench '$(HOTPATH_BENCH)' -benchmem -benchtime 200ms -count 6 ./engine/ ./servant/ ./cache/ ./metrics/ > $$hot || { cat $$hot; exit 1; }; \
	$(GO) tool benchstat $$hot || exit 1; \
	echo "make bench: $$(( $$(date +%s) - start )) s (Go benchmarks of the hot paths in $$hot)"

BASE ?= HEAD
bench-compare:
	HOTPATH_BENCH='$(HOTPATH_BENCH)' bash contrib/bench-compare $(BASE)

# Fuzzes raw client bytes through the engine's sessions and the FunServant
# processor (engine/fuzz_test.go) for FUZZTIME, in FUZZPARALLEL workers (1: the
# test machines are shared; raise it on one of your own). A failing input is
# written to engine/testdata/fuzz/FuzzSession/: commit it once fixed, and make
# test runs it from then on. Each new interesting input is minimized for at
# most 10s (Go's default, 60s, left a 10-minute run fuzzing a third of the time).
FUZZTIME     ?= 10m
FUZZPARALLEL ?= 1
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzSession$$' -fuzztime $(FUZZTIME) -fuzzminimizetime 10s \
		-parallel $(FUZZPARALLEL) ./engine

# Rewrites FuzzSession's generated seeds (valid calls of every method of the
# IDL, malformed ones, HTTP, TLS); run it after make idl and commit the result.
fuzz-seeds:
	FAE_FUZZ_WRITE_SEEDS=1 $(GO) test -count=1 -run '^TestFuzzSeeds$$' ./engine

clean:
	rm -rf bin

# Stops the backend servers that make test started (contrib/test-services).
services-stop:
	bash contrib/test-services stop

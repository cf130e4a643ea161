# The two commands of the README:
#   go run ./cmd/driftline demo     the whole loop on an embedded broker
#   make test                       installs test dependencies, starts ClickHouse, runs every test
GO ?= go

.PHONY: test test-deps build demo vet bench clickhouse clickhouse-stop

# make test starts a private ClickHouse (deploy/scripts/clickhouse.sh) in a
# fresh temp dir, passes its DSN to the tests in DRIFTLINE_CLICKHOUSE_DSN and
# stops it by PID when the tests end, pass or fail.
test: test-deps vet
	@set -e; dir=$$(mktemp -d /tmp/driftline-clickhouse.XXXXXX); \
	trap 'bash deploy/scripts/clickhouse.sh stop "$$dir"; rm -rf "$$dir"' EXIT; \
	dsn=$$(bash deploy/scripts/clickhouse.sh start "$$dir"); \
	echo "ClickHouse for the tests: $$dsn (pid $$(cat "$$dir/pid"), dir $$dir)"; \
	DRIFTLINE_CLICKHOUSE_DSN=$$dsn $(GO) test ./... -count=1 -timeout 30m

# A ClickHouse for development: `make clickhouse` prints its DSN
# (try: go run ./cmd/driftline demo --clickhouse <DSN>); `make clickhouse-stop`.
clickhouse:
	@bash deploy/scripts/clickhouse.sh start

clickhouse-stop:
	@bash deploy/scripts/clickhouse.sh stop

test-deps:
	bash deploy/scripts/test-deps.sh

vet:
	gofmt -l . | (! grep .) || (echo "gofmt would change the files above" >&2; exit 1)
	$(GO) vet ./...

build:
	$(GO) build -o bin/driftline ./cmd/driftline

demo:
	$(GO) run ./cmd/driftline demo

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./schemas ./features ./internal/... ./monitors

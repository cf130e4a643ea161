# The two commands of the README:
#   go run ./cmd/driftline demo     the whole loop on an embedded broker
#   make test                       installs test dependencies, runs every test
GO ?= go

.PHONY: test test-deps build demo vet bench

test: test-deps vet
	$(GO) test ./... -count=1 -timeout 30m

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

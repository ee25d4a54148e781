# taisen's everyday commands. `make help` lists them.
GO ?= go
export CGO_ENABLED ?= 0

.PHONY: help build run test test-short test-browser lint generate generate-check bench fuzz clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  %-15s %s\n", $$1, $$2}'

build: ## build the static binary bin/taisen
	$(GO) build -trimpath -o bin/taisen ./cmd/taisen

run: build ## run a node with embedded defaults (data in ./taisen-data)
	./bin/taisen serve

test: ## everything CI checks: vet, generated code, race tests (PostgreSQL too when TAISEN_TEST_POSTGRES_URL is set), headless-Chromium e2e
	$(GO) vet ./...
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' | grep -v '^gen/')); if [ -n "$$unformatted" ]; then echo "gofmt needed: $$unformatted"; exit 1; fi
	./scripts/gen.sh --check
	GOOS=darwin $(GO) build -o /dev/null ./cmd/taisen   # the portable engine still builds
	GOOS=windows $(GO) build -o /dev/null ./cmd/taisen
	CGO_ENABLED=1 $(GO) test -race -timeout 20m ./...
	$(GO) test -run '^$$' -bench . -benchtime 1x ./... > /dev/null
	./scripts/browser-test.sh

test-browser: ## the headless-Chromium end-to-end test (installs Chromium only when CI=true)
	./scripts/browser-test.sh

test-short: ## quick tests without the race detector
	$(GO) test ./...

lint: ## go vet and gofmt (fails when a file needs gofmt)
	$(GO) vet ./...
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' | grep -v '^gen/')); if [ -n "$$unformatted" ]; then echo "gofmt needed: $$unformatted"; exit 1; fi

generate: ## regenerate gen/ from proto/ (buf, local plugins)
	./scripts/gen.sh

generate-check: ## fail when gen/ is stale
	./scripts/gen.sh --check

bench: ## Go benchmarks (see docs/benchmarks.md for the load-test figures)
	$(GO) test -run '^$$' -bench . -benchmem ./...

fuzz: ## run every fuzz target for 30 s each
	@for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
	    echo "fuzz $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime 30s $$pkg || exit 1; \
	  done; done

clean: ## remove build output and tool cache
	rm -rf bin .cache

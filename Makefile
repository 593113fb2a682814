# coreattn: the two commands of the README are `make demo` and `make test`.
#
# coreattn needs cgo (go-webgpu links the wgpu-native library), so a C compiler
# and CGO_ENABLED=1; scripts/setup.sh checks for it and for a Vulkan adapter
# (installing lavapipe when run as root on Debian).

GO ?= $(shell command -v go 2>/dev/null || echo /usr/local/go/bin/go)
GOFMT ?= $(shell $(GO) env GOROOT)/bin/gofmt
BIN := bin/coreattn
# go test's per-package limit: the GPU tests run on lavapipe (the CPU) in CI.
TEST_TIMEOUT ?= 30m
# How long each fuzz target runs under `make fuzz`.
FUZZTIME ?= 15s
# The linters, pinned; `go run pkg@version` builds them through the module
# proxy on first use and caches them. staticcheck v0.8.2 is 2026.2.2, which
# supports Go 1.26.
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2
DEADCODE := golang.org/x/tools/cmd/deadcode@v0.53.0
# README.md embeds attention/gpu/example_test.go; `make readme` refreshes it.
EMBEDMD := github.com/campoy/embedmd@v1.0.0

export CGO_ENABLED := 1

.PHONY: all setup build demo test bench train fuzz lint readme clean

all: build

setup:
	@bash scripts/setup.sh

build: setup
	$(GO) build -o $(BIN) ./cmd/coreattn

demo: build
	./$(BIN) demo

test: setup
	$(GO) test -timeout $(TEST_TIMEOUT) ./...

bench: build
	./$(BIN) bench

# A short training of the tiny preset on the default corpus (the Go
# distribution's .go files), with the progress bar; see docs/train.md.
train: build
	./$(BIN) train --preset tiny --tokens 1024 --max-doc 512 --steps 100 --val-every 25 --out runs/make-train

# Every Fuzz target in the module, FUZZTIME each, one after the other.
fuzz: setup
	@set -e; for f in $$(git ls-files --cached --others --exclude-standard '*_test.go' | xargs grep -l '^func Fuzz'); do \
		dir=./$$(dirname $$f); \
		for t in $$(sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\)(.*/\1/p' $$f); do \
			echo "fuzz $$dir $$t ($(FUZZTIME))"; \
			$(GO) test -run '^$$' -fuzz "^$$t\$$" -fuzztime $(FUZZTIME) $$dir; \
		done; \
	done

# gofmt, go vet (the build-ignored scripts too), a tidy go.mod, staticcheck,
# no unreachable function (deadcode, with tests as roots: an exported
# function that nothing calls and no test exercises is dead), the README's
# Go example equal to its source, and the cgo line (scripts/cgocheck.sh).
# CI runs it before `make test`.
lint: setup
	@out=$$($(GOFMT) -l $$(git ls-files --cached --others --exclude-standard '*.go')); \
		if [ -n "$$out" ]; then echo "gofmt -l: these files need gofmt:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	@for f in scripts/*.go; do echo "$(GO) vet $$f"; $(GO) vet $$f || exit 1; done
	$(GO) mod tidy -diff
	GO=$(GO) STATICCHECK=$(STATICCHECK) bash scripts/staticcheck.sh
	GO=$(GO) DEADCODE=$(DEADCODE) bash scripts/deadcode.sh
	$(GO) run $(EMBEDMD) -d README.md
	GO=$(GO) bash scripts/cgocheck.sh

readme:
	$(GO) run $(EMBEDMD) -w README.md

clean:
	rm -rf bin

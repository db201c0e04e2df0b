# director: Linux Layer-4 load-balancer director.
#
#   make test    unit tests on the host, then the lab suite in the VM
#   make demo    the product's demo, in the lab VM
#
# Both install what they need (scripts/deps) and fetch the kernel into
# ~/.cache/director-lab on first use.

GO          ?= go
export PATH := $(PATH):/usr/local/go/bin
LAB         := $(GO) run ./lab/cmd/lab
STATICCHECK := $(GO) run honnef.co/go/tools/cmd/staticcheck@v0.7.0
BINARIES    := $(notdir $(wildcard cmd/*))

.PHONY: all build test test-unit e2e demo bench lint fuzz deps kernel clean

all: build

deps:
	@scripts/deps

# The version the binaries print (-version): git's, set at link time.
VERSION     ?= $(shell git describe --always --dirty 2>/dev/null || echo devel)
LDFLAGS     := -X github.com/directorlb/director/version.describe=$(VERSION)

build:
	@mkdir -p bin
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/ ./cmd/... ./lab/cmd/lab

test: test-unit e2e

test-unit: deps
	$(GO) test -race -count=1 ./...

# The lab suite: every test behind the "lab" build tag, in one VM boot.
e2e: deps
	$(LAB) test ./...

# The demo installs only what it needs (scripts/deps demo).
demo:
	@scripts/deps demo
	$(LAB) demo

# Host benchmarks, then the lab's (real kernel): figures, not pass/fail.
bench: deps
	$(GO) test -run '^$$' -bench . -benchmem ./...
	$(LAB) test -timeout 45m -test.timeout 40m -run '^$$' -bench Table100k -benchtime 1x ./e2e
	$(LAB) test -run '^$$' -bench Netlink -benchtime 2s ./e2e
	$(LAB) test -run '^$$' -bench Failover -benchtime 1x ./e2e
	$(LAB) test -run '^$$' -bench ScaleOut -benchtime 1x ./e2e

# Short fuzzing of every parser that reads untrusted input.
FUZZTIME ?= 20s
fuzz:
	@for f in $$(grep -rl --include='*_test.go' '^func Fuzz' . | xargs -n1 dirname | sort -u); do \
	  for t in $$(grep -h '^func Fuzz' $$f/*_test.go | sed 's/func \(Fuzz[A-Za-z0-9_]*\).*/\1/'); do \
	    echo "fuzz $$f $$t"; $(GO) test -run '^$$' -fuzz "^$$t$$" -fuzztime $(FUZZTIME) $$f || exit 1; \
	  done; \
	done

lint:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt: files above need formatting"; exit 1; }
	$(GO) vet ./...
	$(GO) vet -tags lab ./...
	$(STATICCHECK) ./...
	$(STATICCHECK) -tags lab ./...

kernel: deps
	$(LAB) kernel

clean:
	rm -rf bin

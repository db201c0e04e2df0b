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

.PHONY: all build deb test-deb test-browser man completion test test-unit e2e demo bench lint fuzz deps kernel clean

all: build

deps:
	@scripts/deps

# The version the binaries print (-version): git's, set at link time.
# packaging/version.sh makes git describe's a Debian version: the binaries
# and the package say the same.
VERSION     ?= $(shell packaging/version.sh)
LDFLAGS     := -X github.com/directorlb/director/version.describe=$(VERSION)

build: man
	@mkdir -p bin
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/ ./cmd/... ./lab/cmd/lab

# The manual pages (build/man/*.5, *.8) from package manual, the source of
# -help too; dated by the last commit, so a rebuild gives the same files.
MANDATE     ?= $(shell git log -1 --format=%cs 2>/dev/null)
man:
	$(GO) run ./manual/gen -out build/man -version '$(VERSION)' -date '$(MANDATE)'

# directorctl's bash completion, generated from the same table; it is
# committed, and deploy/completion's test fails when it is not this output.
completion:
	$(GO) run ./manual/gen -out '' -bash deploy/completion/directorctl.bash

test: test-unit test-deb e2e test-browser

# The Debian packages: build/director_$(VERSION)-1_amd64.deb and _arm64.deb.
deb: man
	VERSION='$(VERSION)' packaging/deb.sh

# The package in a clean Debian 12 root (debootstrap, cached): install,
# upgrade, remove, purge; and lintian. Needs root.
test-deb: deps deb
	packaging/test-deb.sh build/director_$(VERSION)-1_amd64.deb build/director_$(VERSION)-1_arm64.deb

# The status page in headless Chromium, against directord in the lab VM.
test-browser: deps
	$(GO) test -tags browser -count=1 -run TestStatusPageInChromium -v ./statuspage

test-unit: deps
	$(GO) test -race -count=1 ./...

# The lab suite: every test behind the "lab" build tag, in one VM boot.
e2e: deps
	$(LAB) test ./...

# The demo installs only what it needs (scripts/deps demo), and runs the
# programs of the amd64 package, so what users install is what it shows.
demo: man
	@scripts/deps demo
	ARCHES=amd64 VERSION='$(VERSION)' packaging/deb.sh
	$(LAB) demo -deb build/director_$(VERSION)-1_amd64.deb

# Host benchmarks, then the lab's (real kernel): figures, not pass/fail.
bench: deps
	$(GO) test -run '^$$' -bench . -benchmem ./...
	$(LAB) test -timeout 45m -test.timeout 40m -run '^$$' -bench Table100k -benchtime 1x ./e2e
	$(LAB) test -run '^$$' -bench Netlink -benchtime 2s ./e2e
	$(LAB) test -run '^$$' -bench '^BenchmarkFailover$$' -benchtime 1x ./e2e
	$(LAB) test -run '^$$' -bench VersusKeepalivedFailover -benchtime 1x ./e2e
	$(LAB) test -timeout 15m -run '^$$' -bench VersusKeepalivedScale -benchtime 1x ./e2e
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
	$(GO) vet -tags browser ./statuspage
	$(STATICCHECK) ./...
	$(STATICCHECK) -tags lab ./...
	$(STATICCHECK) -tags browser ./statuspage

kernel: deps
	$(LAB) kernel

clean:
	rm -rf bin build

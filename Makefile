# mdefn — Makefile. `make test` is what CI runs (through .ci/run).
SHELL := /bin/bash
GO ?= go
GOBIN := $(shell $(GO) env GOPATH)/bin
STATICCHECK_VERSION := v0.8.2
RIE_VERSION := v0.0.0-20261030222936-bef5c4ba774d
# The functions: one Lambda bootstrap each under cmd/bootstrap/ (a test of
# the function registry, functions/registry_test.go, keeps that list equal to
# the registry).
FUNCTIONS := $(notdir $(wildcard cmd/bootstrap/*))
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X github.com/mdefn/mdefn/pkg/atp.Version=$(VERSION)
AZURE_GOARCH := $(or $(GOARCH),amd64)
LAMBDA_GOARCH := $(or $(GOARCH),arm64)
FUZZTIME ?= 30s
BENCHTIME ?= 1s

.PHONY: all build test lint tools fmt-check vet staticcheck unit e2e bench fuzz fuzz-brief package clean

all: build

## tools: install pinned tool versions (staticcheck, AWS Lambda RIE)
tools:
	@test -x $(GOBIN)/staticcheck && $(GOBIN)/staticcheck -version | grep -q 0.8.2 || \
		$(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)
	@test -x $(GOBIN)/aws-lambda-rie || \
		$(GO) install github.com/aws/aws-lambda-runtime-interface-emulator/cmd/aws-lambda-rie@$(RIE_VERSION)

## test: format check, vet, staticcheck, race-enabled unit tests, end-to-end tests of the built artifacts
test: tools lint unit fuzz-brief e2e

lint: fmt-check vet staticcheck

fmt-check:
	@out="$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null; git ls-files --others --exclude-standard '*.go' 2>/dev/null))"; \
		if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

staticcheck:
	$(GOBIN)/staticcheck ./...

## unit: every package under the race detector.
unit:
	$(GO) test -race -count=1 -timeout 10m ./...

## e2e: drive the built artifacts under the Lambda RIE and as an Azure custom
## handler. The artifacts are built for this machine (GOOS linux, the host's
## architecture) into E2E_DIST, apart from dist/.
E2E_DIST := $(CURDIR)/.e2e/dist
e2e:
	$(MAKE) --no-print-directory build DIST=$(E2E_DIST) GOARCH=$$($(GO) env GOHOSTARCH)
	MDEFN_E2E_DIST=$(E2E_DIST) MDEFN_RIE=$(GOBIN)/aws-lambda-rie \
		$(GO) test -count=1 -timeout 5m ./e2e/...

## Each deployable links one cloud's SDK: the Lambda bootstraps read
## Secrets Manager (or MDE_CLIENT_SECRET) and leave out the Azure SDK; the
## Azure executable reads Key Vault and leaves out the AWS SDK
## (pkg/auth's mdefn_noazure / mdefn_noaws; go build without them links both).
LAMBDA_TAGS := lambda.norpc,mdefn_noazure
AZURE_TAGS := lambda.norpc,mdefn_noaws

## build: $(DIST)/azure (custom handler app folder) and $(DIST)/lambda/<name>/bootstrap
DIST ?= dist
build:
	rm -rf $(DIST)/azure $(DIST)/lambda
	mkdir -p $(DIST)/azure
	cp host.json $(DIST)/azure/
	cp internal/openapi/openapi.json $(DIST)/openapi.json
	for f in functions/*/function.json; do d=$$(basename $$(dirname $$f)); mkdir -p $(DIST)/azure/$$d; cp $$f $(DIST)/azure/$$d/; done
	for f in functions/*/*/function.json; do [ -e "$$f" ] || continue; d=$$(basename $$(dirname $$f)); mkdir -p $(DIST)/azure/$$d; cp $$f $(DIST)/azure/$$d/; done
	CGO_ENABLED=0 GOOS=linux GOARCH=$(AZURE_GOARCH) $(GO) build -tags $(AZURE_TAGS) -trimpath -ldflags '$(LDFLAGS)' -o $(DIST)/azure/mdefn ./cmd/mdefn
	chmod 0755 $(DIST)/azure/mdefn
	for fn in $(FUNCTIONS); do \
		mkdir -p $(DIST)/lambda/$$fn && \
		CGO_ENABLED=0 GOOS=linux GOARCH=$(LAMBDA_GOARCH) $(GO) build -tags $(LAMBDA_TAGS) -trimpath -ldflags '$(LDFLAGS)' \
			-o $(DIST)/lambda/$$fn/bootstrap ./cmd/bootstrap/$$fn && chmod 0755 $(DIST)/lambda/$$fn/bootstrap || exit 1; \
	done

## build-<LogicalId>: what `sam build` runs for each function of template.yaml
## (Metadata BuildMethod makefile); SAM sets ARTIFACTS_DIR.
## The logical ID is <Name>Function; its lower-cased <Name> is the function
## (TokenCheckFunction builds cmd/bootstrap/tokencheck).
build-%Function:
	@test -n "$(ARTIFACTS_DIR)" || { echo "$@: ARTIFACTS_DIR is not set (sam build sets it)" >&2; exit 1; }
	@test -d ./cmd/bootstrap/$(shell echo '$*' | tr A-Z a-z) || { echo "$@: no function $(shell echo '$*' | tr A-Z a-z) (cmd/bootstrap/)" >&2; exit 1; }
	CGO_ENABLED=0 GOOS=linux GOARCH=arm64 $(GO) build -tags $(LAMBDA_TAGS) -trimpath -ldflags '$(LDFLAGS)' \
		-o $(ARTIFACTS_DIR)/bootstrap ./cmd/bootstrap/$(shell echo '$*' | tr A-Z a-z)
	chmod 0755 $(ARTIFACTS_DIR)/bootstrap

## package: dist/azure.zip and dist/lambda/<name>.zip (exec bits preserved)
package: build
	@command -v zip >/dev/null || { echo "package: zip is not installed (apt-get install zip)" >&2; exit 1; }
	cd $(DIST)/azure && rm -f ../azure.zip && zip -qr -X ../azure.zip .
	for fn in $(FUNCTIONS); do (cd $(DIST)/lambda/$$fn && rm -f ../$$fn.zip && zip -q -X ../$$fn.zip bootstrap) || exit 1; done

## bench: the Go benchmarks of the hot paths (-benchmem; BENCHTIME, COUNT,
## BENCH selects them), then cmd/mdefnbench: cold start, warm overhead,
## token and secret reads, throughput, peak RSS and sizes against the
## simulator (RUNS cold starts). Prints the table and writes docs/benchmarks.md.
BENCH ?= .
COUNT ?= 1
RUNS ?= 20
BENCH_OUT := $(CURDIR)/dist/bench
bench:
	mkdir -p $(BENCH_OUT)
	set -o pipefail; $(GO) test -run '^$$' -bench '$(BENCH)' -benchmem -benchtime $(BENCHTIME) -count $(COUNT) -timeout 20m ./... \
		| tee $(BENCH_OUT)/gotest.txt
	$(GO) run ./cmd/mdefnbench -runs $(RUNS) -gotest $(BENCH_OUT)/gotest.txt -out docs/benchmarks.md

## fuzz: run every fuzz target for FUZZTIME each (their seed corpora also run
## in every `go test`); fuzz-brief is the short pass `make test` includes.
FUZZBRIEF ?= 3s
fuzz-brief:
	$(MAKE) --no-print-directory fuzz FUZZTIME=$(FUZZBRIEF)

fuzz:
	@for pkg in $$($(GO) list ./...); do \
		for t in $$($(GO) test -list '^Fuzz' $$pkg 2>/dev/null | grep '^Fuzz'); do \
			echo "== $$pkg $$t"; $(GO) test -run '^$$' -fuzz "^$$t$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
		done; \
	done

clean:
	rm -rf dist

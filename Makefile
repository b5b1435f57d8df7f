# otakit — see README.md. `make test` is what CI runs.
GO ?= go

.PHONY: test test-long bench lint deps build

build:
	$(GO) build ./...

deps:
	./scripts/test-deps.sh

# Unit, integration and fuzz-seed tests (fuzz targets run their seed corpora).
test: deps
	$(GO) vet ./...
	$(GO) test -count=1 -timeout 25m ./...

# The long matrices (full power-loss matrix and the like).
test-long: deps
	OTA_LONG=1 $(GO) test -count=1 -timeout 60m ./...

# Every bench/NAME is a main package that prints its comparison table.
bench: deps
	@for d in bench/*/; do [ -f $$d/main.go ] || continue; echo "== $$d"; $(GO) run ./$$d || exit 1; done

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...

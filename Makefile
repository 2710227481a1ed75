# portcullis — see README.md.
CARGO ?= cargo
CERTS ?= .dev-certs
LISTEN ?= 127.0.0.1:8443
ADMIN_LISTEN ?= 127.0.0.1:9090
# promtool: the one on the PATH, else the one `make promtool` takes out of Debian's package
PROMTOOL ?= $(or $(shell command -v promtool 2>/dev/null),$(CURDIR)/target/tools/promtool)
FUZZ_SECONDS ?= 60
RULES ?= manifests/monitoring/rules.yaml

# A bare `make` lists the targets instead of starting the (blocking) server.
.DEFAULT_GOAL := help
.PHONY: help

## help: list the targets and the variables they take (what a bare `make` does)
help:
	@echo 'Usage: make [target] [VARIABLE=value ...]'
	@echo
	@awk '/^## [A-Za-z0-9_-]+: / { line = substr($$0, 4); i = index(line, ": "); \
		printf "  %-14s %s\n", substr(line, 1, i - 1), substr(line, i + 2); doc = 1; next } \
		doc && /^## / { printf "  %-14s %s\n", "", substr($$0, 4); next } { doc = 0 }' $(MAKEFILE_LIST)
	@echo
	@echo 'Variables (current values):'
	@echo '  CARGO=$(CARGO) CERTS=$(CERTS) LISTEN=$(LISTEN) ADMIN_LISTEN=$(ADMIN_LISTEN)'
	@echo '  PROMTOOL=$(PROMTOOL) RULES=$(RULES) FUZZ_SECONDS=$(FUZZ_SECONDS)'

.PHONY: run test fmt lint build release certs clean promtool promtool-test browser bench bench-count fuzz e2e

## run: serve the bundled policies on $(LISTEN) (admin on $(ADMIN_LISTEN)) with development certificates
run: $(CERTS)/tls.crt
	$(CARGO) run --quiet -- serve --no-cluster --policies policies \
		--listen $(LISTEN) --admin-listen $(ADMIN_LISTEN) \
		--tls-cert $(CERTS)/tls.crt --tls-key $(CERTS)/tls.key

$(CERTS)/tls.crt:
	$(CARGO) run --quiet -- certs --out $(CERTS) --dns localhost --ip 127.0.0.1 >/dev/null

## certs: create the development certificates in $(CERTS)/ (make run does when missing)
certs: $(CERTS)/tls.crt

## test: everything CI runs (gets promtool and chromium first when missing)
test: promtool browser lint
	@if command -v cargo-nextest >/dev/null 2>&1; then \
		PROMTOOL="$(PROMTOOL)" PORTCULLIS_REQUIRE_PROMTOOL=1 $(CARGO) nextest run --no-fail-fast && $(CARGO) test --doc; \
	else \
		PROMTOOL="$(PROMTOOL)" PORTCULLIS_REQUIRE_PROMTOOL=1 $(CARGO) test; \
	fi
	$(CARGO) run --quiet -- policies --policies policies >/dev/null
	$(CARGO) run --quiet -- test policies/tests --policies policies
	$(CARGO) run --quiet -- test docs/examples/cel/tests --policies docs/examples/cel
	$(MAKE) promtool-test
	$(MAKE) e2e

## lint: cargo fmt --check and cargo clippy with warnings as errors, the e2e tests included
## (part of make test)
lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets -- -D warnings
	$(CARGO) clippy --test e2e -- -D warnings

## promtool: when missing, take promtool alone out of Debian's prometheus package into
## target/tools/ (installs nothing, starts no Prometheus; see .ci/get-promtool)
promtool:
	@command -v "$(PROMTOOL)" >/dev/null 2>&1 || .ci/get-promtool "$(PROMTOOL)"

## browser: when /usr/bin/chromium is missing, install Debian's chromium (as root), for the
## headless test of portcullis report's HTML page (tests/report.rs)
browser:
	@if [ ! -x /usr/bin/chromium ]; then \
		if [ "$$(id -u)" = 0 ]; then apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium; \
		else echo "/usr/bin/chromium not found: sudo apt-get install --no-install-recommends chromium" >&2; exit 1; fi; \
	fi

## promtool-test: check the alerting rules and run their unit tests (tests/prometheus/)
promtool-test: promtool
	$(PROMTOOL) check rules $(RULES)
	$(PROMTOOL) test rules tests/prometheus/*.yaml

## e2e: end-to-end tests (tests/e2e/) against etcd and a kube-apiserver on loopback, built
## once from Debian's kubernetes source package and cached in ~/.cache/portcullis-e2e (see README)
e2e:
	tests/e2e/cluster.sh build
	$(CARGO) build --quiet --bin portcullis
	$(CARGO) test --quiet --test e2e --no-run
	tests/e2e/cluster.sh run -- $(CARGO) test --test e2e

## bench: criterion benchmarks, then load runs against the release binary (see BENCHMARKS.md)
bench:
	@if ! command -v h2load >/dev/null 2>&1; then \
		if [ "$$(id -u)" = 0 ]; then apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends nghttp2-client; \
		else echo "h2load not found: sudo apt-get install nghttp2-client" >&2; exit 1; fi; \
	fi
	$(CARGO) bench --bench engine
	$(CARGO) build --release
	benches/load.sh

## bench-count: instructions per review under callgrind, total and by component (see BENCHMARKS.md)
bench-count:
	@for tool in valgrind h2load; do command -v $$tool >/dev/null 2>&1 && continue; \
		if [ "$$(id -u)" = 0 ]; then apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends valgrind nghttp2-client; \
		else echo "$$tool not found: sudo apt-get install valgrind nghttp2-client" >&2; exit 1; fi; \
	done
	$(CARGO) build --release
	benches/count.sh

## fuzz: run each cargo-fuzz target for FUZZ_SECONDS (default 60) from the seed corpus
fuzz:
	@command -v cargo-fuzz >/dev/null 2>&1 || $(CARGO) install cargo-fuzz --locked
	cd fuzz && for target in review policy cel; do \
		mkdir -p target/corpus/$$target && \
		RUSTC_BOOTSTRAP=1 $(CARGO) fuzz run -O $$target target/corpus/$$target corpus/$$target -- \
			-max_total_time=$(FUZZ_SECONDS) -rss_limit_mb=2048 || exit 1; \
	done

## fmt: format the code (cargo fmt)
fmt:
	$(CARGO) fmt --all

## build: debug build of the binary (target/debug/portcullis)
build:
	$(CARGO) build

## release: release build of the binary (target/release/portcullis)
release:
	$(CARGO) build --release

## clean: remove the development certificates and cargo's target/ (promtool from make promtool too)
clean:
	rm -rf $(CERTS)
	$(CARGO) clean

# portcullis — see README.md.
CARGO ?= cargo
CERTS ?= .dev-certs
LISTEN ?= 127.0.0.1:8443
ADMIN_LISTEN ?= 127.0.0.1:9090
PROMTOOL ?= promtool
FUZZ_SECONDS ?= 60
RULES ?= manifests/monitoring/rules.yaml

.PHONY: run test fmt lint build release certs clean promtool promtool-test bench fuzz

## run: serve the bundled policies on $(LISTEN) (admin on $(ADMIN_LISTEN)) with development certificates
run: $(CERTS)/tls.crt
	$(CARGO) run --quiet -- serve --no-cluster --policies policies \
		--listen $(LISTEN) --admin-listen $(ADMIN_LISTEN) \
		--tls-cert $(CERTS)/tls.crt --tls-key $(CERTS)/tls.key

$(CERTS)/tls.crt:
	$(CARGO) run --quiet -- certs --out $(CERTS) --dns localhost --ip 127.0.0.1 >/dev/null

certs: $(CERTS)/tls.crt

## test: everything CI runs (installs promtool first when missing)
test: promtool
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets -- -D warnings
	@if command -v cargo-nextest >/dev/null 2>&1; then \
		PORTCULLIS_REQUIRE_PROMTOOL=1 $(CARGO) nextest run --no-fail-fast && $(CARGO) test --doc; \
	else \
		PORTCULLIS_REQUIRE_PROMTOOL=1 $(CARGO) test; \
	fi
	$(CARGO) run --quiet -- policies --policies policies >/dev/null
	$(CARGO) run --quiet -- test policies/tests --policies policies
	$(MAKE) promtool-test

## promtool: install Debian's prometheus package for promtool when missing (as root)
promtool:
	@if ! command -v $(PROMTOOL) >/dev/null 2>&1; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
			echo "promtool not found: installing Debian's prometheus package"; \
			apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends prometheus; \
		else \
			echo "promtool not found: install it (Debian/Ubuntu: sudo apt-get install prometheus, or a Prometheus release tarball) and run make again" >&2; \
			exit 1; \
		fi; \
	fi

## promtool-test: check the alerting rules and run their unit tests (tests/prometheus/)
promtool-test: promtool
	$(PROMTOOL) check rules $(RULES)
	$(PROMTOOL) test rules tests/prometheus/*.yaml

## bench: criterion benchmarks, then load runs against the release binary (see BENCHMARKS.md)
bench:
	@if ! command -v h2load >/dev/null 2>&1; then \
		if [ "$$(id -u)" = 0 ]; then apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends nghttp2-client; \
		else echo "h2load not found: sudo apt-get install nghttp2-client" >&2; exit 1; fi; \
	fi
	$(CARGO) bench --bench engine
	$(CARGO) build --release
	benches/load.sh

## fuzz: run each cargo-fuzz target for FUZZ_SECONDS (default 60) from the seed corpus
fuzz:
	@command -v cargo-fuzz >/dev/null 2>&1 || $(CARGO) install cargo-fuzz --locked
	cd fuzz && for target in review policy; do \
		mkdir -p target/corpus/$$target && \
		RUSTC_BOOTSTRAP=1 $(CARGO) fuzz run -O $$target target/corpus/$$target corpus/$$target -- \
			-max_total_time=$(FUZZ_SECONDS) -rss_limit_mb=2048 || exit 1; \
	done

fmt:
	$(CARGO) fmt --all

build:
	$(CARGO) build

release:
	$(CARGO) build --release

clean:
	rm -rf $(CERTS)
	$(CARGO) clean

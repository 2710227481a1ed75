# portcullis — see README.md.
CARGO ?= cargo
CERTS ?= .dev-certs
LISTEN ?= 127.0.0.1:8443
ADMIN_LISTEN ?= 127.0.0.1:9090
PROMTOOL ?= promtool
RULES ?= manifests/monitoring/rules.yaml

.PHONY: run test fmt lint build release certs clean promtool promtool-test

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

fmt:
	$(CARGO) fmt --all

build:
	$(CARGO) build

release:
	$(CARGO) build --release

clean:
	rm -rf $(CERTS)
	$(CARGO) clean

# portcullis — see README.md.
CARGO ?= cargo
CERTS ?= .dev-certs
LISTEN ?= 127.0.0.1:8443
ADMIN_LISTEN ?= 127.0.0.1:9090

.PHONY: run test fmt lint build release certs clean

## run: serve the bundled policies on $(LISTEN) (admin on $(ADMIN_LISTEN)) with development certificates
run: $(CERTS)/tls.crt
	$(CARGO) run --quiet -- serve --no-cluster --policies policies \
		--listen $(LISTEN) --admin-listen $(ADMIN_LISTEN) \
		--tls-cert $(CERTS)/tls.crt --tls-key $(CERTS)/tls.key

$(CERTS)/tls.crt:
	$(CARGO) run --quiet -- certs --out $(CERTS) --dns localhost --ip 127.0.0.1 >/dev/null

certs: $(CERTS)/tls.crt

## test: everything CI runs
test:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets -- -D warnings
	@if command -v cargo-nextest >/dev/null 2>&1; then \
		$(CARGO) nextest run --no-fail-fast && $(CARGO) test --doc; \
	else \
		$(CARGO) test; \
	fi
	$(CARGO) run --quiet -- policies --policies policies >/dev/null

fmt:
	$(CARGO) fmt --all

build:
	$(CARGO) build

release:
	$(CARGO) build --release

clean:
	rm -rf $(CERTS)
	$(CARGO) clean

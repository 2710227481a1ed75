# syntax=docker/dockerfile:1
# The portcullis image: `docker build -t ghcr.io/portcullis-dev/portcullis:0.1.0 .`

FROM rust:1.95-bookworm AS builder
WORKDIR /src
# The whole context, not a list: Cargo.toml names targets outside src/ (benches/engine.rs)
# and src/ includes files from policies/ and tests/fixtures/ (include_str!). .dockerignore
# keeps build output, history and local certificates out; tests/image_context.rs checks
# this same context with cargo, so a missing file fails `make test`, not the image build.
COPY . .
RUN cargo build --release --locked --bin portcullis

# glibc and libgcc from Debian 12 like the builder; no shell; uid/gid 65532.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY LICENSE /usr/share/doc/portcullis/LICENSE
COPY --from=builder /src/target/release/portcullis /usr/local/bin/portcullis
# The bundled policies, used when no policies ConfigMap is mounted over them.
COPY policies/ /etc/portcullis/policies/
USER 65532:65532
EXPOSE 8443 9090
ENTRYPOINT ["/usr/local/bin/portcullis"]
# Mount the serving certificate at /etc/portcullis/tls (tls.crt, tls.key).
CMD ["serve", "--listen", "0.0.0.0:8443", "--admin-listen", "0.0.0.0:9090", "--tls-cert", "/etc/portcullis/tls/tls.crt", "--tls-key", "/etc/portcullis/tls/tls.key", "--policies", "/etc/portcullis/policies"]

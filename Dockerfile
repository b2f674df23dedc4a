# pingora-secgw container image.
#
#   docker build -t pingora-secgw .                      # builds the binary in the image
#   docker build --build-arg BINARY_SOURCE=host -t pingora-secgw .
#       # packs target/release/pingora-secgw built on a bookworm host into the same
#       # runtime stage (used by scripts/container-smoke.sh)
#
# Ports: 8080 (HTTP), 8443 (HTTPS), 9100 (admin: /metrics, /healthz, /readyz).
# Runs as UID/GID 10001 with a read-only root filesystem: pid file, upgrade socket
# and other writable paths are set in gw.yaml (the shipped one uses /tmp; mount a
# writable volume there).

ARG RUST_IMAGE=rust:1.95-bookworm
ARG RUNTIME_IMAGE=debian:bookworm-slim
ARG BINARY_SOURCE=build

FROM ${RUST_IMAGE} AS build
# Pingora builds zlib-ng with cmake.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends cmake \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY benches ./benches
RUN cargo build --release --locked --bin pingora-secgw \
    && mkdir -p /out \
    && cp target/release/pingora-secgw /out/pingora-secgw

FROM scratch AS host
COPY target/release/pingora-secgw /out/pingora-secgw

# The binary from the stage BINARY_SOURCE names: `build` or `host`.
# hadolint ignore=DL3006
FROM ${BINARY_SOURCE} AS binary

FROM ${RUNTIME_IMAGE} AS runtime
# TLS is rustls (linked in): the image only needs the CA roots for TLS upstreams.
# Debian point releases replace package versions, so they are not pinned.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/*
COPY --from=binary /out/pingora-secgw /usr/local/bin/pingora-secgw
COPY conf/gw.yaml /etc/pingora-secgw/gw.yaml
COPY conf/policies /etc/pingora-secgw/policies
USER 10001:10001
EXPOSE 8080 8443 9100
STOPSIGNAL SIGTERM
ENTRYPOINT ["pingora-secgw"]
CMD ["-c", "/etc/pingora-secgw/gw.yaml"]

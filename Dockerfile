# waiaas in a container (12-operations.md §1): a release build in the official Rust image, run
# as UID 1001 in a slim Debian image with only what the binary loads.
#
#   docker build -t waiaas .
#   docker compose up -d            (docker-compose.yml: the port, the volume, the password secret)

# --- build ----------------------------------------------------------------------------------------
FROM rust:1.95-slim-bookworm AS build
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# pkg-config and libudev headers for the Ledger USB HID feature, make for the jemalloc the
# binary links (tikv-jemallocator builds it from source). Versions are not pinned: the
# base image tag pins the Debian release, and a point release removes the versions it replaces.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends pkg-config libudev-dev make \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src

# The dependency layer: the manifests and the lockfile with stub sources, built once. A change
# to the sources alone starts from here and rebuilds only the workspace's own crates.
COPY Cargo.toml Cargo.lock ./
COPY storage/Cargo.toml storage/Cargo.toml
COPY backends/Cargo.toml backends/Cargo.toml
COPY tools/surfnet-local/Cargo.toml tools/surfnet-local/Cargo.toml
RUN mkdir -p src tests benches storage/src storage/benches backends/src backends/benches tools/surfnet-local/src \
 && for f in src/main.rs tools/surfnet-local/src/main.rs tests/main.rs benches/master_auth.rs benches/load.rs \
             benches/policy.rs benches/killswitch.rs storage/benches/hot_path.rs backends/benches/unlock.rs; do \
      echo 'fn main() {}' > "$f"; \
    done \
 && touch src/lib.rs storage/src/lib.rs backends/src/lib.rs \
 && cargo build --release --locked --bin waiaas

# The sources (see .dockerignore), then the real build.
COPY . .
RUN touch src/main.rs src/lib.rs storage/src/lib.rs backends/src/lib.rs \
 && cargo build --release --locked --bin waiaas \
 && install -m 0755 target/release/waiaas /usr/local/bin/waiaas

# --- runtime --------------------------------------------------------------------------------------
FROM debian:bookworm-slim
# CA roots for TLS to RPC nodes and notification services; libudev for the HID feature.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates libudev1 \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --gid 1001 waiaas \
 && useradd --uid 1001 --gid 1001 --home-dir /data --no-create-home --shell /usr/sbin/nologin waiaas \
 && mkdir /data \
 && chown 1001:1001 /data \
 && chmod 0700 /data
COPY --from=build /usr/local/bin/waiaas /usr/local/bin/waiaas

USER 1001:1001
# The data directory is the volume; the daemon listens on every interface of the container (the
# host publishes it, e.g. on 127.0.0.1:3100 only); a first start on an empty volume initialises
# it with the password from WAIAAS_MASTER_PASSWORD_FILE (a secret file).
ENV WAIAAS_DATA_DIR=/data WAIAAS_DAEMON_HOSTNAME=0.0.0.0 WAIAAS_INIT_ON_START=true
VOLUME /data
EXPOSE 3100
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=30s --timeout=10s --start-period=90s --retries=3 CMD ["waiaas", "health"]
ENTRYPOINT ["waiaas"]
CMD ["start"]

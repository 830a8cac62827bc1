# One image with every Brain binary; docker-compose.yml picks the command per service.
#
#   docker build -t brain:dev .
#   docker run --rm brain:dev api-gateway        (settings come from the environment)
#
# Layout: cargo-chef compiles the dependencies from a recipe of the manifests and Cargo.lock
# alone, so that layer stays cached until a manifest or the lock file changes; only then the
# workspace sources are copied and the Brain crates themselves are compiled.
# A cold build takes ~10 min on 2 cores (see shared DEPENDENCIES.md); later builds that touch
# only Rust sources reuse the dependency layer.

ARG RUST_IMAGE=rust:1.95-bookworm
ARG RUNTIME_IMAGE=debian:bookworm-slim

# --- chef: toolchain, native build dependencies, cargo-chef ------------------------------------
FROM ${RUST_IMAGE} AS chef
# pkg-config + libssl-dev: rdkafka builds its bundled librdkafka against the system OpenSSL.
RUN apt-get update \
    && apt-get install -y --no-install-recommends pkg-config libssl-dev \
    && rm -rf /var/lib/apt/lists/*
RUN cargo install cargo-chef --locked --version 0.1.78
WORKDIR /src

# --- planner: a recipe of the dependency graph (manifests + lock file only) ----------------------
FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

# --- builder: dependencies first (cached layer), then the workspace ------------------------------
FROM chef AS builder
COPY --from=planner /src/recipe.json recipe.json
RUN cargo chef cook --release --locked --workspace --bins --recipe-path recipe.json
COPY . .
# The binaries the image ships; each one must be built by the workspace.
ARG BINARIES="ventures-sync projection-writer firestore-change-listener dlq-replayer qbo-mirror sharefile-sync graph-calendar api-gateway schema-registry ventures-simulator qbo-simulator storage-simulator sharefile-simulator graph-simulator dev-oidc"
RUN cargo build --release --locked --workspace --bins \
    && mkdir -p /out \
    && for bin in ${BINARIES}; do install -m 0755 "target/release/${bin}" /out/; done

# --- runtime --------------------------------------------------------------------------------------
FROM ${RUNTIME_IMAGE} AS runtime
# What a release binary needs at run time: OpenSSL (librdkafka), zlib, CA roots (rustls/OpenSSL).
RUN apt-get update \
    && apt-get install -y --no-install-recommends libssl3 zlib1g ca-certificates \
    && rm -rf /var/lib/apt/lists/*
RUN groupadd --system --gid 10001 brain \
    && useradd --system --uid 10001 --gid brain --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin brain
COPY --from=builder /out/ /usr/local/bin/
USER 10001:10001
ENV RUST_LOG=info
# api-gateway 8000, dlq-replayer serve 8085, schema-registry 8081, ventures-simulator 8090,
# qbo-simulator 8091, ops ports 9101/9102/9103 and 9106 (qbo-mirror).
EXPOSE 8000 8070 8081 8085 8090 8091 8092 8093 8094 9101 9102 9103 9106 9107 9108
# No default service: the command names the binary (see docker-compose.yml).
CMD ["sh", "-c", "echo 'brain image: run one of: ventures-sync projection-writer firestore-change-listener dlq-replayer qbo-mirror sharefile-sync graph-calendar api-gateway schema-registry ventures-simulator qbo-simulator storage-simulator sharefile-simulator graph-simulator dev-oidc' >&2; exit 64"]

# syntax=docker/dockerfile:1
# The `wagu` server image: a multi-stage build of `wagu-gateway`'s `wagu` binary with the web
# client embedded, on a slim Debian runtime as a non-root user.
#
#   docker build -t wagu:dev .
#   docker run --rm -p 8080:8080 -e WAGU_LISTEN=0.0.0.0:8080 wagu:dev     # embedded backends
#
# A cluster (deploy/cluster/compose.yaml, deploy/k8s/) mounts deploy/cluster/wagu.toml and points
# WAGU_CONFIG at it. Every image tag is pinned; docs/DEPLOY.md says how this file was checked.

# Node for the web client: gateway/build.rs runs `npm ci` and `node build.mjs` (esbuild) and
# embeds the bundle in the binary; it needs Node 20+ (Debian bookworm ships 18).
FROM node:22.20.0-bookworm-slim AS node

FROM rust:1.95.0-bookworm AS builder
COPY --from=node /usr/local/bin/node /usr/local/bin/node
COPY --from=node /usr/local/lib/node_modules/npm /usr/local/lib/node_modules/npm
RUN ln -s ../lib/node_modules/npm/bin/npm-cli.js /usr/local/bin/npm \
    && node --version && npm --version
WORKDIR /src
# Every workspace member (cargo reads all their manifests and declared targets), the web
# client and the JSON Schemas its types are generated from. .dockerignore keeps out build
# products (target/, web/node_modules, web/dist) and everything else.
COPY Cargo.toml Cargo.lock ./
COPY proto proto
COPY engine engine
COPY storage storage
COPY media media
COPY gateway gateway
COPY loadtest loadtest
COPY web web
COPY docs/schema docs/schema
# The web client first, on its own: build.rs only warns when the bundle fails (a laptop without
# Node still gets a server), but an image without its client must not be built.
WORKDIR /src/web
RUN --mount=type=cache,target=/root/.npm \
    npm ci --no-audit --no-fund && npm run build
WORKDIR /src
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p wagu-gateway --bin wagu \
    && cp target/release/wagu /usr/local/bin/wagu

FROM debian:bookworm-20260803-slim
# ca-certificates: TLS to S3, OpenID Connect providers and the drafts model API.
# curl: the HEALTHCHECK below and an operator's `curl localhost:8080/readyz`.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/*
RUN groupadd --system --gid 10001 wagu \
    && useradd --system --uid 10001 --gid wagu --home-dir /var/lib/wagu --shell /usr/sbin/nologin wagu \
    && mkdir -p /var/lib/wagu /etc/wagu \
    && chown wagu:wagu /var/lib/wagu
COPY --from=builder /usr/local/bin/wagu /usr/local/bin/wagu
USER 10001:10001
WORKDIR /var/lib/wagu
# HTTP and WebSocket (`listen`), and the SFU's one UDP port (`media.udp_listen`; a cluster on one
# host gives each node its own, see deploy/cluster/compose.yaml).
EXPOSE 8080/tcp 3478/udp
# Liveness only: /healthz never depends on Redis. Readiness (/readyz) is the load balancer's.
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["curl", "-fsS", "-o", "/dev/null", "http://127.0.0.1:8080/healthz"]
# SIGTERM starts a drain: /readyz answers 503 at once, sessions are handed over in batches,
# clients are closed with 4000 and resume on another node, then the process exits.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/wagu"]
CMD ["serve"]

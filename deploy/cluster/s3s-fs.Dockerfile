# syntax=docker/dockerfile:1
# The compose cluster's S3-compatible server: s3s-fs 0.14.1 from crates.io, the same server and
# version the test bed runs (deploy/install.sh), so the cluster's blob store behaves like the one
# every test used. It serves each directory under its root as a bucket. A development and
# staging stand-in: production points [blobs.s3] at AWS S3 or an operated S3 service.
FROM rust:1.95.0-bookworm AS build
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    cargo install s3s-fs --version 0.14.1 --features binary --locked --root /opt/s3s-fs

FROM debian:bookworm-20260803-slim
# curl: the compose healthcheck.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends curl \
    && rm -rf /var/lib/apt/lists/*
RUN groupadd --system --gid 10002 s3 \
    && useradd --system --uid 10002 --gid s3 --home-dir /data --shell /usr/sbin/nologin s3 \
    && mkdir -p /data \
    && chown s3:s3 /data
COPY --from=build /opt/s3s-fs/bin/s3s-fs /usr/local/bin/s3s-fs
USER 10002:10002
EXPOSE 9000/tcp
ENTRYPOINT ["/usr/local/bin/s3s-fs"]
CMD ["--host", "0.0.0.0", "--port", "9000", "/data"]

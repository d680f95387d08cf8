# wormgate as a sidecar: a release build, then a small runtime image that runs as a non-root
# user with the lock index on a volume.
#
#   docker build -t wormgate .
#   docker run -v wormgate-data:/var/lib/wormgate -v ./wormgate.toml:/etc/wormgate/wormgate.toml:ro \
#     -e WORMGATE_CONFIG=/etc/wormgate/wormgate.toml -p 9000:9000 wormgate

FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY policy policy
COPY gateway gateway
COPY tests tests
COPY bench bench
RUN cargo build --release --locked -p wormgate \
    && cp target/release/wormgate /usr/local/bin/wormgate

FROM debian:bookworm-slim
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 wormgate \
    && useradd --system --uid 10001 --gid wormgate --home-dir /var/lib/wormgate wormgate \
    && mkdir -p /var/lib/wormgate /etc/wormgate \
    && chown wormgate:wormgate /var/lib/wormgate
COPY --from=build /usr/local/bin/wormgate /usr/local/bin/wormgate

# The index, the clock's high-water mark and generated keys live here: keep it on a volume.
VOLUME ["/var/lib/wormgate"]
# Two glibc malloc arenas: memory stays flat whichever worker thread serves a request.
ENV MALLOC_ARENA_MAX=2 \
    WORMGATE_DATA=/var/lib/wormgate \
    WORMGATE_LISTEN=0.0.0.0:9000 \
    WORMGATE_ADMIN_LISTEN=0.0.0.0:9001
# Numeric (the user wormgate, 10001): Kubernetes' runAsNonRoot can only verify a uid.
USER 10001:10001
EXPOSE 9000 9001
# The start period covers loading the lock records into memory when that is asked for (about
# 7 s per million); a start that answers sooner ends it at once.
HEALTHCHECK --interval=15s --timeout=5s --start-period=120s --retries=3 \
    CMD ["wormgate", "health", "127.0.0.1:9001"]
# SIGTERM drains uploads in flight (WORMGATE_SHUTDOWN_GRACE_SECS, default 30) and flushes the
# index; give the container at least that long to stop.
STOPSIGNAL SIGTERM
ENTRYPOINT ["wormgate"]
CMD ["serve"]

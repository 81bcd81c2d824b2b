# Multi-stage build of the latchkey server. Not built in this repository's
# CI (no container engine there); kept minimal.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin latchkey

FROM debian:bookworm-slim
RUN useradd --system --uid 10001 --home-dir /var/lib/latchkey --create-home latchkey
COPY --from=build /src/target/release/latchkey /usr/local/bin/latchkey
USER 10001
WORKDIR /var/lib/latchkey
ENV LATCHKEY_LISTEN=0.0.0.0:50051 \
    LATCHKEY_LOG_FORMAT=json
EXPOSE 50051 9090
# For runtimes without native gRPC probes (docker, compose).
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD ["latchkey", "healthcheck", "--addr", "127.0.0.1:50051"]
ENTRYPOINT ["latchkey"]
CMD ["serve"]

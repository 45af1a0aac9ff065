# coreserve container image, linux/amd64 and linux/arm64: built from Debian 12 with the project's own Debian
# packages, run on Debian 12 slim with only the shared libraries the binary links.
#
#   make container                    (podman build --isolation chroot, both architectures, no registry needed)
#   docker buildx build --platform linux/amd64,linux/arm64 -t coreserve .
#   docker run -p 8000:8000 -p 8001:8001 -p 8002:8002 -v /path/to/models:/models:ro coreserve
#
# Multi-arch by cross-compiling: the build stage runs on the build machine's own architecture ($BUILDPLATFORM)
# and compiles for $TARGETARCH with Debian's cross g++ against Debian's multiarch arm64 libraries. Compiling
# the server under qemu emulation instead would take hours; the cross build takes as long as a native one. The
# kernels choose their instruction set at run time (AVX-512/VNNI/BF16 or AVX2 on x86-64; SVE, BF16, I8MM or NEON
# on arm64), so one image runs on every CPU of its architecture: Inf1/c6i and Graviton2/3/4 alike.
#
# The base images are arguments so that `make container` can build from local images made by debootstrap
# (scripts/make-base-image.sh); their defaults are Docker's official Debian images.
ARG BUILD_BASE=debian:bookworm
ARG RUNTIME_BASE=debian:bookworm-slim

FROM --platform=$BUILDPLATFORM ${BUILD_BASE} AS build
ARG TARGETARCH
WORKDIR /src
COPY scripts/install-deps.sh scripts/
RUN scripts/install-deps.sh --build-only --target-arch "${TARGETARCH}" && rm -rf /var/lib/apt/lists/*
# Only what the binary is built from (.dockerignore keeps build trees, venvs and models out of the context).
COPY CMakeLists.txt ./
COPY cmake cmake
COPY proto proto
COPY kernels kernels
COPY runtime runtime
COPY server server
COPY scripts/build-release.sh scripts/
RUN scripts/build-release.sh "${TARGETARCH}" /out

# The platform is spelled out for podman 4.3, which would otherwise look the base up for the build stage's.
FROM --platform=$TARGETPLATFORM ${RUNTIME_BASE}
ARG VERSION=0.1.0
# The shared libraries `coreserve` links (objdump -p: NEEDED), and curl for the health check.
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      libgrpc++1.51 libgrpc29 libprotobuf32 libabsl20220623 libcpp-httplib0.11 libprometheus-cpp-core1.0 \
      libyaml-cpp0.7 libonnx1 libssl3 curl ca-certificates \
 && apt-get clean && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 coreserve \
 && useradd --system --uid 10001 --gid 10001 --home-dir /nonexistent --shell /usr/sbin/nologin coreserve \
 && mkdir -p /models /etc/coreserve
COPY --from=build /out/coreserve /usr/local/bin/coreserve
COPY config/container.yaml /etc/coreserve/config.yaml

LABEL org.opencontainers.image.title="coreserve" \
      org.opencontainers.image.description="CPU inference server for ONNX models: KServe v2 / Open Inference Protocol over HTTP and gRPC, TF Serving REST, Prometheus metrics" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.base.name="debian:bookworm-slim"

USER 10001:10001
VOLUME ["/models"]
# 8000 HTTP (KServe v2 REST, TF Serving :predict), 8001 gRPC (KServe v2), 8002 Prometheus metrics.
EXPOSE 8000 8001 8002
# Healthy = ready: the server is up and every model of the repository loaded.
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s --retries=3 \
  CMD ["curl", "-sf", "-o", "/dev/null", "http://127.0.0.1:8000/v2/health/ready"]
# SIGTERM (the default stop signal) drains: in-flight requests finish within shutdown_grace_seconds.
ENTRYPOINT ["/usr/local/bin/coreserve", "serve", "--config", "/etc/coreserve/config.yaml"]

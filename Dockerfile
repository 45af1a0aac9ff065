# coreserve container image: built from Debian 12 with the project's own Debian packages, run on Debian 12 slim.
#
#   podman build --isolation chroot -t coreserve .        (or: docker build -t coreserve .)
#   docker run -p 8000:8000 -p 8001:8001 -p 8002:8002 -v /path/to/models:/models coreserve
#
# The build stage compiles natively for the platform it runs on (one image per architecture); the kernels
# choose their instruction set at run time, so the image runs on every CPU of its architecture.

FROM debian:bookworm AS build
WORKDIR /src
COPY scripts/install-deps.sh scripts/
RUN scripts/install-deps.sh --build-only && rm -rf /var/lib/apt/lists/*
COPY . .
# Tests and model generation are not part of the image build: no Python tools are needed here.
RUN cmake -S . -B /build -G Ninja -DCMAKE_BUILD_TYPE=Release -DCORESERVE_BUILD_TESTS=OFF \
          -DCORESERVE_BUILD_BENCH=OFF \
 && cmake --build /build --target coreserve -j "$(nproc)" \
 && strip /build/coreserve

FROM debian:bookworm-slim
# Only the shared libraries the binary links, plus curl for the health check.
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      libgrpc++1.51 libprotobuf32 libabsl20220623 libcpp-httplib0.11 libprometheus-cpp-core1.0 \
      libyaml-cpp0.7 libonnx1 curl ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /nonexistent --shell /usr/sbin/nologin coreserve \
 && mkdir -p /models /etc/coreserve
COPY --from=build /build/coreserve /usr/local/bin/coreserve
COPY config/container.yaml /etc/coreserve/config.yaml

LABEL org.opencontainers.image.title="coreserve" \
      org.opencontainers.image.description="CPU inference server for ONNX models (KServe v2 over HTTP and gRPC)" \
      org.opencontainers.image.licenses="Apache-2.0"

USER 10001
VOLUME ["/models"]
EXPOSE 8000 8001 8002
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
  CMD ["curl", "-sf", "http://127.0.0.1:8000/v2/health/live"]
ENTRYPOINT ["/usr/local/bin/coreserve", "serve", "--config", "/etc/coreserve/config.yaml"]

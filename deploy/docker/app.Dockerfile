# syntax=docker/dockerfile:1
# The app image: `memtrail worker`, `memtrail sink opensearch|wazuh`, `memtrail shim`,
# `memtrail audit-webhook` and the topic job. No eBPF here (see sensor.Dockerfile).
# Build from the repository root:
#   docker build -f deploy/docker/app.Dockerfile -t memtrail:dev .
ARG PYTHON_IMAGE=python:3.11-slim-bookworm
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
WORKDIR /src
COPY pyproject.toml README.md ./
COPY memtrail ./memtrail
COPY schemas ./schemas
COPY patterns ./patterns
COPY streams ./streams
COPY sinks ./sinks
COPY sensors ./sensors
COPY ebpf ./ebpf
RUN /opt/venv/bin/pip install --upgrade pip \
 && /opt/venv/bin/pip install /src

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="memtrail" \
      org.opencontainers.image.description="Memtrail stream workers, sinks and the security-events shim" \
      org.opencontainers.image.licenses="Apache-2.0"
# librdkafka is bundled in the confluent-kafka wheel; tini reaps and forwards signals.
RUN apt-get update \
 && apt-get install -y --no-install-recommends tini ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 memtrail \
 && useradd --system --uid 10001 --gid memtrail --home-dir /var/lib/memtrail --shell /usr/sbin/nologin memtrail \
 && mkdir -p /var/lib/memtrail/worker /var/lib/memtrail/shim \
 && chown -R memtrail:memtrail /var/lib/memtrail
COPY --from=build /opt/venv /opt/venv
# The built-in pattern library, where the chart's MEMTRAIL_PATTERNS_DIRS points.
COPY patterns/library /opt/memtrail/patterns/library
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    MEMTRAIL_PATTERNS_DIRS='["/opt/memtrail/patterns/library"]'
USER 10001:10001
WORKDIR /var/lib/memtrail
EXPOSE 6066 8080 9102 9103 9104
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["memtrail", "--help"]

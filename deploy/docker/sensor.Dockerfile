# syntax=docker/dockerfile:1
# The sensor image: `memtrail sensor` (bcc on syscall tracepoints). Debian bookworm, because
# bcc's Python module comes from Debian's python3-bpfcc and imports only in Debian's
# /usr/bin/python3; the project goes into a venv made with --system-site-packages.
# Kernel headers are NOT in the image: mount the node's /lib/modules and /usr/src
# (the Helm chart and compose file do), so bcc compiles against the running kernel.
# Build from the repository root:
#   docker build -f deploy/docker/sensor.Dockerfile -t memtrail-sensor:dev .
FROM debian:bookworm-slim
ENV DEBIAN_FRONTEND=noninteractive PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      python3 python3-venv python3-pip python3-bpfcc bpfcc-tools libbpfcc \
      ca-certificates tini kmod \
 && rm -rf /var/lib/apt/lists/*
RUN /usr/bin/python3 -m venv --system-site-packages /opt/venv
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
 && /opt/venv/bin/pip install /src \
 && /opt/venv/bin/python -c "import bcc" \
 && rm -rf /src
COPY patterns/library /opt/memtrail/patterns/library
LABEL org.opencontainers.image.title="memtrail-sensor" \
      org.opencontainers.image.description="Memtrail eBPF syscall sensor (bcc, tracepoints only)" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    MEMTRAIL_SENSOR_SPOOL_DIR=/var/lib/memtrail/spool \
    MEMTRAIL_PATTERNS_DIRS='["/opt/memtrail/patterns/library"]'
RUN mkdir -p /var/lib/memtrail/spool
# Runs as root: loading BPF programs and reading other processes' /proc entries need it.
WORKDIR /var/lib/memtrail
EXPOSE 9101
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["memtrail", "sensor"]

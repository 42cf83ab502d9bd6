#!/usr/bin/env bash
# Idempotent set-up for a fresh Debian bookworm machine, run as root.
# Installs the system parts (bcc, kernel headers, podman, browsers, servers used by
# tests), mounts tracefs and creates .venv from Debian's python3 so `bcc` imports.
# Each step says what failed and why; a failed optional step does not stop the rest.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$HERE/.venv"
PROFILE="${1:-run}"     # run | test
KVER="$(uname -r)"

say()  { printf '\033[1mbootstrap:\033[0m %s\n' "$*"; }
fail() { printf '\033[31mbootstrap: %s\033[0m\n' "$*" >&2; exit 1; }
warn() { printf '\033[33mbootstrap: warning: %s\033[0m\n' "$*" >&2; }

[ "$(id -u)" = 0 ] || fail "must run as root: apt-get, kernel headers, tracefs and eBPF all need it (try: sudo make $PROFILE)"
command -v apt-get >/dev/null || fail "apt-get not found: this set-up supports Debian (bookworm) only"

APT_RUN=(python3-bpfcc bpfcc-tools python3-venv python3-pip podman runc kcat)
APT_TEST=(chromium chromium-driver prometheus docker-compose postgresql busybox-static containerd stunnel4)
# the benign corpus (bench/noise, tests/corpus): image builds and the host workloads
APT_CORPUS=(debootstrap git gcc make cmake strace gdb openssh-client curl openjdk-17-jdk-headless)
want=("${APT_RUN[@]}")
[ "$PROFILE" = test ] && want+=("${APT_TEST[@]}" "${APT_CORPUS[@]}")

missing=()
for p in "${want[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done

headers_ok() { [ -e "/lib/modules/$KVER/build/include/generated/autoconf.h" ] || [ -e "/lib/modules/$KVER/build/Makefile" ]; }

apt_updated=0
apt_update() { [ $apt_updated = 1 ] || { say "apt-get update"; apt-get update -qq || fail "apt-get update failed (no network to Debian mirrors?)"; apt_updated=1; }; }

if [ ${#missing[@]} -gt 0 ]; then
  apt_update
  say "installing: ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >/tmp/memtrail-apt.log 2>&1 \
    || { tail -20 /tmp/memtrail-apt.log >&2; fail "apt-get install failed (log: /tmp/memtrail-apt.log)"; }
fi

# Kernel headers: bcc compiles against /lib/modules/$KVER/build. When the running kernel
# has none (cloud VMs with custom kernels), use the nearest Debian cloud-amd64 headers.
if ! headers_ok; then
  have="$(ls -d /usr/src/linux-headers-*-cloud-amd64 2>/dev/null | sort -V | tail -1 || true)"
  if [ -z "$have" ]; then
    apt_update
    pkg="$("$HERE/scripts/nearest-headers.py" "$KVER" < <(apt-cache search --names-only '^linux-headers-[0-9].*-cloud-amd64$' | cut -d' ' -f1))" \
      || fail "no linux-headers-*-cloud-amd64 package found for kernel $KVER"
    say "kernel $KVER has no headers; installing nearest Debian headers: $pkg"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$pkg" >/tmp/memtrail-apt.log 2>&1 \
      || { tail -20 /tmp/memtrail-apt.log >&2; fail "could not install $pkg"; }
    have="/usr/src/${pkg}"
  fi
  common="${have%-cloud-amd64}-common"
  mkdir -p "/lib/modules/$KVER"
  ln -sfn "$have" "/lib/modules/$KVER/build"
  [ -d "$common" ] && ln -sfn "$common" "/lib/modules/$KVER/source"
  say "linked /lib/modules/$KVER/build -> $have"
fi

# tracefs: syscall tracepoints are attached through it.
if [ ! -e /sys/kernel/tracing/events ]; then
  mount -t tracefs nodev /sys/kernel/tracing 2>/dev/null \
    || warn "cannot mount tracefs at /sys/kernel/tracing: the eBPF sensor will not attach (container without CAP_SYS_ADMIN?)"
fi
[ -e /sys/kernel/btf/vmlinux ] || warn "/sys/kernel/btf/vmlinux missing: kernel built without BTF; bcc may still work with headers"

# The venv must come from Debian's python3: the bcc module only imports there.
if [ ! -x "$VENV/bin/python" ]; then
  say "creating $VENV from /usr/bin/python3 (with system site-packages for bcc)"
  /usr/bin/python3 -m venv --system-site-packages "$VENV" || fail "venv creation failed (python3-venv missing?)"
fi
stamp="$VENV/.memtrail-installed"
sum="$(cat "$HERE/pyproject.toml" | sha256sum | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$sum" ]; then
  say "installing memtrail into $VENV"
  "$VENV/bin/pip" install -q --upgrade pip >/dev/null
  "$VENV/bin/pip" install -q -e "$HERE[dev]" || fail "pip install failed (PyPI unreachable?)"
  echo "$sum" > "$stamp"
fi
"$VENV/bin/python" -c 'import bcc' 2>/dev/null || warn "bcc does not import in $VENV: is python3-bpfcc installed?"
say "ready ($PROFILE)"

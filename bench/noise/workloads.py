"""The benign corpus: image recipes and bounded workloads on real software.

A container workload is a shell script run as the container's command (official-image
style: the script is the entrypoint), optionally with ``podman exec``/``podman
healthcheck run`` from outside while it runs. A host workload is a bash script run in
its own cgroup with ``$WORK`` (a fresh directory under /tmp), ``$WHEELHOUSE`` and
``$DEBSRC`` set. Each finishes on its own within a minute or so.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from bench.noise import assets
from bench.noise.images import Recipe

CORPUS = "/opt/corpus"


def _corpus_files() -> dict[str, bytes]:
    files = {
        f"{CORPUS}/httpload.py": assets.HTTPLOAD.encode(),
        f"{CORPUS}/app.py": assets.WSGI_APP.encode(),
        # as the official nginx image ships its docroot, and a cron image its job (COPY at build)
        "/usr/share/nginx/html/index.html": b"<h1>hello</h1>\n",
        "/etc/cron.d/corpus": b"* * * * * root date >> /tmp/cron-ran; ls /var/log > /dev/null\n",
    }
    files.update({f"{CORPUS}/debsrc/{k}": v for k, v in assets.deb_sources().items()})
    return files


BUILD_DEB_IN_IMAGE = (
    f"SRC={CORPUS}/debsrc OUT={CORPUS}/memtrail-corpus-hello_1.0_all.deb\n" + assets.BUILD_DEB
)


def _web() -> Recipe:
    wheels = {f"/opt/wheelhouse/{p.name}": p.read_bytes() for p in sorted(assets.wheelhouse().glob("*.whl"))}
    return Recipe(
        "web",
        ("nginx", "python3", "python3-venv", "curl", "gettext-base", "ca-certificates", "cron"),
        files={**_corpus_files(), **wheels},
        script=BUILD_DEB_IN_IMAGE,
    )


def _data() -> Recipe:
    return Recipe("data", ("postgresql", "postgresql-contrib", "redis-server", "redis-tools"))


def _apps() -> Recipe:
    java = {f"{CORPUS}/java/{k}": v for k, v in assets.java_classes().items()}
    return Recipe(
        "apps",
        ("nodejs", "default-jre-headless", "python3"),
        files={**java, f"{CORPUS}/server.js": assets.NODE_APP.encode()},
    )


def _ops() -> Recipe:
    return Recipe(
        "ops",
        ("haproxy", "supervisor", "logrotate", "python3", "curl"),
        files={f"{CORPUS}/httpload.py": assets.HTTPLOAD.encode(), "/etc/logrotate.d/app": LOGROTATE_APP},
    )


# an application's logrotate policy, shipped in its image (packages put theirs in /etc/logrotate.d)
LOGROTATE_APP = b"""/var/log/app/*.log {
    rotate 3
    compress
    missingok
    notifempty
    sharedscripts
    postrotate
        kill -HUP "$(cat /run/app.pid)" 2>/dev/null || true
    endscript
}
"""

RECIPES = {"web": _web, "data": _data, "apps": _apps, "ops": _ops}


@cache
def recipe(name: str) -> Recipe:
    """The recipe of image ``name`` (its assets are made on first use: wheelhouse, Java classes)."""
    return RECIPES[name]()


@dataclass(frozen=True)
class Workload:
    name: str
    what: str
    script: str
    image: str | None = None  # a recipe name; None runs on the host
    run_opts: tuple[str, ...] = ()  # extra `podman run` options
    health_cmd: str | None = None  # run with `podman healthcheck run` every second while it runs
    execs: tuple[str, ...] = ()  # `podman exec` commands repeated every second while it runs
    ci: bool = False  # in the CI subset (tests/corpus)
    timeout: float = 240.0

    @property
    def where(self) -> str:
        return f"container:{self.image}" if self.image else "host"


NGINX = r"""
export NGINX_PORT=8080 SERVER_NAME=localhost
mkdir -p /etc/nginx/templates
cat > /etc/nginx/templates/default.conf.template <<'EOF'
server {
    listen ${NGINX_PORT};
    server_name ${SERVER_NAME};
    root /usr/share/nginx/html;
    location / { try_files $uri $uri/ =404; }
}
EOF
# what the official image's entrypoint does: envsubst templates, edit config in place, chown
envsubst '${NGINX_PORT} ${SERVER_NAME}' < /etc/nginx/templates/default.conf.template > /etc/nginx/conf.d/default.conf
rm -f /etc/nginx/sites-enabled/default
sed -i 's/^worker_processes .*/worker_processes 2;/' /etc/nginx/nginx.conf
sed -i -e '/access_log/s#/var/log/nginx/access.log#/dev/stdout#' /etc/nginx/nginx.conf
chown -R www-data:www-data /usr/share/nginx/html /var/lib/nginx
nginx -t
nginx
python3 /opt/corpus/httpload.py http://127.0.0.1:8080/index.html 3000 4
nginx -s reload
sleep 1
python3 /opt/corpus/httpload.py http://127.0.0.1:8080/missing 1000 2
for i in $(seq 20); do curl -fsS -o /dev/null http://127.0.0.1:8080/; done
sleep 3
nginx -s quit
sleep 1
"""

PYAPP = r"""
mkdir -p /srv/app && cp /opt/corpus/app.py /srv/app/app.py
python3 -m venv /srv/app/venv
/srv/app/venv/bin/pip install --quiet --no-index --find-links /opt/wheelhouse flask gunicorn
cd /srv/app
venv/bin/gunicorn --workers 2 --bind 127.0.0.1:8000 --pid /tmp/gunicorn.pid --daemon app:app
python3 /opt/corpus/httpload.py http://127.0.0.1:8000/ 2000 4
kill -HUP "$(cat /tmp/gunicorn.pid)"   # graceful reload: new workers
sleep 2
python3 /opt/corpus/httpload.py http://127.0.0.1:8000/ 1000 4
kill -TERM "$(cat /tmp/gunicorn.pid)"
sleep 2
"""

APT_DPKG = r"""
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -q /opt/corpus/memtrail-corpus-hello_1.0_all.deb
memtrail-corpus-hello
dpkg -i /opt/corpus/memtrail-corpus-hello_1.0_all.deb
dpkg -s memtrail-corpus-hello | head -3
dpkg -L memtrail-corpus-hello
apt-get remove -y -q memtrail-corpus-hello
dpkg --purge memtrail-corpus-hello
"""

CRON = r"""
cron
for i in $(seq 75); do [ -s /tmp/cron-ran ] && break; sleep 1; done
cat /tmp/cron-ran
kill "$(cat /run/crond.pid)" 2>/dev/null || true
"""

TOKEN = r"""
python3 - <<'EOF'
# A controller-like loop: re-read the mounted service-account token, call the "API server".
import http.server, threading, time, urllib.request
SA = "/var/run/secrets/kubernetes.io/serviceaccount"
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        ok = self.headers.get("Authorization", "").startswith("Bearer ")
        self.send_response(200 if ok else 401); self.end_headers(); self.wfile.write(b'{"items":[]}')
    def log_message(self, *a): pass
srv = http.server.ThreadingHTTPServer(("127.0.0.1", 6443), H)
threading.Thread(target=srv.serve_forever, daemon=True).start()
n = 0
for i in range(40):
    token = open(f"{SA}/token").read().strip()
    ns = open(f"{SA}/namespace").read().strip()
    req = urllib.request.Request(f"http://127.0.0.1:6443/api/v1/namespaces/{ns}/pods?watch=0",
                                 headers={"Authorization": f"Bearer {token}"})
    n += urllib.request.urlopen(req).status == 200
    time.sleep(0.25)
print("controller list calls ok:", n)
srv.shutdown()
EOF
"""

POSTGRES = r"""
PG=/usr/lib/postgresql/15/bin
export PGDATA=/var/lib/postgresql/data PGHOST=/tmp
# docker-entrypoint.sh style: create and chown the data dir, initdb as the postgres user
mkdir -p "$PGDATA" /var/lib/postgresql/archive && chown -R postgres:postgres /var/lib/postgresql
chmod 700 "$PGDATA"
runuser -u postgres -- $PG/initdb -D "$PGDATA" --auth=trust --username=postgres >/dev/null
cat >> "$PGDATA/postgresql.conf" <<'EOF'
listen_addresses = '127.0.0.1'
unix_socket_directories = '/tmp'
wal_level = replica
archive_mode = on
archive_command = 'test ! -f /var/lib/postgresql/archive/%f && cp %p /var/lib/postgresql/archive/%f'
EOF
runuser -u postgres -- $PG/pg_ctl -D "$PGDATA" -w -l /tmp/pg.log start
runuser -u postgres -- psql -q -c "create database bench"
runuser -u postgres -- $PG/pgbench -q -i -s 2 bench
runuser -u postgres -- $PG/pgbench -c 4 -j 2 -T 10 bench | tail -3
runuser -u postgres -- pg_dump bench > /tmp/bench.sql
runuser -u postgres -- psql -q -c "select pg_switch_wal()" >/dev/null
runuser -u postgres -- psql -q -c "checkpoint"
sleep 2
ls /var/lib/postgresql/archive | head -3
runuser -u postgres -- $PG/pg_ctl -D "$PGDATA" -w stop
"""

REDIS = r"""
redis-server --daemonize yes --port 6379 --bind 127.0.0.1 --save 60 1 --dir /tmp
for i in $(seq 50); do redis-cli ping >/dev/null 2>&1 && break; sleep 0.2; done
redis-benchmark -q -n 20000 -c 10 -t set,get,lpush,lpop,incr
redis-cli bgsave; sleep 1
redis-cli info persistence | grep rdb_last_bgsave_status
redis-cli shutdown
"""

NODE = r"""
cd /opt/corpus && node server.js
"""

JVM = r"""
java -XX:+UseSerialGC -Xmx128m -cp /opt/corpus/java App
"""

HAPROXY = r"""
# supervisord (as in many multi-process images) runs two Python backends and HAProxy with
# active health checks; load through the proxy, a config check, a graceful restart.
mkdir -p /srv/b1 /srv/b2 /var/log/supervisor /run/haproxy
echo one > /srv/b1/index.html; echo two > /srv/b2/index.html
cat > /etc/haproxy/haproxy.cfg <<'EOF'
global
    maxconn 256
defaults
    mode http
    timeout connect 2s
    timeout client 10s
    timeout server 10s
frontend web
    bind 127.0.0.1:8088
    default_backend apps
backend apps
    balance roundrobin
    option httpchk GET /index.html
    server b1 127.0.0.1:9001 check inter 500ms
    server b2 127.0.0.1:9002 check inter 500ms
EOF
haproxy -c -f /etc/haproxy/haproxy.cfg
cat > /etc/supervisor/conf.d/corpus.conf <<'EOF'
[program:b1]
command=python3 -m http.server 9001 --bind 127.0.0.1 --directory /srv/b1
[program:b2]
command=python3 -m http.server 9002 --bind 127.0.0.1 --directory /srv/b2
[program:haproxy]
command=haproxy -W -db -f /etc/haproxy/haproxy.cfg
EOF
supervisord -c /etc/supervisor/supervisord.conf
sleep 3
supervisorctl status
python3 /opt/corpus/httpload.py http://127.0.0.1:8088/index.html 2000 4
supervisorctl restart haproxy
sleep 1
python3 /opt/corpus/httpload.py http://127.0.0.1:8088/index.html 500 2
supervisorctl shutdown
sleep 1
"""

LOGROTATE = r"""
# an app logging to /var/log/app, rotated with compression and a postrotate HUP (the daily
# cron.daily/logrotate job, forced)
mkdir -p /var/log/app
python3 - <<'EOF' &
import signal, time
f = open("/var/log/app/app.log", "a")
def reopen(*_):
    global f
    f.close(); f = open("/var/log/app/app.log", "a")
signal.signal(signal.SIGHUP, reopen)
open("/run/app.pid", "w").write(str(__import__("os").getpid()))
for i in range(400):
    f.write(f"line {i} " + "x" * 200 + "\n"); f.flush(); time.sleep(0.02)
EOF
sleep 1
for i in 1 2 3; do logrotate -f /etc/logrotate.conf; sleep 2; done
wait
ls -l /var/log/app
"""

POSTGRES_HOST = r"""
# a developer's or CI's throwaway cluster on the host, as the postgres account
PG=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
D="$WORK/pg" && mkdir -p "$D/archive" && chown -R postgres:postgres "$D" && chmod 755 "$WORK"
P=$((20000 + RANDOM % 20000))
runuser -u postgres -- $PG/initdb -D "$D/data" --auth=trust --username=postgres >/dev/null
cat >> "$D/data/postgresql.conf" <<EOF
listen_addresses = ''
port = $P
unix_socket_directories = '$D'
archive_mode = on
archive_command = 'test ! -f $D/archive/%f && cp %p $D/archive/%f'
EOF
runuser -u postgres -- $PG/pg_ctl -D "$D/data" -w -l "$D/log" start >/dev/null
runuser -u postgres -- psql -h "$D" -p $P -q -c "create table t as select generate_series(1, 100000) x"
runuser -u postgres -- psql -h "$D" -p $P -q -c "select pg_switch_wal()" >/dev/null
runuser -u postgres -- psql -h "$D" -p $P -q -c "checkpoint"
sleep 2
ls "$D/archive" | head -2
runuser -u postgres -- $PG/pg_ctl -D "$D/data" -w stop >/dev/null
"""

CI_BUILD = r"""
cd "$WORK"
mkdir upstream && cd upstream
git init -q
cat > hello.c <<'EOF'
#include <stdio.h>
#include "hello.h"
int greet(char *buf, int n) { return snprintf(buf, n, "hello %d", 42); }
EOF
echo 'int greet(char *buf, int n);' > hello.h
cat > main.c <<'EOF'
#include <stdio.h>
#include "hello.h"
int main(void) { char b[32]; greet(b, sizeof b); puts(b); return 0; }
EOF
cat > test_hello.c <<'EOF'
#include <string.h>
#include "hello.h"
int main(void) { char b[32]; greet(b, sizeof b); return strcmp(b, "hello 42") != 0; }
EOF
cat > configure <<'EOF'
#!/bin/sh
# a hand-written configure: probe the compiler by compiling and running a test program
CC=${CC:-cc}
printf 'int main(void){return 0;}\n' > conftest.c
$CC conftest.c -o conftest && ./conftest || { echo "no working C compiler"; exit 1; }
rm -f conftest conftest.c
printf 'CC=%s\nCFLAGS=-O2 -Wall -fPIC\n' "$CC" > config.mk
echo "configured with $CC"
EOF
chmod +x configure
cat > Makefile <<'EOF'
include config.mk
all: hello libhello.so test_hello
libhello.so: hello.c ; $(CC) $(CFLAGS) -shared -o $@ $<
hello: main.c hello.c ; $(CC) $(CFLAGS) -o $@ main.c hello.c
test_hello: test_hello.c hello.c ; $(CC) $(CFLAGS) -o $@ test_hello.c hello.c
check: test_hello ; ./test_hello && echo PASS
.PHONY: all check
EOF
cat > CMakeLists.txt <<'EOF'
cmake_minimum_required(VERSION 3.13)
project(hello C)
enable_testing()
add_library(hello SHARED hello.c)
add_executable(main main.c)
target_link_libraries(main hello)
add_executable(test_hello test_hello.c)
target_link_libraries(test_hello hello)
add_test(NAME greet COMMAND test_hello)
EOF
git add -A && git -c user.name=ci -c user.email=ci@example.invalid commit -qm "initial import"
cd "$WORK"
git clone -q upstream build && cd build
./configure && make -j2 && make check && ./hello
cmake -S . -B _build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build _build -j2 >/dev/null
(cd _build && ctest --output-on-failure)
LD_LIBRARY_PATH="$WORK/build" ./hello
# a test harness compiling a fixture by absolute path, as pytest's tmp_path or CMake do
gcc -O2 -o "$WORK/build/selftest" "$WORK/build/test_hello.c" "$WORK/build/hello.c" && "$WORK/build/selftest"
"""

PIP_VENV = r"""
python3 -m venv "$WORK/venv"
"$WORK/venv/bin/pip" install --quiet --disable-pip-version-check --no-index --find-links "$WHEELHOUSE" flask gunicorn
"$WORK/venv/bin/python" -c 'import flask, gunicorn; print("flask", flask.__version__)'
"$WORK/venv/bin/pip" list --format=freeze | head -5
"$WORK/venv/bin/pip" uninstall --quiet -y flask
"""

DPKG_HOST = (
    r"""
SRC="$DEBSRC" OUT="$WORK/memtrail-corpus-hello_1.0_all.deb" sh -ec '"""
    + assets.BUILD_DEB
    + r"""'
dpkg -i "$WORK/memtrail-corpus-hello_1.0_all.deb"
/usr/bin/memtrail-corpus-hello
dpkg -s memtrail-corpus-hello | head -2
dpkg --purge memtrail-corpus-hello
"""
)

SSH_KEYGEN = r"""
ssh-keygen -q -t ed25519 -N '' -C ci@example.invalid -f "$WORK/id_ed25519"
ssh-keygen -q -t rsa -b 2048 -N '' -f "$WORK/id_rsa"
ssh-keygen -l -f "$WORK/id_ed25519.pub"
ssh-keygen -y -f "$WORK/id_rsa" > /dev/null
mkdir -p "$WORK/root/etc/ssh" && ssh-keygen -A -f "$WORK/root"
ls "$WORK/root/etc/ssh"
"""

CHROMIUM = r"""
cat > "$WORK/page.html" <<'EOF'
<!doctype html><title>corpus</title><canvas id=c></canvas>
<script>
let s = 0; for (let i = 0; i < 3e6; i++) s += Math.sqrt(i);   // JIT
const w = new Worker(URL.createObjectURL(new Blob(["postMessage(1+1)"])));
w.onmessage = (e) => { document.title = "done " + e.data + " " + Math.round(s); };
</script>
EOF
FLAGS="--headless --disable-gpu --disable-background-networking --disable-component-update --disable-sync --no-first-run --virtual-time-budget=3000"
# as root the sandbox cannot start ("Running as root without --no-sandbox is not supported")
chromium $FLAGS --no-sandbox --user-data-dir="$WORK/profile-root" --dump-dom "file://$WORK/page.html" > "$WORK/dom-root.html" 2>/dev/null
grep -c canvas "$WORK/dom-root.html"
# as an ordinary user WITH its sandbox (namespaces, seccomp, the zygote)
U="$WORK/profile-user"
mkdir -p "$U" && chown nobody "$U" && chmod 755 "$WORK"
runuser -u nobody -- env HOME="$U" XDG_CONFIG_HOME="$U" XDG_CACHE_HOME="$U" \
  chromium $FLAGS --user-data-dir="$U" --dump-dom "file://$WORK/page.html" > "$WORK/dom-user.html" 2>"$WORK/chromium-user.err"
grep -c canvas "$WORK/dom-user.html"
"""

STRACE_GDB = r"""
cd "$WORK"
cat > prog.c <<'EOF'
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
int compute(int n) { int s = 0; for (int i = 0; i < n; i++) s += i; return s; }
int main(int argc, char **argv) {
  int secs = argc > 1 ? atoi(argv[1]) : 0;
  printf("%d\n", compute(1000));
  if (secs) sleep(secs);
  return 0;
}
EOF
cc -g -O0 -o prog prog.c
strace -f -o "$WORK/strace.out" ./prog
strace -c -o /dev/null ls /usr > /dev/null
gdb -q -batch -ex 'break compute' -ex run -ex bt -ex continue ./prog
./prog 30 & P=$!
sleep 0.5
gdb -q -batch -p $P -ex bt -ex detach 2>/dev/null | grep -E "^#" | head -3
strace -p $P -o /dev/null & S=$!; sleep 1; kill $S; wait $S 2>/dev/null || true
kill $P; wait $P 2>/dev/null || true
"""

PROMETHEUS = r"""
cd "$WORK"
cat > exporters.py <<'EOF'
# 40 tiny /metrics endpoints on loopback (node-exporter-like), in one process.
import http.server, socketserver, sys, threading, time
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = f"up 1\nreq_total {time.time()}\n".encode()
        self.send_response(200); self.send_header("Content-Type", "text/plain"); self.end_headers(); self.wfile.write(body)
    def log_message(self, *a): pass
for port in range(19100, 19140):
    s = socketserver.ThreadingTCPServer(("127.0.0.1", port), H); s.daemon_threads = True
    threading.Thread(target=s.serve_forever, daemon=True).start()
time.sleep(float(sys.argv[1]))
EOF
python3 exporters.py 30 & E=$!
{ echo "global: {scrape_interval: 1s, scrape_timeout: 900ms}"; echo "scrape_configs:"; echo "- job_name: corpus"; echo "  static_configs:"; echo "  - targets:"
  for p in $(seq 19100 19139); do echo "    - 127.0.0.1:$p"; done; } > prom.yml
prometheus --config.file=prom.yml --storage.tsdb.path="$WORK/tsdb" --web.listen-address=127.0.0.1:19090 --log.level=warn & P=$!
sleep 20
curl -fsS 'http://127.0.0.1:19090/api/v1/query?query=count(up==1)' ; echo
kill $P; wait $P 2>/dev/null || true
kill $E; wait $E 2>/dev/null || true
"""

WORKLOADS: tuple[Workload, ...] = (
    Workload(
        "nginx",
        "entrypoint (envsubst, sed -i, chown), nginx, 4000 requests, reload, quit; podman healthcheck loop",
        NGINX,
        image="web",
        health_cmd="curl -fsS -o /dev/null http://127.0.0.1:8080/",
        ci=True,
    ),
    Workload(
        "python-app",
        "venv + pip from a local wheelhouse, flask under gunicorn (2 workers), 3000 requests, HUP reload",
        PYAPP,
        image="web",
        ci=True,
    ),
    Workload(
        "apt-dpkg",
        "apt-get install / dpkg -i / remove / purge of a local .deb inside a container",
        APT_DPKG,
        image="web",
    ),
    Workload(
        "apt-dpkg-userns",
        "the apt-dpkg steps in a user-namespaced (rootless-style) container: root is host uid 200000",
        APT_DPKG,
        image="web",
        run_opts=("--uidmap", "0:200000:65536", "--gidmap", "0:200000:65536"),
        ci=True,
    ),
    Workload("cron", "cron daemon running a /etc/cron.d job once", CRON, image="web", timeout=150),
    Workload(
        "sa-token",
        "controller-like loop re-reading a mounted service-account token and calling a local API",
        TOKEN,
        image="web",
        run_opts=("--volume", "{sa_dir}:/var/run/secrets/kubernetes.io/serviceaccount:ro"),
    ),
    Workload(
        "postgres",
        "entrypoint-style initdb, archive_command, pgbench -i + 10 s run, pg_dump, WAL switch",
        POSTGRES,
        image="data",
    ),
    Workload("redis", "redis-server, redis-benchmark (20k requests x 5 tests), BGSAVE", REDIS, image="data"),
    Workload(
        "haproxy",
        "supervisord running two Python backends and HAProxy with health checks, 2500 requests, restart",
        HAPROXY,
        image="ops",
    ),
    Workload(
        "logrotate",
        "logrotate -f x3 with compress and a postrotate HUP of a logging app",
        LOGROTATE,
        image="ops",
    ),
    Workload("node", "a Node HTTP server and 2000 keep-alive requests to itself", NODE, image="apps"),
    Workload("jvm", "a JIT-hot loop then an HTTP server + 1000 java.net.http requests", JVM, image="apps"),
    Workload(
        "ci-build",
        "git init/commit/clone, ./configure (runs a probe from /tmp), make, make check, cmake + ctest",
        CI_BUILD,
    ),
    Workload(
        "postgres-host",
        "initdb, pg_ctl start with an archive_command, a table, WAL switch, stop: as postgres on the host",
        POSTGRES_HOST,
    ),
    Workload(
        "pip-venv", "python3 -m venv, pip install from a local wheelhouse, uninstall", PIP_VENV, ci=True
    ),
    Workload("dpkg-host", "dpkg-deb --build, dpkg -i, run, dpkg --purge of a local package", DPKG_HOST),
    Workload(
        "ssh-keygen", "ed25519 + rsa user keys, fingerprints, ssh-keygen -A host keys", SSH_KEYGEN, ci=True
    ),
    Workload(
        "chromium",
        "headless Chromium on a local page: as root with --no-sandbox, as nobody with its sandbox",
        CHROMIUM,
    ),
    Workload(
        "strace-gdb",
        "a developer's strace -f, strace -p, gdb run and gdb -p on their own program",
        STRACE_GDB,
    ),
    Workload("prometheus", "Prometheus scraping 40 local /metrics ports every second for 20 s", PROMETHEUS),
)


def by_name() -> dict[str, Workload]:
    return {w.name: w for w in WORKLOADS}

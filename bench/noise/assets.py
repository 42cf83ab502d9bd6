"""Files the corpus images and host workloads use: a load client, small apps, a local .deb, a wheelhouse.

Built on the host once and cached (the wheelhouse from PyPI with ``pip download``; the
Java classes with the host's ``javac``), so an image recipe's hash only changes when
these sources do.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

from bench.noise.images import CACHE

WHEEL_REQUIREMENTS = ("flask==3.0.3", "gunicorn==22.0.0")

HTTPLOAD = r'''
"""Keep-alive HTTP load: URL, request count, connections (a wrk-like client)."""
import http.client, sys, threading, urllib.parse, time
url, total = sys.argv[1], int(sys.argv[2])
conns = int(sys.argv[3]) if len(sys.argv) > 3 else 4
u = urllib.parse.urlsplit(url)
for _ in range(100):  # wait for the server
    try:
        c = http.client.HTTPConnection(u.hostname, u.port or 80, timeout=5); c.request("GET", "/"); c.getresponse().read(); break
    except OSError:
        time.sleep(0.2)
done, errors = [0], [0]
lock = threading.Lock()
def worker(n):
    c = http.client.HTTPConnection(u.hostname, u.port or 80, timeout=10)
    for i in range(n):
        try:
            c.request("GET", u.path or "/"); r = c.getresponse(); r.read()
        except OSError:
            errors[0] += 1; c = http.client.HTTPConnection(u.hostname, u.port or 80, timeout=10); continue
        with lock: done[0] += 1
ts = [threading.Thread(target=worker, args=(total // conns,)) for _ in range(conns)]
t0 = time.time(); [t.start() for t in ts]; [t.join() for t in ts]
print(f"httpload {url}: {done[0]} ok, {errors[0]} errors in {time.time() - t0:.1f}s")
sys.exit(1 if done[0] < total // 2 else 0)
'''

WSGI_APP = r"""
from flask import Flask, jsonify
app = Flask(__name__)
@app.get("/")
def index():
    return jsonify(ok=True, items=[i * i for i in range(50)])
"""

NODE_APP = r"""
const http = require("http");
const server = http.createServer((req, res) => {
  res.setHeader("content-type", "application/json");
  res.end(JSON.stringify({ path: req.url, t: Date.now() }));
});
server.listen(3000, "127.0.0.1", async () => {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });
  let ok = 0;
  const one = () => new Promise((resolve) => {
    http.get({ host: "127.0.0.1", port: 3000, path: "/api/" + ok, agent }, (r) => {
      r.resume(); r.on("end", () => { ok++; resolve(); });
    }).on("error", resolve);
  });
  for (let i = 0; i < 500; i++) await Promise.all([one(), one(), one(), one()]);
  console.log("node requests ok:", ok);
  agent.destroy(); server.close();
});
"""

JAVA_APP = r"""
import com.sun.net.httpserver.HttpServer;
import java.net.InetSocketAddress;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;

public class App {
    static long work(int n) { long s = 0; for (int i = 0; i < n; i++) { s += (long) i * i % 7; } return s; }
    public static void main(String[] args) throws Exception {
        long s = 0;
        for (int r = 0; r < 2000; r++) s += work(20000);  // hot loop: C1 then C2 JIT
        HttpServer server = HttpServer.create(new InetSocketAddress("127.0.0.1", 8081), 0);
        server.createContext("/", ex -> { byte[] b = "ok".getBytes(); ex.sendResponseHeaders(200, b.length); ex.getResponseBody().write(b); ex.close(); });
        server.start();
        HttpClient client = HttpClient.newHttpClient();
        int ok = 0;
        for (int i = 0; i < 1000; i++) {
            HttpResponse<String> resp = client.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:8081/x" + i)).build(), HttpResponse.BodyHandlers.ofString());
            if (resp.statusCode() == 200) ok++;
        }
        server.stop(0);
        System.out.println("java sum=" + s + " requests ok=" + ok);
    }
}
"""

DEB_CONTROL = """Package: memtrail-corpus-hello
Version: 1.0
Architecture: all
Maintainer: Memtrail corpus <corpus@example.invalid>
Description: a tiny local package for the benign corpus
"""

DEB_POSTINST = """#!/bin/sh
set -e
if [ "$1" = configure ]; then
  mkdir -p /var/lib/memtrail-corpus-hello
  chmod 0755 /usr/bin/memtrail-corpus-hello
fi
"""

DEB_BIN = """#!/bin/sh
echo "hello from a local package"
"""

# Shell that builds the local .deb from the files above: used in images and on the host.
BUILD_DEB = """
d=$(mktemp -d)
mkdir -p "$d/DEBIAN" "$d/usr/bin"
cp "$SRC/control" "$d/DEBIAN/control"
install -m 0755 "$SRC/postinst" "$d/DEBIAN/postinst"
install -m 0755 "$SRC/memtrail-corpus-hello" "$d/usr/bin/memtrail-corpus-hello"
dpkg-deb --root-owner-group --build "$d" "$OUT" >/dev/null
rm -rf "$d"
"""


def deb_sources() -> dict[str, bytes]:
    return {
        "control": DEB_CONTROL.encode(),
        "postinst": DEB_POSTINST.encode(),
        "memtrail-corpus-hello": DEB_BIN.encode(),
    }


def _key(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:12]


def wheelhouse() -> Path:
    """flask + gunicorn wheels for CPython 3.11 (bookworm's), downloaded once from PyPI."""
    d = CACHE / f"wheelhouse-{_key(*WHEEL_REQUIREMENTS)}"
    if (d / ".done").exists():
        return d
    d.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [
            sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
            "--only-binary=:all:", "--python-version", "3.11", "--platform", "manylinux2014_x86_64",
            "-d", str(d), *WHEEL_REQUIREMENTS,
        ],
        check=True,
    )  # fmt: skip
    (d / ".done").write_text("ok\n")
    return d


def java_classes() -> dict[str, bytes]:
    """App.class compiled with the host JDK for Java 17 (bookworm's default JRE)."""
    d = CACHE / f"java-{_key(JAVA_APP)}"
    cls = d / "App.class"
    if not cls.exists():
        if shutil.which("javac") is None:
            raise RuntimeError("javac not found: install openjdk-17-jdk-headless (scripts/bootstrap.sh test)")
        d.mkdir(parents=True, exist_ok=True)
        (d / "App.java").write_text(JAVA_APP)
        subprocess.run(["javac", "--release", "17", "-d", str(d), str(d / "App.java")], check=True)
    return {p.name: p.read_bytes() for p in sorted(d.glob("*.class"))}

"""A real TLS endpoint in front of the local broker: Debian's stunnel4 terminating (m)TLS.

Tansu speaks plaintext only here, so the broker advertises stunnel's port and every client
must come through TLS. The certificates are made for the test (a CA, a server certificate for
127.0.0.1 and a client certificate for mutual TLS).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from memtrail.core.broker import LocalBroker, free_port, wait_for_port
from memtrail.core.children import stop_process


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    path.chmod(0o600)


@dataclass
class Pki:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def make_pki(d: Path) -> Pki:
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name("memtrail test CA"))
        .issuer_name(_name("memtrail test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )
        .sign(ca_key, hashes.SHA256())
    )

    def leaf(cn: str, server: bool) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
        key = ec.generate_private_key(ec.SECP256R1())
        b = (
            x509.CertificateBuilder()
            .subject_name(_name(cn))
            .issuer_name(ca.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
        )
        if server:
            b = b.add_extension(
                x509.SubjectAlternativeName(
                    [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
                ),
                critical=False,
            )
        return b.sign(ca_key, hashes.SHA256()), key

    pki = Pki(d / "ca.crt", d / "server.crt", d / "server.key", d / "client.crt", d / "client.key")
    pki.ca.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    for (cert, key), (cpath, kpath) in (
        (leaf("127.0.0.1", True), (pki.server_cert, pki.server_key)),
        (leaf("memtrail-client", False), (pki.client_cert, pki.client_key)),
    ):
        cpath.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        _write_key(key, kpath)
    return pki


class TlsBroker:
    """Tansu on a private port, stunnel4 on the advertised one requiring a client certificate."""

    def __init__(self, workdir: Path) -> None:
        if shutil.which("stunnel4") is None:
            raise RuntimeError("stunnel4 is not installed (scripts/bootstrap.sh installs it for tests)")
        self.pki = make_pki(workdir)
        self.tls_port = free_port()
        self.broker = LocalBroker(log_path=workdir / "tansu.log", advertised_port=self.tls_port)
        self.conf = workdir / "stunnel.conf"
        self.workdir = workdir
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.tls_port}"

    def start(self) -> TlsBroker:
        self.broker.start()
        self.conf.write_text(
            "foreground = yes\n"
            "pid =\n"
            f"output = {self.workdir / 'stunnel.log'}\n"
            "[kafka]\n"
            f"accept = 127.0.0.1:{self.tls_port}\n"
            f"connect = 127.0.0.1:{self.broker.port}\n"
            f"cert = {self.pki.server_cert}\n"
            f"key = {self.pki.server_key}\n"
            f"CAfile = {self.pki.ca}\n"
            "verifyChain = yes\n"
            "requireCert = yes\n"
        )
        self._proc = subprocess.Popen(["stunnel4", str(self.conf)], stdout=subprocess.DEVNULL)
        if not wait_for_port("127.0.0.1", self.tls_port, 10):
            self.stop()
            raise RuntimeError("stunnel4 did not listen")
        return self

    def env(self, *, client_cert: bool = True) -> dict[str, str]:
        """MEMTRAIL_KAFKA__* for a client of this endpoint (mutual TLS unless told otherwise)."""
        out = {
            "MEMTRAIL_KAFKA__BOOTSTRAP": self.bootstrap,
            "MEMTRAIL_KAFKA__SECURITY__PROTOCOL": "SSL",
            "MEMTRAIL_KAFKA__SECURITY__CA_FILE": str(self.pki.ca),
        }
        if client_cert:
            out["MEMTRAIL_KAFKA__SECURITY__CERT_FILE"] = str(self.pki.client_cert)
            out["MEMTRAIL_KAFKA__SECURITY__KEY_FILE"] = str(self.pki.client_key)
        return out

    def stop(self) -> None:
        if self._proc is not None:
            stop_process(self._proc, 5)
            self._proc = None
        self.broker.stop()

"""Certificates for TLS tests, made at test time with the `openssl` command line.

A managed PostgreSQL speaks TLS with a certificate of its provider's CA, which the
client verifies (`sslmode=verify-full&sslrootcert=...`). The tests make such a CA,
a server certificate it signs for 127.0.0.1 and localhost, and a second, unrelated
CA that must not be trusted. `openssl` ships with Debian; the `cryptography`
package is not a dependency of the project, so it is not used here.
"""

import ipaddress
import secrets
import subprocess
from dataclasses import dataclass
from pathlib import Path

CURVE = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"]  # fast to generate
DAYS = "2"

_CA_CONFIG = """\
[req]
distinguished_name = dn
prompt = no
x509_extensions = ext
[dn]
CN = {name}
[ext]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
"""

_SERVER_CONFIG = """\
[req]
distinguished_name = dn
prompt = no
[dn]
CN = {name}
[ext]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = {alt_names}
authorityKeyIdentifier = keyid
"""


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True, text=True, timeout=60)


@dataclass(frozen=True, slots=True)
class ServerCertificate:
    cert: Path
    key: Path


@dataclass(frozen=True, slots=True)
class CertificateAuthority:
    cert: Path
    key: Path

    def issue_server_certificate(
        self, directory: Path, *, hosts: tuple[str, ...] = ("localhost", "127.0.0.1")
    ) -> ServerCertificate:
        """A server certificate for `hosts` (DNS names and IP addresses), signed here."""
        directory.mkdir(parents=True, exist_ok=True)
        config = directory / "server.cnf"
        alt_names = ",".join(_alt_name(host) for host in hosts)
        config.write_text(_SERVER_CONFIG.format(name=hosts[0], alt_names=alt_names))
        key, request, cert = (directory / f"server.{ext}" for ext in ("key", "csr", "crt"))
        _openssl(
            "req", "-new", "-config", str(config), *CURVE, "-nodes",
            "-keyout", str(key), "-out", str(request),
        )  # fmt: skip
        _openssl(
            "x509", "-req", "-in", str(request), "-CA", str(self.cert), "-CAkey", str(self.key),
            "-set_serial", str(secrets.randbits(63)), "-days", DAYS,
            "-extfile", str(config), "-extensions", "ext", "-out", str(cert),
        )  # fmt: skip
        return ServerCertificate(cert, key)


def _alt_name(host: str) -> str:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return f"DNS:{host}"
    return f"IP:{host}"


def make_ca(directory: Path, name: str = "snapshotter test CA") -> CertificateAuthority:
    """A self-signed CA whose certificate is the `sslrootcert` a client trusts."""
    directory.mkdir(parents=True, exist_ok=True)
    config = directory / "ca.cnf"
    config.write_text(_CA_CONFIG.format(name=name))
    key, cert = directory / "ca.key", directory / "ca.crt"
    _openssl(
        "req", "-x509", "-config", str(config), *CURVE, "-nodes",
        "-keyout", str(key), "-out", str(cert), "-days", DAYS,
    )  # fmt: skip
    return CertificateAuthority(cert, key)

"""Start a real Debian ``docker-registry`` (distribution 2.8) for integration tests.

``start_registry(tmp_path)`` listens on 127.0.0.1:<free port> with filesystem storage in
``tmp_path`` and deletes enabled; ``htpasswd=(user, password)`` adds basic auth (bcrypt via
``htpasswd -Bbn``), ``tls=True`` serves HTTPS with a throwaway CA (``ca_file`` to trust).
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import shutil
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

REGISTRY_BIN = "/usr/bin/docker-registry"


@dataclass
class RunningRegistry:
    url: str  # host:port
    log_path: Path
    ca_file: str | None
    process: subprocess.Popen[bytes] = field(repr=False)

    @property
    def host(self) -> str:
        return self.url

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""


def registry_available() -> bool:
    return Path(REGISTRY_BIN).is_file()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_tls(directory: Path, host: str = "127.0.0.1") -> tuple[Path, Path, Path]:
    """Self-signed CA plus a server certificate for ``host``: (ca.pem, cert.pem, key.pem)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "xarch test CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    san: list[x509.GeneralName] = [x509.DNSName("localhost")]
    try:
        san.append(x509.IPAddress(ipaddress.ip_address(host)))
    except ValueError:
        san.append(x509.DNSName(host))
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(san), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    ca_path, cert_path, key_path = (
        directory / "ca.pem",
        directory / "cert.pem",
        directory / "key.pem",
    )
    ca_path.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_path.chmod(0o600)
    return ca_path, cert_path, key_path


def make_htpasswd(path: Path, user: str, password: str) -> None:
    """bcrypt htpasswd entry (distribution only accepts bcrypt)."""
    exe = shutil.which("htpasswd")
    if exe is None:
        raise RuntimeError("htpasswd (apache2-utils) is required for registry basic auth tests")
    out = subprocess.run([exe, "-Bbn", user, password], check=True, capture_output=True).stdout
    path.write_bytes(out.strip() + b"\n")


def start_registry(
    tmp_path: Path,
    *,
    htpasswd: tuple[str, str] | None = None,
    tls: bool = False,
    timeout: float = 20.0,
) -> RunningRegistry:
    if not registry_available():
        raise RuntimeError(f"{REGISTRY_BIN} not found (apt-get install docker-registry)")
    root = tmp_path / "registry"
    (root / "data").mkdir(parents=True, exist_ok=True)
    port = free_port()
    addr = f"127.0.0.1:{port}"
    lines = [
        "version: 0.1",
        "log:",
        "  level: info",
        "  accesslog:",
        "    disabled: false",
        "storage:",
        "  filesystem:",
        f"    rootdirectory: {root / 'data'}",
        "  delete:",
        "    enabled: true",
        "  maintenance:",
        "    uploadpurging:",
        "      enabled: false",
        "http:",
        f"  addr: {addr}",
        "  secret: xarch-test-secret",
        "health:",
        "  storagedriver:",
        "    enabled: false",
    ]
    ca_file: str | None = None
    if tls:
        ca, cert, key = make_tls(root / "tls")
        ca_file = str(ca)
        lines[
            lines.index("  secret: xarch-test-secret") + 1 : lines.index(
                "  secret: xarch-test-secret"
            )
            + 1
        ] = [
            "  tls:",
            f"    certificate: {cert}",
            f"    key: {key}",
        ]
    if htpasswd is not None:
        htfile = root / "htpasswd"
        make_htpasswd(htfile, *htpasswd)
        lines += ["auth:", "  htpasswd:", "    realm: xarch-test", f"    path: {htfile}"]
    config = root / "config.yml"
    config.write_text("\n".join(lines) + "\n")
    log_path = root / "registry.log"
    log = open(log_path, "wb")  # noqa: SIM115 - handed to the child, closed with it
    proc = subprocess.Popen(
        [REGISTRY_BIN, "serve", str(config)], stdout=log, stderr=subprocess.STDOUT
    )
    log.close()
    running = RunningRegistry(addr, log_path, ca_file, proc)
    scheme = "https" if tls else "http"
    context = ssl.create_default_context(cafile=ca_file) if ca_file else None
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"docker-registry exited with {proc.returncode}:\n{running.log()}")
        try:
            with urllib.request.urlopen(f"{scheme}://{addr}/v2/", timeout=2, context=context):
                break
        except urllib.error.HTTPError as exc:
            if exc.code == 401:
                break
        except (urllib.error.URLError, OSError):
            pass
        if time.monotonic() > deadline:
            running.stop()
            raise RuntimeError(f"docker-registry did not come up on {addr}:\n{running.log()}")
        time.sleep(0.05)
    return running


@contextlib.contextmanager
def registry_running(tmp_path: Path, **kw: object):
    reg = start_registry(tmp_path, **kw)  # type: ignore[arg-type]
    try:
        yield reg
    finally:
        reg.stop()

"""The sandbox's certificate authority: real X.509 certificates for the names ACM issued in moto.

moto's ACM issues certificates that exist only as records (names, status, NotAfter). The sandbox mirrors
each one as a real certificate for the same names and expiry, signed by a local CA made once per state
directory (`.golive/sandbox/ca/`), so its "ALB" and "CloudFront" listeners present it over real TLS and
every probe verifies the chain against that CA and the names through SNI. Nothing outside the sandbox
trusts this CA: clients are given it explicitly (probes.Endpoint.ca_file), never the system store.
"""

from __future__ import annotations

import datetime
import fcntl
import ipaddress
import ssl
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from golive.sandbox.services import state_dir

CA_NAME = "golive sandbox CA"
LEAF_ORGANISATION = "golive sandbox (mirror of ACM)"


def ca_dir() -> Path:
    return state_dir() / "ca"


def ca_file() -> Path:
    """The CA certificate (PEM) a client trusts to talk to the sandbox's listeners."""
    return _authority()[2]


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def _pem_key(key) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


def _authority() -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate, Path]:
    """The CA's key and certificate, made on first use (under a file lock: several listeners start at once)."""
    directory = ca_dir()
    directory.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = directory / "ca.pem", directory / "ca.key"
    with open(directory / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not cert_path.exists():
            key = ec.generate_private_key(ec.SECP256R1())
            name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, CA_NAME)])
            certificate = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                           .serial_number(x509.random_serial_number())
                           .not_valid_before(_now() - datetime.timedelta(days=1))
                           .not_valid_after(_now() + datetime.timedelta(days=3650))
                           .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                           .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                                        content_commitment=False, key_encipherment=False,
                                                        data_encipherment=False, key_agreement=False,
                                                        encipher_only=False, decipher_only=False), critical=True)
                           .sign(key, hashes.SHA256()))
            key_path.write_bytes(_pem_key(key))
            key_path.chmod(0o600)
            cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    return key, x509.load_pem_x509_certificate(cert_path.read_bytes()), cert_path


def issue(names: list[str], *, not_after: datetime.datetime | None = None,
          not_before: datetime.datetime | None = None) -> tuple[bytes, bytes]:
    """A leaf certificate and its key (PEM) for these DNS names (or IP addresses), signed by the CA.
    not_after defaults to a year; tests pass a date in the past to make an expired certificate."""
    ca_key, ca_certificate, _ = _authority()
    key = ec.generate_private_key(ec.SECP256R1())
    alternatives = []
    for name in names:
        try:
            alternatives.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            alternatives.append(x509.DNSName(name))
    not_after = not_after or _now() + datetime.timedelta(days=365)
    not_before = not_before or min(_now(), not_after) - datetime.timedelta(days=1)
    certificate = (x509.CertificateBuilder()
                   .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0]),
                                            x509.NameAttribute(NameOID.ORGANIZATION_NAME, LEAF_ORGANISATION)]))
                   .issuer_name(ca_certificate.subject).public_key(key.public_key())
                   .serial_number(x509.random_serial_number())
                   .not_valid_before(not_before).not_valid_after(not_after)
                   .add_extension(x509.SubjectAlternativeName(alternatives), critical=False)
                   .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                   .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
                   .sign(ca_key, hashes.SHA256()))
    return certificate.public_bytes(serialization.Encoding.PEM), _pem_key(key)


def server_context(names: list[str], *, not_after: datetime.datetime | None = None) -> ssl.SSLContext:
    """A TLS server context presenting a fresh certificate for these names (TLS 1.2+, as the ALB's policy)."""
    certificate, key = issue(names, not_after=not_after)
    directory = ca_dir() / "leaves"
    directory.mkdir(parents=True, exist_ok=True)
    stem = directory / f"{abs(hash((tuple(names), not_after)))}"
    cert_path, key_path = stem.with_suffix(".pem"), stem.with_suffix(".key")
    cert_path.write_bytes(certificate)
    key_path.write_bytes(key)
    key_path.chmod(0o600)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert_path, key_path)
    return context


def client_context() -> ssl.SSLContext:
    """Verifies the chain against the sandbox's CA only, and the name (SNI) as any TLS client does."""
    return ssl.create_default_context(cafile=str(ca_file()))

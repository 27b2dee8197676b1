"""A certificate authority and a SuperLink certificate, for TLS between SuperNodes and the SuperLink."""

import datetime
import ipaddress
import os
import re
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from fedledger.errors import FedLedgerError

CA_CERTIFICATE = "ca.pem"
CA_KEY = "ca.key"
SUPERLINK_CERTIFICATE = "superlink.pem"
SUPERLINK_KEY = "superlink.key"
MAX_DNS_NAME = 253
MAX_COMMON_NAME = 64
_DNS_LABEL = re.compile(r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?")


@dataclass(frozen=True)
class CertificateFiles:
    """Where the CA and the SuperLink's certificate and key were written."""

    ca_certificate: Path
    ca_key: Path
    superlink_certificate: Path
    superlink_key: Path


def _subject_names(hosts: list[str]) -> list[x509.GeneralName]:
    """Each host as an IP address or a DNS name.

    Raises:
        FedLedgerError: a host is neither (RFC 1123: dot-separated labels of letters, digits and
            inner hyphens, each 1 to 63 characters, at most 253 in all).
    """
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
            continue
        except ValueError:
            pass
        if len(host) > MAX_DNS_NAME or not all(_DNS_LABEL.fullmatch(label) for label in host.split(".")):
            raise FedLedgerError(f"host {host!r} is neither an IP address nor a DNS name")
        names.append(x509.DNSName(host))
    return names


def create_certificates(
    directory: Path, hosts: list[str], days: int = 365, organisation: str = "FedLedger"
) -> CertificateFiles:
    """Create a CA and a SuperLink certificate it signs, valid for ``hosts`` (DNS names or IP addresses).

    SuperNodes and the ``flwr`` CLI trust ``ca.pem``; the SuperLink serves ``superlink.pem`` with
    ``superlink.key``. Keep ``ca.key`` offline: it can sign certificates every participant trusts.

    Raises:
        FedLedgerError: no host was given, a host is not a DNS name or IP address, ``days`` is not
            positive, or a file already exists (nothing is overwritten).
    """
    if not hosts:
        raise FedLedgerError("name at least one host (DNS name or IP address) the SuperLink is reached at")
    subject_names = _subject_names(hosts)
    if len(hosts[0]) > MAX_COMMON_NAME:
        raise FedLedgerError(
            f"the first host names the certificate and can have at most {MAX_COMMON_NAME} characters: {hosts[0]!r}"
        )
    if days < 1:
        raise FedLedgerError(f"certificates must be valid for at least 1 day, not {days}")
    files = CertificateFiles(
        directory / CA_CERTIFICATE, directory / CA_KEY, directory / SUPERLINK_CERTIFICATE, directory / SUPERLINK_KEY
    )
    existing = [str(path) for path in vars(files).values() if path.exists()]
    if existing:
        raise FedLedgerError(f"refusing to overwrite: {', '.join(existing)}")
    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    validity = datetime.timedelta(days=days)

    ca_key = ec.generate_private_key(ec.SECP384R1())
    ca_name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, organisation),
            x509.NameAttribute(NameOID.COMMON_NAME, f"{organisation} federation CA"),
        ]
    )
    ca_certificate = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + validity)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA384())
    )

    superlink_key = ec.generate_private_key(ec.SECP384R1())
    superlink_certificate = (
        x509.CertificateBuilder()
        .subject_name(
            x509.Name(
                [
                    x509.NameAttribute(NameOID.ORGANIZATION_NAME, organisation),
                    x509.NameAttribute(NameOID.COMMON_NAME, hosts[0]),
                ]
            )
        )
        .issuer_name(ca_name)
        .public_key(superlink_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + validity)
        .add_extension(x509.SubjectAlternativeName(subject_names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(True, False, True, False, False, False, False, False, False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA384())
    )

    pem = serialization.Encoding.PEM
    files.ca_certificate.write_bytes(ca_certificate.public_bytes(pem))
    files.superlink_certificate.write_bytes(superlink_certificate.public_bytes(pem))
    for key, path in ((ca_key, files.ca_key), (superlink_key, files.superlink_key)):
        data = key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as handle:
            handle.write(data)
    return files

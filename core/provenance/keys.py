"""The key that signs Content Credentials: made locally on first use, or an organisation's own.

C2PA refuses a self-signed signing certificate, so the first `hygie render` makes a small chain
in the per-user folder (`signing_dir()`, mode 0700):

    ca.pem       "Hygie Avatar local CA (<user>@<host>)": self-signed, CA, keyCertSign, 10 years
    cert.pem     leaf "Hygie Avatar signer (<user>@<host>)" + the CA (the chain C2PA embeds):
                 digitalSignature, extended key usage emailProtection, 2 years
    key.pem      the leaf's P-256 private key (ES256), mode 0600; the CA's key is not kept

An organisation uses its own certificate (issued by a CA that C2PA validators trust) by putting
its chain in `cert.pem` and its key in `key.pem` there, or by pointing HYGIE_SIGN_CERT and
HYGIE_SIGN_KEY at them (HYGIE_SIGN_ALG: es256 default, es384, es512, ps256, ed25519).
Nothing is fetched from the network: no timestamp authority is used.
"""
from __future__ import annotations

import datetime as _dt
import getpass
import logging
import os
import socket
from dataclasses import dataclass
from pathlib import Path

from hygie.core.errors import HygieError

log = logging.getLogger(__name__)

CERT, KEY, CA = "cert.pem", "key.pem", "ca.pem"


def signing_dir() -> Path:
    """Per-user folder of the signing key (HYGIE_SIGNING_DIR overrides it)."""
    env = os.environ.get("HYGIE_SIGNING_DIR")
    if env:
        return Path(env).expanduser()
    from hygie.core.user_dirs import config_dir

    return config_dir() / "signing"


@dataclass
class SigningKey:
    cert_chain: bytes  # PEM, leaf first
    key: bytes  # PEM
    alg: str  # c2pa name: es256, ...
    source: str  # "local" | "organisation"
    folder: Path | None

    @property
    def subject(self) -> str:
        from cryptography import x509

        cert = x509.load_pem_x509_certificates(self.cert_chain)[0]
        return cert.subject.rfc4514_string()


def _who() -> str:
    try:
        user = getpass.getuser()
    except Exception:
        user = "user"
    return f"{user}@{socket.gethostname()}"[:60]


def make_local_chain(folder: Path) -> None:
    """A local CA and a leaf signing certificate (C2PA's requirements for a signer) in `folder`."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    who = _who()
    now = _dt.datetime.now(_dt.timezone.utc) - _dt.timedelta(minutes=5)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"Hygie Avatar local CA ({who})"),
                         x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Hygie Avatar (local)")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now).not_valid_after(now + _dt.timedelta(days=3650))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                       data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                       crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"Hygie Avatar signer ({who})"),
                                     x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Hygie Avatar (local)")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now).not_valid_after(now + _dt.timedelta(days=730))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=False,
                                         crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    folder.mkdir(parents=True, exist_ok=True)
    os.chmod(folder, 0o700)
    key_pem = key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    for name, data, mode in ((KEY, key_pem, 0o600), (CA, ca.public_bytes(pem), 0o644),
                             (CERT, leaf.public_bytes(pem) + ca.public_bytes(pem), 0o644)):
        tmp = folder / f".{name}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, folder / name)
    log.info("made a local signing key for Content Credentials in %s", folder)


def load_signing_key(create: bool = True) -> SigningKey:
    """The organisation's key (HYGIE_SIGN_CERT/KEY), else the per-user one (made here on first use)."""
    alg = os.environ.get("HYGIE_SIGN_ALG", "es256").lower()
    env_cert, env_key = os.environ.get("HYGIE_SIGN_CERT"), os.environ.get("HYGIE_SIGN_KEY")
    if env_cert or env_key:
        if not (env_cert and env_key):
            raise HygieError("set both HYGIE_SIGN_CERT (certificate chain, PEM) and HYGIE_SIGN_KEY (private key, PEM)")
        try:
            return SigningKey(Path(env_cert).read_bytes(), Path(env_key).read_bytes(), alg, "organisation", None)
        except OSError as e:
            raise HygieError(f"cannot read the signing certificate or key ({e}); fix HYGIE_SIGN_CERT/HYGIE_SIGN_KEY") from e
    folder = signing_dir()
    if not (folder / CERT).exists() or not (folder / KEY).exists():
        if not create:
            raise HygieError(f"no signing key in {folder}; 'hygie render' makes one on first use")
        make_local_chain(folder)
    source = "local" if (folder / CA).exists() else "organisation"
    return SigningKey((folder / CERT).read_bytes(), (folder / KEY).read_bytes(), alg, source, folder)


def local_trust_anchors() -> bytes | None:
    """This machine's local CA (PEM), to tell "signed here" from "signed elsewhere" when reading."""
    p = signing_dir() / CA
    try:
        return p.read_bytes()
    except OSError:
        return None

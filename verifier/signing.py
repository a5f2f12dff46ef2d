"""Ed25519 signatures over certificates.

The key is PHG_SIGNING_KEY when set (a path to a PEM private key, or 64 hex digits of a raw
seed); otherwise a key made once for this user, kept in $XDG_CONFIG_HOME/phg/signing-key.pem
(~/.config by default) and readable only by the user.

The signed bytes are the document without its signature in the JSON canonical form of RFC 8785,
so that any conforming implementation reproduces them.  A signature only says who signed; which
signers to believe is verifier.trust's business.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import rfc8785
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

ALGORITHM = "Ed25519"


class SigningKeyError(ValueError):
    pass


def config_dir() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "phg"


def user_key_path() -> Path:
    return config_dir() / "signing-key.pem"


def _from_environment(spec: str) -> Ed25519PrivateKey:
    text = spec.strip()
    if len(text) == 64 and all(c in "0123456789abcdefABCDEF" for c in text):
        return Ed25519PrivateKey.from_private_bytes(bytes.fromhex(text))
    try:
        key = serialization.load_pem_private_key(Path(text).read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise SigningKeyError(f"PHG_SIGNING_KEY is neither 64 hex digits nor a readable PEM key: {exc}") from None
    except UnsupportedAlgorithm:
        raise SigningKeyError(f"PHG_SIGNING_KEY {text}: expected an Ed25519 private key, found a key of an "
                              "algorithm this phg cannot read") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise SigningKeyError("PHG_SIGNING_KEY is not an Ed25519 key")
    return key


def _from_file(path: Path) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise SigningKeyError(f"{path} is not a readable PEM private key: {exc}") from None
    except UnsupportedAlgorithm:
        raise SigningKeyError(f"{path}: expected an Ed25519 private key, found a key of an algorithm this phg "
                              "cannot read") from None
    if isinstance(key, Ed25519PrivateKey):
        return key
    raise SigningKeyError(f"{path} is not an Ed25519 key")


def existing_key() -> Ed25519PrivateKey | None:
    """The user's signing key if there is one; never makes one (verifying must not write)."""
    spec = os.environ.get("PHG_SIGNING_KEY")
    if spec:
        return _from_environment(spec)
    path = user_key_path()
    return _from_file(path) if path.exists() else None


def load_key() -> Ed25519PrivateKey:
    """The user's signing key, made on first use."""
    key = existing_key()
    if key is not None:
        return key
    key = Ed25519PrivateKey.generate()
    path = user_key_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    return key


def canonical(document: dict) -> bytes:
    """The signed bytes: the document without its signature, canonical by RFC 8785."""
    body = {k: v for k, v in document.items() if k != "signature"}
    return rfc8785.dumps(body)


def raw_public(key: Ed25519PrivateKey | Ed25519PublicKey) -> bytes:
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def public_hex(key: Ed25519PrivateKey) -> str:
    return raw_public(key).hex()


def key_id(public: bytes) -> str:
    """A short name of a public key: the first 16 hex digits of the sha256 of its 32 raw bytes."""
    return hashlib.sha256(public).hexdigest()[:16]


def sign(document: dict, key: Ed25519PrivateKey | None = None) -> dict:
    key = key or load_key()
    public = raw_public(key)
    signed = dict(document)
    signed["signature"] = {"algorithm": ALGORITHM, "key_id": key_id(public), "public_key": public.hex(),
                           "value": key.sign(canonical(document)).hex()}
    return signed


@dataclass
class Signature:
    """What a certificate's signature block says, once its value checks against its public key."""
    valid: bool
    public: bytes | None            # the signer's raw public key (None when the block is unusable)
    detail: str


def check_signature(document: dict) -> Signature:
    """Whether the signature matches the document under the public key it names.  That only proves
    the holder of that key signed it; the caller decides whether the key is trusted."""
    sig = document.get("signature")
    if not isinstance(sig, dict) or sig.get("algorithm") != ALGORITHM:
        return Signature(False, None, "no Ed25519 signature")
    try:
        public = bytes.fromhex(sig["public_key"])
        value = bytes.fromhex(sig["value"])
        Ed25519PublicKey.from_public_bytes(public).verify(value, canonical(document))
    except (InvalidSignature, ValueError, KeyError, TypeError, rfc8785.CanonicalizationError):
        return Signature(False, None, "the signature does not match the certificate")
    if sig.get("key_id") != key_id(public):
        return Signature(False, public, f"the key id {sig.get('key_id')!r} is not that of the public key "
                                        f"({key_id(public)})")
    return Signature(True, public, f"signed by key {key_id(public)}")

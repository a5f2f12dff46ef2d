"""Ed25519 signatures over certificates.

The key is PHG_SIGNING_KEY when set (a path to a PEM private key, or 64 hex digits of a raw
seed); otherwise a key made once for this user, kept in $XDG_CONFIG_HOME/phg/signing-key.pem
(~/.config by default) and readable only by the user.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

ALGORITHM = "Ed25519"


class SigningKeyError(ValueError):
    pass


def user_key_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "phg" / "signing-key.pem"


def load_key() -> Ed25519PrivateKey:
    spec = os.environ.get("PHG_SIGNING_KEY")
    if spec:
        text = spec.strip()
        if len(text) == 64 and all(c in "0123456789abcdefABCDEF" for c in text):
            return Ed25519PrivateKey.from_private_bytes(bytes.fromhex(text))
        try:
            key = serialization.load_pem_private_key(Path(text).read_bytes(), password=None)
        except (OSError, ValueError) as exc:
            raise SigningKeyError(f"PHG_SIGNING_KEY is neither 64 hex digits nor a readable PEM key: {exc}") from None
        if not isinstance(key, Ed25519PrivateKey):
            raise SigningKeyError("PHG_SIGNING_KEY is not an Ed25519 key")
        return key
    path = user_key_path()
    if path.exists():
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if isinstance(key, Ed25519PrivateKey):
            return key
        raise SigningKeyError(f"{path} is not an Ed25519 key")
    key = Ed25519PrivateKey.generate()
    path.parent.mkdir(parents=True, exist_ok=True)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    return key


def canonical(document: dict) -> bytes:
    """The signed bytes: the document without its signature, keys sorted, no spaces."""
    body = {k: v for k, v in document.items() if k != "signature"}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def public_hex(key: Ed25519PrivateKey) -> str:
    return key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw).hex()


def sign(document: dict, key: Ed25519PrivateKey | None = None) -> dict:
    key = key or load_key()
    signed = dict(document)
    signed["signature"] = {"algorithm": ALGORITHM, "public_key": public_hex(key),
                           "value": key.sign(canonical(document)).hex()}
    return signed


def check_signature(document: dict) -> tuple[bool, str]:
    sig = document.get("signature")
    if not isinstance(sig, dict) or sig.get("algorithm") != ALGORITHM:
        return False, "no Ed25519 signature"
    try:
        public = Ed25519PublicKey.from_public_bytes(bytes.fromhex(sig["public_key"]))
        public.verify(bytes.fromhex(sig["value"]), canonical(document))
    except (InvalidSignature, ValueError, KeyError, TypeError):
        return False, "the signature does not match the certificate"
    return True, f"signed by key {sig['public_key'][:16]}..."

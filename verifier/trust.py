"""Which signers `phg verify` believes.

A valid signature only proves that the holder of some key signed; anyone can make a key.  A
certificate is believed only when its key is trusted: the keys given with `--trust` (64 hex
digits of a raw Ed25519 public key, or a PEM public key file), else those listed in
$XDG_CONFIG_HOME/phg/trusted-keys together with the user's own signing key.

The trusted-keys file has one key a line, 64 hex digits, optionally followed by a name; `#`
starts a comment.  `phg keys` edits it.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from phg import terminal

from . import signing

HEX = set("0123456789abcdefABCDEF")


class TrustError(ValueError):
    """A key or trusted-keys file that cannot be read; the message names the place."""


@dataclass(frozen=True)
class TrustedKey:
    public: bytes
    name: str | None
    origin: str                 # where the trust comes from: "--trust", the file, "your own key"

    @property
    def key_id(self) -> str:
        return signing.key_id(self.public)

    def describe(self) -> str:
        label = f" ({self.name})" if self.name else ""
        return f"key {self.key_id}{label}, trusted by {self.origin}"


def trusted_keys_path() -> Path:
    return signing.config_dir() / "trusted-keys"


def _is_hex_key(text: str) -> bool:
    return len(text) == 64 and set(text) <= HEX


def parse_key(spec: str) -> bytes:
    """A public key given as 64 hex digits or as the path of a PEM public key file."""
    text = spec.strip()
    if _is_hex_key(text):
        return bytes.fromhex(text)
    path = Path(text)
    try:
        data = path.read_bytes() if path.is_file() and path.stat().st_size <= 64 * 1024 else None
    except OSError:
        data = None
    if data is None:
        raise TrustError(f"{_shown(text)}: expected 64 hex digits of an Ed25519 public key or a PEM public key "
                         "file, found neither")
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError):
        raise TrustError(f"{path}: expected a PEM public key, found a file that is not one") from None
    except UnsupportedAlgorithm:            # e.g. an elliptic curve cryptography does not know
        raise TrustError(f"{path}: expected an Ed25519 public key, found a key of an algorithm "
                         "this phg cannot read") from None
    if not isinstance(key, Ed25519PublicKey):
        raise TrustError(f"{path}: expected an Ed25519 public key, found another kind of key")
    return signing.raw_public(key)


def _shown(text: str) -> str:
    return repr(text) if len(text) <= 80 else repr(text[:80]) + "..."


def read_file(path: Path | None = None) -> list[TrustedKey]:
    """The keys listed in the trusted-keys file (none when it does not exist)."""
    path = path or trusted_keys_path()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    except (OSError, UnicodeDecodeError) as exc:
        raise TrustError(f"{path}: expected a readable UTF-8 list of trusted keys, found "
                         f"{getattr(exc, 'strerror', None) or 'text that is not UTF-8'}") from None
    keys = []
    # Lines end at LF alone (a CR before it is stripped): str.splitlines() would also split at
    # U+2028, a form feed or U+0085 inside a name, making one entry two.
    for n, line in enumerate(text.split("\n"), 1):
        body = line.split("#", 1)[0].strip()
        if not body:
            continue
        word, _, name = body.partition(" ")
        if not _is_hex_key(word):
            col = line.index(word) + 1
            raise TrustError(f"{path}:{n}:{col}: expected 64 hex digits of an Ed25519 public key, "
                             f"found {_shown(word)}")
        keys.append(TrustedKey(bytes.fromhex(word), name.strip() or None, str(path)))
    return keys


def own_key() -> TrustedKey | None:
    try:
        key = signing.existing_key()
    except signing.SigningKeyError as exc:
        raise TrustError(str(exc)) from None
    return None if key is None else TrustedKey(signing.raw_public(key), None, "your own signing key")


def trusted(named: list[str] | None = None) -> list[TrustedKey]:
    """The keys a certificate may be signed with: those named (`--trust`), else the file's and
    the user's own."""
    if named:
        return [TrustedKey(parse_key(spec), None, "--trust") for spec in named]
    keys = read_file()
    own = own_key()
    if own is not None and all(k.public != own.public for k in keys):
        keys.append(own)
    return keys


def find(keys: list[TrustedKey], public: bytes | None) -> TrustedKey | None:
    return next((k for k in keys if k.public == public), None)


# ---- phg keys ---------------------------------------------------------------------------------------
def add(spec: str, name: str | None = None) -> TrustedKey:
    """Trust a key from now on (written to the trusted-keys file); adding it again renames it."""
    public = parse_key(spec)
    if name is not None:
        _check_name(name)
    path = trusted_keys_path()
    keys = [k for k in read_file(path) if k.public != public]
    entry = TrustedKey(public, name.strip() if name else None, str(path))
    _write(path, keys + [entry])
    return entry


def _check_name(name: str):
    """A name is written on its key's line and printed by phg verify: one line of visible text."""
    if not name.strip():
        raise TrustError(f"--name {_shown(name)}: expected a name, found only blanks")
    at = terminal.first_unsafe(name)
    if at is not None:
        c = name[at]
        found = f"the byte 0x{ord(c) - 0xdc00:02x}, which is not UTF-8," if 0xdc80 <= ord(c) <= 0xdcff \
            else terminal.escape(c)
        raise TrustError(f"--name {_shown(name)}: expected a name without control, format or line separator "
                         f"characters, found {found} at character {at + 1}")
    if "#" in name:
        raise TrustError(f"--name {_shown(name)}: expected a name without '#' (it starts a comment), found "
                         f"one at character {name.index('#') + 1}")


def remove(key_or_id: str) -> TrustedKey:
    """Stop trusting a key of the file, named by its 64 hex digits, a PEM file or its key id."""
    path = trusted_keys_path()
    keys = read_file(path)
    text = key_or_id.strip().lower()
    gone = [k for k in keys if k.key_id == text or k.public.hex() == text]
    if not gone and not _is_hex_key(text) and not (len(text) == 16 and set(text) <= HEX):
        public = parse_key(key_or_id)
        gone = [k for k in keys if k.public == public]
    if not gone:
        raise TrustError(f"{_shown(key_or_id)}: expected a key listed in {path}, found no such key "
                         "(phg keys list shows them)")
    _write(path, [k for k in keys if k not in gone])
    return gone[0]


def _write(path: Path, keys: list[TrustedKey]):
    """Replace the file in one step, so that a failure leaves the old list."""
    lines = ["# Keys whose certificates phg verify accepts: 64 hex digits, then an optional name."]
    lines += [f"{k.public.hex()} {k.name}" if k.name else k.public.hex() for k in keys]
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".new")
    temporary.write_text("\n".join(lines) + "\n", encoding="utf-8")
    os.replace(temporary, path)

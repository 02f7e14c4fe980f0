"""Signed rule sets: Ed25519 signatures over a rule set's content hash, kept next to the artifact.

A rule set's ``hash`` travels inside the file it protects, so whoever can
edit the artifact can reseal it. A signature cannot be forged that way: the
registry signs each version when it registers it (with ``IMMUNE_SIGNING_KEY``,
a private key the tracking server does not hold; by default a key created in
the user data directory) and writes ``ruleset.json.sig`` beside
``ruleset.json``. Every process that loads a registered version — ``immune
scan``, the gateway, the pyfunc model — verifies it against the trusted
public keys first and refuses a tampered, unsigned or foreign-signed one with
the reason. ``IMMUNE_TRUSTED_KEYS`` lists public key files (separated by
``os.pathsep``); the default key's public half is trusted too.

Built-in rule sets ship inside the package and are trusted as the code is.
A rule-set file given by path is verified when a signature sits next to it,
and must be signed when ``IMMUNE_TRUSTED_KEYS`` is set.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from targets.rules import RuleSet, RuleSetError, load_ruleset

SIGNATURE_FORMAT = "kosmoi-ruleset-signature/1"
SIGNATURE_SUFFIX = ".sig"


@dataclass(frozen=True, slots=True)
class Signature:
    key_id: str
    content_hash: str
    signature: str  # base64 Ed25519 over the content hash

    def to_json(self) -> str:
        return json.dumps({"format": SIGNATURE_FORMAT, "key_id": self.key_id, "content_hash": self.content_hash, "signature": self.signature}, indent=1) + "\n"


def key_id(public: Ed25519PublicKey) -> str:
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def default_key_dir() -> Path:
    import platformdirs

    return Path(platformdirs.user_data_dir("kosmoi-immune")) / "signing"


def generate_keypair(directory: Path) -> tuple[Path, Path]:
    """``signing.key`` (PEM, mode 0600) and ``signing.pub`` in ``directory``; an existing pair is kept."""
    private_path, public_path = directory / "signing.key", directory / "signing.pub"
    if private_path.exists():
        return private_path, public_path
    directory.mkdir(parents=True, exist_ok=True)
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    descriptor = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(pem)
    public_path.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    return private_path, public_path


def load_private_key(path: Path) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise RuleSetError(f"{path}: not an Ed25519 private key ({exc})") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise RuleSetError(f"{path}: not an Ed25519 private key")
    return key


def load_public_key(path: Path) -> Ed25519PublicKey:
    try:
        key = serialization.load_pem_public_key(path.read_bytes())
    except (OSError, ValueError, TypeError) as exc:
        raise RuleSetError(f"{path}: not an Ed25519 public key ({exc})") from None
    if not isinstance(key, Ed25519PublicKey):
        raise RuleSetError(f"{path}: not an Ed25519 public key")
    return key


def signing_key() -> Ed25519PrivateKey:
    """``IMMUNE_SIGNING_KEY``, else the default key (created on first use)."""
    configured = os.environ.get("IMMUNE_SIGNING_KEY")
    path = Path(configured) if configured else generate_keypair(default_key_dir())[0]
    return load_private_key(path)


def trusted_keys() -> dict[str, Ed25519PublicKey]:
    """The keys whose signatures are accepted: ``IMMUNE_TRUSTED_KEYS`` and the default key's public half."""
    keys: dict[str, Ed25519PublicKey] = {}
    for entry in filter(None, os.environ.get("IMMUNE_TRUSTED_KEYS", "").split(os.pathsep)):
        public = load_public_key(Path(entry))
        keys[key_id(public)] = public
    default_public = default_key_dir() / "signing.pub"
    if default_public.exists():
        public = load_public_key(default_public)
        keys[key_id(public)] = public
    return keys


def sign(ruleset: RuleSet, key: Ed25519PrivateKey) -> Signature:
    content = ruleset.content_hash()
    return Signature(key_id(key.public_key()), content, base64.b64encode(key.sign(content.encode("ascii"))).decode("ascii"))


def signature_path(path: Path) -> Path:
    return path.with_name(path.name + SIGNATURE_SUFFIX)


def read_signature(path: Path) -> Signature:
    try:
        data = json.loads(path.read_text("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RuleSetError(f"{path}: not a rule-set signature ({exc})") from None
    if not isinstance(data, dict) or data.get("format") != SIGNATURE_FORMAT or not all(isinstance(data.get(k), str) for k in ("key_id", "content_hash", "signature")):
        raise RuleSetError(f"{path}: not a rule-set signature (expected format {SIGNATURE_FORMAT!r})")
    return Signature(data["key_id"], data["content_hash"], data["signature"])


def verify(ruleset: RuleSet, signature: Signature, keys: dict[str, Ed25519PublicKey], source: str) -> None:
    """Raise :class:`RuleSetError` naming why ``signature`` does not vouch for ``ruleset``."""
    public = keys.get(signature.key_id)
    if public is None:
        raise RuleSetError(f"{source}: signed by key {signature.key_id}, which is not trusted (IMMUNE_TRUSTED_KEYS)")
    try:
        public.verify(base64.b64decode(signature.signature, validate=True), signature.content_hash.encode("ascii"))
    except (InvalidSignature, ValueError):
        raise RuleSetError(f"{source}: the signature is not valid (forged or corrupt)") from None
    if signature.content_hash != ruleset.content_hash():
        raise RuleSetError(f"{source}: the content was changed after signing (signed {signature.content_hash[:19]}, now {ruleset.content_hash()[:19]})")


def load_verified(path: Path, *, require: bool) -> RuleSet:
    """Load a rule-set file and check its signature (required when ``require``, or when trusted keys are configured)."""
    ruleset = load_ruleset(path)
    sig_path = signature_path(path)
    if not sig_path.exists():
        if require or os.environ.get("IMMUNE_TRUSTED_KEYS"):
            raise RuleSetError(f"{path}: unsigned (no {sig_path.name}); sign it with `immune rules sign {path}`")
        return ruleset
    verify(ruleset, read_signature(sig_path), trusted_keys(), str(path))
    return ruleset

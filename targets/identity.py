"""Zero-trust identity: an IdP issuing short-lived EdDSA JWTs, and a verifier.

Tokens are signed with Ed25519 through PyJWT (no hand-rolled crypto). Signing
keys rotate every ``rotation_s`` simulated seconds; a retired key still
verifies the tokens it signed until they expire, and no new token is signed
with it. Services hold only public keys, so a compromised service cannot mint
tokens.

Time is *simulated* time: PyJWT's own wall-clock expiry check is disabled and
``exp``/``nbf`` are checked against the caller's ``now``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

ISSUER = "kosmoi-idp"
_ALGORITHMS = ["EdDSA"]
_DECODE_OPTIONS: jwt.types.Options = {"verify_exp": False, "verify_nbf": False, "verify_iat": False, "verify_aud": False}

# The allow-list of every service: method -> scope the caller's token must carry.
SERVICE_SCOPES: dict[str, dict[str, str]] = {
    "chat": {"message": "chat"},
    "finance": {"balance": "finance.read", "history": "finance.read", "transfer": "finance.write", "refund": "finance.refund"},
    "catalog": {"get": "catalog.read", "list": "catalog.read", "set_price": "catalog.write", "add_review": "catalog.review"},
    "orders": {"get": "orders.read"},
    "vault": {"read": "vault.read"},
    "messaging": {"send": "messaging.send"},
    "iam": {"grant": "iam.admin"},
}


class AuthError(Exception):
    """A rejected call; ``reason`` is one of: forged, expired, not_yet_valid, revoked, scope, malformed."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Claims:
    """The verified content of a token."""

    subject: str
    scopes: frozenset[str]
    issued_at: float
    expires_at: float
    token_id: str
    key_id: str


def required_scope(service: str, method: str) -> str:
    """The scope a call needs; unknown services or methods are a programming error."""
    try:
        return SERVICE_SCOPES[service][method]
    except KeyError:
        raise KeyError(f"no allow-list entry for {service}.{method}") from None


class IdentityProvider:
    """Issues tokens; owns the signing keys. Deterministic given ``seed``."""

    def __init__(self, seed: int, ttl_s: float = 300.0, rotation_s: float = 3600.0) -> None:
        if ttl_s <= 0 or rotation_s <= 0:
            raise ValueError("ttl_s and rotation_s must be > 0")
        self.ttl_s = ttl_s
        self.rotation_s = rotation_s
        self._seed = seed
        self._private: dict[str, Ed25519PrivateKey] = {}
        self._public: dict[str, Ed25519PublicKey] = {}
        self._issued = 0

    def _key_id(self, now: float) -> str:
        return f"k{int(now // self.rotation_s)}"

    def _signing_key(self, kid: str) -> Ed25519PrivateKey:
        key = self._private.get(kid)
        if key is None:
            material = hashlib.blake2b(f"{self._seed}:{kid}".encode(), digest_size=32, person=b"kosmoi-idp-key").digest()
            key = Ed25519PrivateKey.from_private_bytes(material)
            self._private[kid] = key
            self._public[kid] = key.public_key()
        return key

    def public_key(self, kid: str) -> Ed25519PublicKey | None:
        """The verification key for ``kid`` (None for a kid that is not one of this IdP's key slots)."""
        key = self._public.get(kid)
        if key is None and len(kid) > 1 and kid[0] == "k" and kid[1:].isdigit():
            self._signing_key(kid)  # keys are derived from the seed: re-derive after a restore
            key = self._public.get(kid)
        return key

    def __getstate__(self) -> dict[str, object]:
        # Key objects cannot be pickled; they are re-derived from the seed on demand.
        return {**self.__dict__, "_private": {}, "_public": {}}

    def issue(self, subject: str, scopes: frozenset[str] | set[str], now: float) -> str:
        """A signed token for ``subject`` valid from ``now`` for ``ttl_s``."""
        kid = self._key_id(now)
        self._issued += 1
        claims = {
            "iss": ISSUER,
            "sub": subject,
            "scope": " ".join(sorted(scopes)),
            "iat": now,
            "nbf": now,
            "exp": now + self.ttl_s,
            "jti": f"{subject}:{self._issued}",
        }
        return jwt.encode(claims, self._signing_key(kid), algorithm="EdDSA", headers={"kid": kid})

    def key_valid_at(self, kid: str, now: float) -> bool:
        """A key verifies tokens while it is current and for one TTL after it retires."""
        try:
            epoch = int(kid[1:])
        except ValueError:
            return False
        retired_at = (epoch + 1) * self.rotation_s
        return epoch * self.rotation_s <= now + self.ttl_s and now <= retired_at + self.ttl_s


class TokenVerifier:
    """Checks signature, expiry, revocation and scope for every service call.

    A token's signature is verified once and the claims cached (the token
    bytes cannot change); expiry, revocation and scope are checked on every
    call. The cache is bounded.
    """

    def __init__(self, idp: IdentityProvider, cache_size: int = 4096) -> None:
        self._idp = idp
        self._cache: dict[str, Claims] = {}
        self._cache_size = cache_size
        self._revoked_subjects: set[str] = set()
        self._revoked_tokens: set[str] = set()

    def __getstate__(self) -> dict[str, object]:
        return {**self.__dict__, "_cache": {}}  # a cache of verified signatures: cheap to rebuild

    def revoke_subject(self, subject: str) -> None:
        """Every token of ``subject``, present and future, is rejected from now on."""
        self._revoked_subjects.add(subject)

    def revoke_token(self, token_id: str) -> None:
        """One token (by ``jti``) is rejected from now on."""
        self._revoked_tokens.add(token_id)

    def is_revoked(self, subject: str) -> bool:
        return subject in self._revoked_subjects

    def _decode(self, token: str) -> Claims:
        claims = self._cache.get(token)
        if claims is not None:
            return claims
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise AuthError("malformed", str(exc)) from None
        kid = header.get("kid")
        key = self._idp.public_key(kid) if isinstance(kid, str) else None
        if key is None or not isinstance(kid, str):
            raise AuthError("forged", "unknown signing key")
        try:
            raw = jwt.decode(token, key, algorithms=_ALGORITHMS, options=_DECODE_OPTIONS, issuer=ISSUER)
        except jwt.InvalidIssuerError:
            raise AuthError("forged", "wrong issuer") from None
        except jwt.PyJWTError as exc:
            raise AuthError("forged", str(exc)) from None
        try:
            claims = Claims(
                subject=str(raw["sub"]),
                scopes=frozenset(str(raw.get("scope", "")).split()),
                issued_at=float(raw["iat"]),
                expires_at=float(raw["exp"]),
                token_id=str(raw["jti"]),
                key_id=kid,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise AuthError("malformed", f"missing or bad claim {exc}") from None
        if len(self._cache) >= self._cache_size:
            del self._cache[next(iter(self._cache))]  # oldest first: tokens are issued in time order and expire in it
        self._cache[token] = claims
        return claims

    def verify(self, token: str, now: float, scope: str | None = None) -> Claims:
        """Return the token's claims if it may be used at ``now`` for ``scope``; else raise AuthError."""
        claims = self._decode(token)
        if not self._idp.key_valid_at(claims.key_id, now):
            raise AuthError("expired", "signing key retired")
        if now < claims.issued_at:
            raise AuthError("not_yet_valid")
        if now >= claims.expires_at:
            raise AuthError("expired", f"expired at {claims.expires_at:.0f}")
        if claims.subject in self._revoked_subjects or claims.token_id in self._revoked_tokens:
            raise AuthError("revoked", claims.subject)
        if scope is not None and scope not in claims.scopes:
            raise AuthError("scope", f"{claims.subject} lacks {scope}")
        return claims

    def authorize(self, token: str, now: float, service: str, method: str) -> Claims:
        """Verify a call to ``service.method`` against the service's allow-list."""
        return self.verify(token, now, required_scope(service, method))

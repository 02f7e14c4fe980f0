"""Zero-trust identity: signature, expiry, revocation, scope, key rotation."""

from __future__ import annotations

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from targets.identity import AuthError, IdentityProvider, TokenVerifier


@pytest.fixture()
def idp() -> IdentityProvider:
    return IdentityProvider(seed=1, ttl_s=300, rotation_s=3600)


def _reason(verifier: TokenVerifier, token: str, now: float, scope: str | None = None) -> str:
    with pytest.raises(AuthError) as info:
        verifier.verify(token, now, scope)
    return info.value.reason


def test_valid_token_carries_subject_and_scopes(idp):
    verifier = TokenVerifier(idp)
    token = idp.issue("agent:finance", {"finance.read", "finance.write"}, now=10.0)
    claims = verifier.authorize(token, 20.0, "finance", "transfer")
    assert claims.subject == "agent:finance" and "finance.write" in claims.scopes


def test_out_of_scope_call_is_rejected(idp):
    verifier = TokenVerifier(idp)
    token = idp.issue("agent:sales", {"catalog.read", "catalog.write"}, now=0.0)
    with pytest.raises(AuthError) as info:
        verifier.authorize(token, 1.0, "finance", "transfer")
    assert info.value.reason == "scope"


def test_expired_token_is_rejected(idp):
    verifier = TokenVerifier(idp)
    token = idp.issue("cust-1", {"chat"}, now=0.0)
    verifier.verify(token, 299.0, "chat")
    assert _reason(verifier, token, 300.0, "chat") == "expired"


def test_forged_signature_and_foreign_key_are_rejected(idp):
    verifier = TokenVerifier(idp)
    token = idp.issue("cust-1", {"chat"}, now=0.0)
    header, _payload, signature = token.split(".")
    tampered_payload = jwt.utils.base64url_encode(b'{"iss":"kosmoi-idp","sub":"agent:ops","scope":"iam.admin","iat":0,"nbf":0,"exp":999,"jti":"x"}').decode()
    assert _reason(verifier, f"{header}.{tampered_payload}.{signature}", 1.0) == "forged"
    attacker_key = Ed25519PrivateKey.generate()
    forged = jwt.encode({"iss": "kosmoi-idp", "sub": "att", "scope": "iam.admin", "iat": 0, "exp": 999, "jti": "f"}, attacker_key, algorithm="EdDSA", headers={"kid": "k0"})
    assert _reason(verifier, forged, 1.0) == "forged"
    unknown_kid = jwt.encode({"sub": "att"}, attacker_key, algorithm="EdDSA", headers={"kid": "k99"})
    assert _reason(verifier, unknown_kid, 1.0) == "forged"
    assert _reason(verifier, "not-a-token", 1.0) == "malformed"


def test_alg_none_and_hs256_confusion_are_rejected(idp):
    verifier = TokenVerifier(idp)
    unsigned = jwt.encode({"iss": "kosmoi-idp", "sub": "att", "scope": "iam.admin", "iat": 0, "exp": 999, "jti": "n"}, None, algorithm="none", headers={"kid": "k0"})
    assert _reason(verifier, unsigned, 1.0) == "forged"


def test_revocation_applies_to_existing_and_future_tokens(idp):
    verifier = TokenVerifier(idp)
    old = idp.issue("att-1", {"chat"}, now=0.0)
    verifier.verify(old, 1.0, "chat")
    verifier.revoke_subject("att-1")
    assert _reason(verifier, old, 2.0, "chat") == "revoked"
    assert _reason(verifier, idp.issue("att-1", {"chat"}, now=3.0), 4.0, "chat") == "revoked"


def test_key_rotation_old_tokens_valid_until_expiry_only(idp):
    verifier = TokenVerifier(idp)
    before = idp.issue("cust-1", {"chat"}, now=3590.0)  # signed with key k0
    after = idp.issue("cust-1", {"chat"}, now=3610.0)  # signed with key k1
    assert jwt.get_unverified_header(before)["kid"] == "k0" and jwt.get_unverified_header(after)["kid"] == "k1"
    verifier.verify(before, 3700.0, "chat")  # k0 retired, its token still within TTL
    assert _reason(verifier, before, 3890.0, "chat") == "expired"
    verifier.verify(after, 3700.0, "chat")


def test_the_verification_cache_is_bounded_and_evicting_changes_no_answer(idp):
    verifier = TokenVerifier(idp, cache_size=64)
    tokens = [idp.issue(f"user-{i}", {"chat"}, now=float(i)) for i in range(200)]
    for i, token in enumerate(tokens):
        assert verifier.verify(token, float(i) + 1.0, "chat").subject == f"user-{i}"
    assert len(verifier._cache) == 64
    verifier.revoke_subject("user-3")
    assert _reason(verifier, tokens[3], 10.0, "chat") == "revoked"  # evicted long ago, decoded again, still refused
    assert verifier.verify(tokens[199], 201.0, "chat").subject == "user-199"

"""Signed rule sets: a tampered, resealed, foreign-signed or unsigned rule set is refused with the reason."""

from __future__ import annotations

import json
import subprocess

import pytest

from targets.rules import RuleSetError, load_ruleset, parse_ruleset
from targets.signing import generate_keypair, load_private_key, load_verified, read_signature, sign, signature_path
from tests.conftest import immune_cmd


@pytest.fixture()
def keys(tmp_path, monkeypatch):
    """A trusted key pair (the default one, in a temporary data directory) and an untrusted one."""
    monkeypatch.setattr("targets.signing.default_key_dir", lambda: tmp_path / "default")
    monkeypatch.delenv("IMMUNE_TRUSTED_KEYS", raising=False)
    monkeypatch.delenv("IMMUNE_SIGNING_KEY", raising=False)
    trusted, _ = generate_keypair(tmp_path / "default")
    foreign, _ = generate_keypair(tmp_path / "foreign")
    return load_private_key(trusted), load_private_key(foreign)


@pytest.fixture()
def rules_file(tmp_path):
    path = tmp_path / "rules.json"
    path.write_text(load_ruleset("builtin:baseline").to_json(), "utf-8")
    return path


def _sign(path, key):
    signature_path(path).write_text(sign(load_ruleset(path), key).to_json(), "utf-8")


def test_a_signed_rule_set_loads(keys, rules_file):
    _sign(rules_file, keys[0])
    assert load_verified(rules_file, require=True).name == "baseline"


def test_an_edited_and_resealed_rule_set_is_refused(keys, rules_file):
    _sign(rules_file, keys[0])
    data = json.loads(rules_file.read_text())
    data["thresholds"]["block"] = 0.999  # weaken the guard ...
    data.pop("hash")
    rules_file.write_text(parse_ruleset(json.dumps(data), require_hash=False).to_json())  # ... and reseal the hash
    assert load_ruleset(rules_file).hash  # the hash alone no longer tells
    with pytest.raises(RuleSetError, match="changed after signing"):
        load_verified(rules_file, require=True)


def test_a_foreign_a_forged_and_a_missing_signature_are_refused(keys, rules_file, monkeypatch, tmp_path):
    _sign(rules_file, keys[1])
    with pytest.raises(RuleSetError, match="which is not trusted"):
        load_verified(rules_file, require=True)
    _sign(rules_file, keys[0])
    sig = json.loads(signature_path(rules_file).read_text())
    sig["signature"] = sig["signature"][:-8] + "AAAAAAA="
    signature_path(rules_file).write_text(json.dumps(sig))
    with pytest.raises(RuleSetError, match="not valid"):
        load_verified(rules_file, require=True)
    signature_path(rules_file).write_text("{}")
    with pytest.raises(RuleSetError, match="not a rule-set signature"):
        load_verified(rules_file, require=True)
    signature_path(rules_file).unlink()
    with pytest.raises(RuleSetError, match="unsigned"):
        load_verified(rules_file, require=True)
    assert load_verified(rules_file, require=False).name == "baseline"  # a local file without a signature is allowed ...
    monkeypatch.setenv("IMMUNE_TRUSTED_KEYS", str(tmp_path / "default" / "signing.pub"))
    with pytest.raises(RuleSetError, match="unsigned"):  # ... unless trusted keys are configured
        load_verified(rules_file, require=False)


def test_the_cli_signs_and_verifies(tmp_path, rules_file):
    env_keys = tmp_path / "keys"
    run = lambda *args: subprocess.run([*immune_cmd(), "rules", *args], capture_output=True, text=True, env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "IMMUNE_TRUSTED_KEYS": str(env_keys / "signing.pub")})  # noqa: E731
    assert run("keygen", "--out", str(env_keys)).returncode == 0
    assert run("sign", str(rules_file), "--key", str(env_keys / "signing.key")).returncode == 0
    assert read_signature(signature_path(rules_file)).key_id
    ok = run("verify", str(rules_file))
    assert ok.returncode == 0 and "signature ok" in ok.stdout
    data = json.loads(rules_file.read_text())
    data["description"] = "edited"
    rules_file.write_text(json.dumps(data))
    refused = run("verify", str(rules_file))
    assert refused.returncode == 1 and "hash mismatch" in refused.stderr

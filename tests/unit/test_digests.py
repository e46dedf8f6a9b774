"""Signed digests: the exact signed message, keys from configuration, refusals."""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from service.config import DEV_SIGNING_KEY, Settings
from service.digests import (
    KeyRing,
    SignedDigest,
    digest_message,
    load_private_key,
    load_public_key,
    public_pem,
    raw_public,
    sign_digest,
)


def test_the_signed_message_is_plain_text_an_auditor_can_rebuild() -> None:
    message = digest_message(3, 7, bytes(range(32)), "2026-03-01T10:00:00.000000Z")
    assert message == (b"opsledger-tree-head/v1\ntree_size=3\nlast_position=7\nroot_hash="
                       + bytes(range(32)).hex().encode()
                       + b"\ntimestamp=2026-03-01T10:00:00.000000Z\n")


def test_a_digest_verifies_and_any_change_to_it_does_not() -> None:
    keys = KeyRing(load_private_key(DEV_SIGNING_KEY))
    digest = sign_digest(keys, 10, 12, b"\x01" * 32, "on_demand")
    assert keys.check(digest) is None
    again = SignedDigest.from_json(digest.to_json())
    assert keys.check(again) is None
    for change in ({"tree_size": 11}, {"last_position": 13}, {"root_hash": b"\x02" * 32},
                   {"timestamp": "2020-01-01T00:00:00.000000Z"}):
        forged = SignedDigest(**{**digest.__dict__, **change})
        assert keys.check(forged) == "the signature does not match"
    stranger = KeyRing(Ed25519PrivateKey.generate())
    assert "unknown key" in (keys.check(sign_digest(stranger, 10, 12, b"\x01" * 32, "x")) or "")


def test_keys_load_from_base64_seeds_and_pem() -> None:
    private = Ed25519PrivateKey.generate()
    pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    seed = base64.b64encode(private.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
        serialization.NoEncryption())).decode()
    for text in (pem, seed):
        assert raw_public(load_private_key(text).public_key()) == raw_public(
            private.public_key())
    public = private.public_key()
    assert raw_public(load_public_key(public_pem(public))) == raw_public(public)
    with pytest.raises(ValueError):
        load_private_key("not a key")


def test_a_rotated_out_key_still_verifies_its_old_digests() -> None:
    old = KeyRing(Ed25519PrivateKey.generate())
    digest = sign_digest(old, 1, 1, b"\x03" * 32, "periodic")
    settings = Settings(signing_key=base64.b64encode(b"\x07" * 32).decode(),
                        trusted_digest_keys=(public_pem(old.public),))
    new = KeyRing.from_settings(settings)
    assert new.key_id != old.key_id and new.check(digest) is None


def test_production_refuses_the_development_signing_key() -> None:
    production = {"mode": "production", "jwt_secret": "s" * 40,
                  "database_url": "postgresql://db/opsledger"}
    with pytest.raises(ValueError, match="OPSLEDGER_SIGNING_KEY"):
        Settings(**production)
    Settings(**production, signing_key=base64.b64encode(b"\x09" * 32).decode())
    assert Settings().signing_key.get_secret_value() == DEV_SIGNING_KEY

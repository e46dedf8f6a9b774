"""Bearer JWT: HS256 for development, RS256 against a JWKS URL for production."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from service.auth import Authenticator, Unauthorized, issue_token
from service.config import Settings


@pytest.fixture(scope="module")
def rsa_key() -> Any:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def jwks_url(rsa_key: Any) -> Iterator[str]:
    public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(rsa_key.public_key()))
    body = json.dumps({"keys": [{**public, "kid": "k1", "use": "sig", "alg": "RS256"}]}).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/jwks.json"
    server.shutdown()


def rs256(key: Any, **claims: Any) -> str:
    base = {"sub": "ann", "name": "Ann", "roles": ["member"], "departments": ["ops"],
            "aud": "opsledger", "exp": int(time.time()) + 60}
    return jwt.encode({**base, **claims}, key, algorithm="RS256", headers={"kid": "k1"})


def test_rs256_tokens_are_verified_against_the_jwks(rsa_key: Any, jwks_url: str) -> None:
    auth = Authenticator(Settings(jwt_jwks_url=jwks_url))
    actor = auth.actor("Bearer " + rs256(rsa_key))
    assert actor.user_id == "ann" and actor.roles == {"member"} and actor.departments == {"ops"}


def test_forged_expired_and_wrong_audience_tokens_are_refused(rsa_key: Any,
                                                              jwks_url: str) -> None:
    auth = Authenticator(Settings(jwt_jwks_url=jwks_url))
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    for token in (rs256(other), rs256(rsa_key, exp=int(time.time()) - 10),
                  rs256(rsa_key, aud="someone-else"),
                  issue_token(Settings(), "ann", roles=["member"])):  # HS256 where RS256 is due
        with pytest.raises(Unauthorized):
            auth.actor("Bearer " + token)


def test_hs256_development_tokens_round_trip() -> None:
    settings = Settings()
    auth = Authenticator(settings)
    token = issue_token(settings, "mark", roles=["dept_manager", "not-a-role"],
                        departments=["ops"])
    actor = auth.actor("Bearer " + token)
    assert actor.roles == {"dept_manager"}  # unknown roles grant nothing
    with pytest.raises(Unauthorized):
        auth.actor("Bearer " + token[:-2] + "xx")
    with pytest.raises(Unauthorized):
        auth.actor("Basic abc")


def test_production_mode_refuses_the_development_secret() -> None:
    with pytest.raises(ValueError, match="OPSLEDGER_JWT_SECRET"):
        Settings(mode="production", database_url="postgresql://x/y")

"""Bearer JWT → Actor. HS256 with a shared secret (development), RS256 via JWKS (production)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import jwt

from domain.shared import Actor, Role
from service.config import Settings

KNOWN_ROLES = frozenset(r.value for r in Role)


class Unauthorized(Exception):
    """Missing, malformed, forged, expired or wrong-audience token."""


# A token verified once is remembered (by its exact text, signature included) for at most this
# long and never past its `exp`: clients send the same token with every request, and checking
# its signature and claims again each time is most of the cost of authentication.
VERIFIED_TOKEN_SECONDS = 60.0
VERIFIED_TOKENS_MAX = 10_000


class Authenticator:
    def __init__(self, settings: Settings):
        self.settings = settings
        self._jwks = jwt.PyJWKClient(settings.jwt_jwks_url) if settings.jwt_jwks_url else None
        # header → (actor, valid until: min(exp, verified + VERIFIED_TOKEN_SECONDS))
        self._verified: dict[str, tuple[Actor, float]] = {}

    @property
    def may_block(self) -> bool:
        """True when verifying a new token may wait on the network (JWKS key fetch)."""
        return self._jwks is not None

    def cached_actor(self, authorization: str | None) -> Actor | None:
        """The actor of a header verified recently (and not expired since), else None."""
        if not authorization:
            return None
        hit = self._verified.get(authorization)
        if hit is None or hit[1] <= time.time():
            return None
        return hit[0]

    def actor(self, authorization: str | None) -> Actor:
        if not authorization:
            raise Unauthorized("an 'Authorization: Bearer <token>' header is required")
        cached = self.cached_actor(authorization)
        if cached is not None:
            return cached
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized("the Authorization header must be 'Bearer <token>'")
        claims = self.decode(token.strip())
        roles = claims.get("roles", [])
        departments = claims.get("departments", [])
        if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
            raise Unauthorized("claim 'roles' must be a list of strings")
        if not isinstance(departments, list) or not all(isinstance(d, str) for d in departments):
            raise Unauthorized("claim 'departments' must be a list of strings")
        actor = Actor(user_id=str(claims["sub"]), name=str(claims.get("name", claims["sub"])),
                      roles=frozenset(r for r in roles if r in KNOWN_ROLES),
                      departments=frozenset(departments))
        try:
            until = min(float(claims["exp"]), time.time() + VERIFIED_TOKEN_SECONDS)
        except (TypeError, ValueError):
            return actor
        if len(self._verified) >= VERIFIED_TOKENS_MAX:
            self._verified.clear()
        self._verified[authorization] = (actor, until)
        return actor

    @staticmethod
    def expiry(authorization: str | None) -> float | None:
        """When the token of an already verified header expires (epoch seconds)."""
        token = (authorization or "").partition(" ")[2].strip()
        try:
            return float(jwt.decode(token, options={"verify_signature": False})["exp"])
        except (jwt.PyJWTError, KeyError, TypeError, ValueError):
            return None

    def decode(self, token: str) -> dict[str, Any]:
        options: Any = {"require": ["sub", "exp"]}
        try:
            if self._jwks is not None:
                key = self._jwks.get_signing_key_from_jwt(token).key
                return jwt.decode(token, key, algorithms=["RS256"],
                                  audience=self.settings.jwt_audience,
                                  issuer=self.settings.jwt_issuer, options=options)
            return jwt.decode(token, self.settings.jwt_secret.get_secret_value(),
                              algorithms=["HS256"], audience=self.settings.jwt_audience,
                              issuer=self.settings.jwt_issuer, options=options)
        except jwt.ExpiredSignatureError:
            raise Unauthorized("the token has expired") from None
        except jwt.InvalidAudienceError:
            raise Unauthorized(f"the token's audience is not '{self.settings.jwt_audience}'"
                               ) from None
        except jwt.PyJWTError as exc:
            raise Unauthorized(f"invalid token: {exc}") from None


def issue_token(settings: Settings, user_id: str, *, name: str | None = None,
                roles: Sequence[str] = (), departments: Sequence[str] = (),
                ttl_seconds: int = 12 * 3600) -> str:
    """A development token signed with the configured HS256 secret."""
    now = int(time.time())
    claims: dict[str, Any] = {"sub": user_id, "name": name or user_id, "roles": list(roles),
                              "departments": list(departments), "aud": settings.jwt_audience,
                              "iat": now, "exp": now + ttl_seconds}
    if settings.jwt_issuer:
        claims["iss"] = settings.jwt_issuer
    return jwt.encode(claims, settings.jwt_secret.get_secret_value(), algorithm="HS256")

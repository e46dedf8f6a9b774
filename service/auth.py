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


class Authenticator:
    def __init__(self, settings: Settings):
        self.settings = settings
        self._jwks = jwt.PyJWKClient(settings.jwt_jwks_url) if settings.jwt_jwks_url else None

    def actor(self, authorization: str | None) -> Actor:
        if not authorization:
            raise Unauthorized("an 'Authorization: Bearer <token>' header is required")
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
        return Actor(user_id=str(claims["sub"]), name=str(claims.get("name", claims["sub"])),
                     roles=frozenset(r for r in roles if r in KNOWN_ROLES),
                     departments=frozenset(departments))

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

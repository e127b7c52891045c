"""A real OpenID provider for the sign-in tests: a Starlette app served by uvicorn on a loopback
port, in the test's event loop, publishing its discovery document and JWKS (and counting the
JWKS fetches). Its signing keys are made here; it mints tokens the way a provider would, and
the forgeries an attacker would."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
import uuid
from typing import Any
from urllib.parse import urlencode

import uvicorn
from joserfc import jwt
from joserfc.jwk import ECKey, Key, KeySet, OKPKey, RSAKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from tests.servers import free_port

ALGORITHM_OF = {"RSA": "RS256", "EC": "ES256", "OKP": "EdDSA"}


def make_key(kty: str, kid: str) -> Key:
    key: Key
    if kty == "RSA":
        key = RSAKey.generate_key(2048, parameters={"kid": kid}, private=True)
    elif kty == "EC":
        key = ECKey.generate_key("P-256", parameters={"kid": kid}, private=True)
    else:
        key = OKPKey.generate_key("Ed25519", parameters={"kid": kid}, private=True)
    return key


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class Provider:
    def __init__(self) -> None:
        self.port = free_port()
        self.issuer = f"http://127.0.0.1:{self.port}"
        self.keys: dict[str, Key] = {}
        self.published: list[str] = []  # the kids the JWKS shows
        self.jwks_hits = 0
        self.discovery_hits = 0
        # The person at the provider's login page (the browser test's): their claims.
        self.person: dict[str, Any] | None = None
        app = Starlette(
            routes=[
                Route("/.well-known/openid-configuration", self._discovery),
                Route("/jwks", self._jwks),
                Route("/authorize", self._authorize),
            ]
        )
        self._server = uvicorn.Server(
            uvicorn.Config(
                app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="off"
            )
        )
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Provider:
        self._task = asyncio.create_task(self._server.serve())
        # uvicorn says it has started through a flag only.
        while not self._server.started:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._server.should_exit = True
        assert self._task is not None
        await self._task

    @property
    def jwks_uri(self) -> str:
        return f"{self.issuer}/jwks"

    def add_key(self, kty: str = "RSA", kid: str | None = None, *, publish: bool = True) -> str:
        kid = kid or f"{kty.lower()}-{uuid.uuid4().hex[:8]}"
        self.keys[kid] = make_key(kty, kid)
        if publish:
            self.published.append(kid)
        return kid

    def publish(self, kid: str) -> None:
        self.published.append(kid)

    async def _discovery(self, request: Request) -> JSONResponse:
        self.discovery_hits += 1
        return JSONResponse(
            {
                "issuer": self.issuer,
                "jwks_uri": self.jwks_uri,
                "id_token_signing_alg_values_supported": ["RS256", "ES256", "EdDSA"],
            }
        )

    async def _jwks(self, request: Request) -> JSONResponse:
        self.jwks_hits += 1
        public = KeySet([self.keys[kid] for kid in self.published]).as_dict(private=False)
        return JSONResponse(public)

    async def _authorize(self, request: Request) -> Response:
        """The implicit flow's authorization endpoint (response_type=id_token), with the person
        already signed in at the provider: straight back to the SPA with their ID token."""
        q = request.query_params
        if self.person is None or q.get("response_type") != "id_token":
            return JSONResponse({"error": "unsupported_response_type"}, status_code=400)
        token = self.token(
            q["client_id"], self.person["sub"], nonce=q.get("nonce"), **self.person["claims"]
        )
        fragment = urlencode({"id_token": token, "state": q.get("state", "")})
        return RedirectResponse(f"{q['redirect_uri']}#{fragment}", status_code=302)

    # --- tokens -------------------------------------------------------------------------------

    def claims(self, audience: str, subject: str, **extra: Any) -> dict[str, Any]:
        now = int(time.time())
        return {
            "iss": self.issuer,
            "aud": audience,
            "sub": subject,
            "iat": now,
            "nbf": now,
            "exp": now + 300,
            "jti": uuid.uuid4().hex,  # every token distinct, as a provider's are
            **extra,
        }

    def sign(self, claims: dict[str, Any], kid: str | None = None) -> str:
        kid = kid or self.published[0]
        key = self.keys[kid]
        alg = ALGORITHM_OF[key.key_type]
        return jwt.encode({"alg": alg, "kid": kid}, claims, key, algorithms=[alg])

    def token(self, audience: str, subject: str, kid: str | None = None, **extra: Any) -> str:
        return self.sign(self.claims(audience, subject, **extra), kid)

    # --- forgeries ----------------------------------------------------------------------------

    def unsigned(self, claims: dict[str, Any]) -> str:
        """`alg: none`, no signature."""
        header = {"alg": "none", "typ": "JWT", "kid": self.published[0]}
        return f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}."

    def hmac_with_public_key(self, claims: dict[str, Any]) -> str:
        """HS256 with the provider's public key (PEM) as the HMAC secret: the classic
        algorithm confusion, which a verifier that lets the token choose accepts."""
        kid = self.published[0]
        key = self.keys[kid]
        assert isinstance(key, RSAKey | ECKey | OKPKey)
        secret = key.as_pem(private=False)
        header = {"alg": "HS256", "typ": "JWT", "kid": kid}
        signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
        signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
        return f"{signing_input}.{_b64(signature)}"


def tampered(token: str, **changes: Any) -> str:
    """The token with claims changed and its signature kept."""
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims.update(changes)
    return f"{header}.{_b64(json.dumps(claims).encode())}.{signature}"

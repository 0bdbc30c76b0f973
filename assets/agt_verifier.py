"""Checks the approver assertion the governance server returns from the AGT approval webhook.

Use it as the ``response_verifier`` of AGT's ``VersionedWebhookApproval``::

    from agentmesh.governance.approval_webhook import VersionedWebhookApproval
    from agt_verifier import make_verifier

    transport = VersionedWebhookApproval(
        "https://governance.example/v1/agt/approvals",
        headers={"Authorization": "Bearer " + credential},  # an agt_… credential or agent token
        response_verifier=make_verifier("https://governance.example"),
    )

AGT calls the verifier only for an approval. It returns the approving sponsor's stable id (the
assertion's ``sub``), which AGT records as the approver and checks against the approval
chain's ``allowed_identities``; ``None`` refuses the approval. The assertion must be a compact
JWS signed EdDSA (Ed25519) by a key in the server's JWKS, with ``typ`` ``agt-approval+jwt``,
our issuer, ``aud`` equal to the request's ``agent_id``, the request's
``approval_request_id``, ``action_digest`` and ``input_digest``, ``decision`` ``allow``, and
not expired. Needs only the standard library and ``cryptography`` (which AGT depends on).
"""

from __future__ import annotations

import base64
import json
import threading
import time
import urllib.request
from typing import Any, Callable, Optional

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

ASSERTION_TYP = "agt-approval+jwt"


def _b64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class _Keys:
    """The server's Ed25519 keys by ``kid``, fetched once and again for an unknown ``kid``
    (at most once a minute)."""

    def __init__(self, jwks_url: str, timeout: float) -> None:
        self._url = jwks_url
        self._timeout = timeout
        self._keys: dict[str, Ed25519PublicKey] = {}
        self._fetched = 0.0
        self._lock = threading.Lock()

    def _fetch(self) -> None:
        with urllib.request.urlopen(self._url, timeout=self._timeout) as response:
            document = json.load(response)
        keys = {}
        for jwk in document.get("keys", []):
            if jwk.get("kty") == "OKP" and jwk.get("crv") == "Ed25519" and "kid" in jwk:
                keys[jwk["kid"]] = Ed25519PublicKey.from_public_bytes(_b64url(jwk["x"]))
        self._keys = keys
        self._fetched = time.monotonic()

    def get(self, kid: str) -> Optional[Ed25519PublicKey]:
        with self._lock:
            if kid not in self._keys and (
                not self._fetched or time.monotonic() - self._fetched > 60
            ):
                self._fetch()
            return self._keys.get(kid)


def verify_assertion(
    assertion: str,
    request: Any,
    *,
    issuer: str,
    key_for: Callable[[str], Optional[Ed25519PublicKey]],
    leeway: int = 30,
    now: Optional[float] = None,
) -> str:
    """Returns the approving sponsor's id, or raises ``ValueError`` saying why not."""
    parts = assertion.split(".")
    if len(parts) != 3:
        raise ValueError("not a compact JWS")
    header = json.loads(_b64url(parts[0]))
    if header.get("alg") != "EdDSA" or header.get("typ") != ASSERTION_TYP:
        raise ValueError("not an approver assertion (alg EdDSA, typ agt-approval+jwt)")
    key = key_for(str(header.get("kid", "")))
    if key is None:
        raise ValueError("signed by a key the server does not publish")
    try:
        key.verify(_b64url(parts[2]), f"{parts[0]}.{parts[1]}".encode("ascii"))
    except InvalidSignature:
        raise ValueError("bad signature") from None
    claims = json.loads(_b64url(parts[1]))
    now = time.time() if now is None else now
    expected = {
        "iss": issuer,
        "aud": request.agent_id,
        "approval_request_id": request.approval_request_id,
        "action_digest": request.action_digest,
        "input_digest": request.input_digest(),
        "decision": "allow",
    }
    for name, value in expected.items():
        if claims.get(name) != value:
            raise ValueError(f"{name} does not match the request")
    if not isinstance(claims.get("exp"), int) or claims["exp"] + leeway <= now:
        raise ValueError("expired")
    if not isinstance(claims.get("iat"), int) or claims["iat"] - leeway > now:
        raise ValueError("issued in the future")
    sub = claims.get("sub")
    if not isinstance(sub, str) or not sub:
        raise ValueError("no approver")
    return sub


def make_verifier(
    server: str,
    *,
    issuer: Optional[str] = None,
    jwks_url: Optional[str] = None,
    leeway: int = 30,
    timeout: float = 10.0,
) -> Callable[[dict, Any], Optional[str]]:
    """A ``response_verifier`` for ``VersionedWebhookApproval``: the governance server at
    ``server`` (its issuer, unless ``issuer`` says otherwise), keys from its JWKS."""
    base = server.rstrip("/")
    keys = _Keys(jwks_url or base + "/oauth2/jwks", timeout)

    def verifier(body: dict, request: Any) -> Optional[str]:
        assertion = body.get("identity_assertion")
        if not isinstance(assertion, str):
            return None
        return verify_assertion(
            assertion, request, issuer=issuer or base, key_for=keys.get, leeway=leeway
        )

    return verifier

"""Authlib 1.9 and joserfc 1.8, used as a third party would, against a running governance
server (tests/integration/interop_python.rs runs this with the versions pinned in
assets/requirements-interop.txt). Each step prints one line `step: ok ...` or exits non-zero.

Arguments: a file holding the discovery document of a server behind TLS (its issuer https),
the base URL of a test server, a username and password, a browser client's id and redirect
URI, a resource client's id and secret, and a second resource client's id and the path of its
Ed25519 private key (PEM).
"""

import json
import os
import sys
import time
from html.parser import HTMLParser
from urllib.parse import parse_qs, urlparse

import requests
from authlib.common.security import generate_token
from authlib.integrations.requests_client import OAuth2Session
from authlib.oauth2.rfc7523 import PrivateKeyJWT, private_key_jwt_sign
from authlib.oauth2.rfc8414 import AuthorizationServerMetadata
from authlib.oidc.discovery import OpenIDProviderMetadata
from joserfc import jwt
from joserfc.jwk import KeySet, OKPKey

# The test server listens on plain http on loopback.
os.environ["AUTHLIB_INSECURE_TRANSPORT"] = "1"

(
    metadata_file,
    base,
    username,
    password,
    client_id,
    redirect_uri,
    rs_id,
    rs_secret,
    jwt_rs_id,
    jwt_rs_key,
) = sys.argv[1:11]


def step(name, detail=""):
    print(f"{name}: ok {detail}".rstrip(), flush=True)


# 1. Discovery: Authlib's own validators, RFC 8414 and OpenID Connect Discovery.
document = json.load(open(metadata_file))
AuthorizationServerMetadata(document).validate()
OpenIDProviderMetadata(document).validate()
step("metadata")

# 2. Authorization code with PKCE (S256) through Authlib's session; the browser's part done
#    with requests, as a person would fill the form.
meta = requests.get(base + "/.well-known/openid-configuration", timeout=10).json()
session = OAuth2Session(
    client_id,
    redirect_uri=redirect_uri,
    scope="openid profile governance",
    code_challenge_method="S256",
    token_endpoint_auth_method="none",
)
verifier = generate_token(48)
nonce = generate_token(20)
url, state = session.create_authorization_url(
    meta["authorization_endpoint"], code_verifier=verifier, nonce=nonce
)


class Hidden(HTMLParser):
    def __init__(self):
        super().__init__()
        self.fields = {}

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "input" and a.get("type") == "hidden":
            self.fields[a["name"]] = a.get("value", "")


browser = requests.Session()
page = browser.get(url, timeout=10)
page.raise_for_status()
form = Hidden()
form.feed(page.text)
fields = dict(form.fields, username=username, password=password, decision="allow")
answer = browser.post(
    meta["authorization_endpoint"], data=fields, allow_redirects=False, timeout=10
)
assert answer.status_code == 303, (answer.status_code, answer.text)
callback = answer.headers["Location"]
assert parse_qs(urlparse(callback).query)["iss"] == [meta["issuer"]]
token = session.fetch_token(
    meta["token_endpoint"],
    authorization_response=callback,
    code_verifier=verifier,
)
step("authorization_code", token["token_type"])

# 3. The ID token, verified with joserfc from the JWKS: RS256, issuer, audience, nonce.
keys = KeySet.import_key_set(requests.get(meta["jwks_uri"], timeout=10).json())
decoded = jwt.decode(token["id_token"], keys, algorithms=["RS256"])
registry = jwt.JWTClaimsRegistry(
    iss={"essential": True, "value": meta["issuer"]},
    aud={"essential": True, "value": client_id},
    nonce={"essential": True, "value": nonce},
    sub={"essential": True},
    auth_time={"essential": True},
)
registry.validate(decoded.claims)
assert decoded.header["alg"] == "RS256"
step("id_token", decoded.claims["preferred_username"])

# 4. UserInfo with the access token.
who = session.get(meta["userinfo_endpoint"], timeout=10).json()
assert who["sub"] == decoded.claims["sub"], who
step("userinfo", who["preferred_username"])

# 5. Introspection as a resource server, Authlib's default client_secret_basic.
resource = OAuth2Session(rs_id, rs_secret)
seen = resource.introspect_token(
    meta["introspection_endpoint"], token=token["access_token"]
).json()
assert seen["active"] is True and seen["sub"] == decoded.claims["sub"], seen
step("introspection_basic", seen["username"])

# 6. private_key_jwt with Authlib's defaults: an assertion valid for an hour, which the server
#    refuses (five minutes at most) ...
# Authlib reads a PEM string as an RSA key; an Ed25519 key is passed as joserfc's OKPKey.
key = OKPKey.import_key(open(jwt_rs_key).read())
default = OAuth2Session(
    jwt_rs_id, key, token_endpoint_auth_method=PrivateKeyJWT(alg="EdDSA")
)
refused = default.introspect_token(
    meta["introspection_endpoint"], token=token["access_token"]
)
assert refused.status_code == 401, (refused.status_code, refused.text)
assert refused.json()["error"] == "invalid_client", refused.text
step("private_key_jwt_default_refused", refused.json()["error_description"])


# ... and the configuration the README gives: assertions valid for one minute.
class ShortPrivateKeyJWT(PrivateKeyJWT):
    def sign(self, auth, token_endpoint):
        return private_key_jwt_sign(
            auth.client_secret,
            client_id=auth.client_id,
            token_endpoint=token_endpoint,
            alg=self.alg,
            header=self.headers,
            expires_in=60,
        )


short = OAuth2Session(
    jwt_rs_id, key, token_endpoint_auth_method=ShortPrivateKeyJWT(alg="EdDSA")
)
for _ in range(2):
    seen = short.introspect_token(
        meta["introspection_endpoint"], token=token["access_token"]
    ).json()
    assert seen["active"] is True, seen
step("private_key_jwt_short", str(int(time.time()) > 0))

"""A bearer-token server on 127.0.0.1 and a real `docker-registry` that trusts it.

The token server checks basic credentials and answers `{"token": <JWT>}`,
an RS256 JWT signed with a key generated here (cryptography), with the
signing certificate in the `x5c` header; the registry's `auth: token:` config
names the same certificate as its `rootcertbundle`. It counts token requests.
"""

from __future__ import annotations

import base64
import datetime as dt
import http.server
import json
import threading
import time
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

from tests.integration.registry import Registry, start_registry

SERVICE = "test-registry"
ISSUER = "test-token-issuer"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass
class TokenServer:
    username: str
    password: str
    key: rsa.RSAPrivateKey
    cert: x509.Certificate
    requests: list[str] = field(default_factory=list)   # the scopes asked for
    url: str = ""
    _server: http.server.ThreadingHTTPServer | None = None

    @classmethod
    def start(cls, username: str, password: str) -> TokenServer:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test token signer")])
        now = dt.datetime.now(dt.timezone.utc)
        cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=1))
                .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                .sign(key, hashes.SHA256()))
        server = cls(username, password, key, cert)
        server._serve()
        return server

    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def sign(self, subject: str, scopes: list[str]) -> str:
        header = {"typ": "JWT", "alg": "RS256",
                  "x5c": [base64.b64encode(self.cert.public_bytes(serialization.Encoding.DER)).decode()]}
        now = int(time.time())
        claims = {"iss": ISSUER, "sub": subject, "aud": SERVICE, "iat": now, "nbf": now - 10,
                  "exp": now + 300, "jti": uuid.uuid4().hex, "access": [_access(s) for s in scopes if s]}
        signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
        signature = self.key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        return f"{signing_input}.{_b64(signature)}"

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()

    def _serve(self) -> None:
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
                scopes = query.get("scope", [])
                outer.requests.extend(scopes or [""])
                expected = "Basic " + base64.b64encode(f"{outer.username}:{outer.password}".encode()).decode()
                if self.headers.get("Authorization") != expected:
                    self.send_response(401)
                    self.end_headers()
                    return
                body = json.dumps({"token": outer.sign(outer.username, scopes), "expires_in": 300}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/token"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()


def _access(scope: str) -> dict[str, object]:
    kind, name, actions = scope.split(":") if scope.count(":") == 2 else ("", "", "")
    return {"type": kind, "name": name, "actions": [a for a in actions.split(",") if a]}


def start_token_registry(workdir: Path, tokens: TokenServer) -> Registry:
    """A `docker-registry` on 127.0.0.1 whose auth is `tokens`' bearer tokens."""
    workdir.mkdir(parents=True, exist_ok=True)
    bundle = workdir / "token-signer.pem"
    bundle.write_bytes(tokens.cert_pem())
    return start_registry(workdir, tokens.username, tokens.password, auth={
        "token": {"realm": tokens.url, "service": SERVICE, "issuer": ISSUER, "rootcertbundle": str(bundle)}})

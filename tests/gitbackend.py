"""Serve Git over smart HTTP in tests: relay one request to `git http-backend`
(a CGI program) and write its answer back through an http.server handler."""

from __future__ import annotations

import subprocess
from http.server import BaseHTTPRequestHandler


def relay_to_git_http_backend(handler: BaseHTTPRequestHandler, env: dict[str, str], body: bytes) -> None:
    """Run `git http-backend` with the CGI `env` and `body`; send its response."""
    out = subprocess.run(["git", "http-backend"], input=body, env=env, capture_output=True).stdout
    head, _, payload = out.partition(b"\r\n\r\n")
    status, headers = 200, []
    for line in head.decode().split("\r\n"):
        key, _, value = line.partition(": ")
        if key.lower() == "status":
            status = int(value.split()[0])
        elif key:
            headers.append((key, value))
    handler.send_response(status)
    for key, value in headers:
        handler.send_header(key, value)
    handler.send_header("Content-Length", str(len(payload)))
    handler.end_headers()
    handler.wfile.write(payload)

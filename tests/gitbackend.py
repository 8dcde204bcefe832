"""Serve Git over smart HTTP in tests: relay one request to `git http-backend`
(a CGI program) and write its answer back through an http.server handler;
`serve_git_over_http` is a whole server with basic auth, fetch and push."""

from __future__ import annotations

import base64
import os
import subprocess
import threading
from collections.abc import Collection
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


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


def serve_git_over_http(root: Path, accepted: Collection[tuple[str, str]]) -> ThreadingHTTPServer:
    """Every repository under `root` over smart HTTP on 127.0.0.1, fetch and push,
    for requests with HTTP basic auth matching one of the `accepted` (user,
    password) pairs; anything else gets 401. The caller shuts the server down."""
    allowed = {"Basic " + base64.b64encode(f"{user}:{password}".encode()).decode() for user, password in accepted}

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def _serve(self) -> None:
            if self.headers.get("Authorization") not in allowed:
                self.send_response(401)
                self.send_header("WWW-Authenticate", 'Basic realm="git"')
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            body = self._body()
            path, _, query = self.path.partition("?")
            env = {"PATH": os.environ["PATH"], "GIT_PROJECT_ROOT": str(root), "GIT_HTTP_EXPORT_ALL": "1",
                   "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1",
                   "GIT_CONFIG_PARAMETERS": "'http.receivepack=true'", "REMOTE_USER": "tester",
                   "PATH_INFO": path, "QUERY_STRING": query, "REQUEST_METHOD": self.command,
                   "CONTENT_TYPE": self.headers.get("Content-Type", ""), "CONTENT_LENGTH": str(len(body)),
                   "HTTP_CONTENT_ENCODING": self.headers.get("Content-Encoding", ""),
                   "GIT_PROTOCOL": self.headers.get("Git-Protocol", ""), "REMOTE_ADDR": "127.0.0.1"}
            relay_to_git_http_backend(self, env, body)

        def _body(self) -> bytes:
            if self.headers.get("Transfer-Encoding", "").lower() != "chunked":
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))
            chunks = []
            while size := int(self.rfile.readline().strip(), 16):
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            self.rfile.readline()
            return b"".join(chunks)

        do_GET = do_POST = _serve

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    return server

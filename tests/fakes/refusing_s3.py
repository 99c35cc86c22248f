"""An S3 endpoint that refuses writes of chosen objects, as a bucket policy or an identity without
write access does: a proxy in front of the real S3 server (SeaweedFS) that forwards every request
as it came (its Host header too, so the client's signature still holds) and answers a PUT of a
refused object with S3's own 403 AccessDenied. It can also answer a path's next requests with S3's
503 SlowDown, as an overloaded store does, and it records what it was asked ("METHOD /path?query").
The client, its error and bookwarm's mapping of it are the real ones."""

from __future__ import annotations

import http.client
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ACCESS_DENIED = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code><Message>Access Denied</Message>'
    b"<Resource>%s</Resource><RequestId>refusing-s3</RequestId></Error>"
)
SLOW_DOWN = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SlowDown</Code><Message>Please reduce your request rate.'
    b"</Message><RequestId>refusing-s3</RequestId></Error>"
)
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length"}


def _handler(
    upstream: str, refused: set[str], slow: dict[str, int], seen: list[str]
) -> type[BaseHTTPRequestHandler]:
    host, port = upstream.rsplit(":", 1)

    class Forward(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _forward(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            path = self.path.split("?", 1)[0]
            seen.append(f"{self.command} {self.path}")
            if self.command == "PUT" and path in refused:
                self._answer(403, ACCESS_DENIED % path.encode())
                return
            if slow.get(path, 0) > 0:
                slow[path] -= 1
                self._answer(503, SLOW_DOWN)
                return
            connection = http.client.HTTPConnection(host, int(port), timeout=30)
            try:
                connection.request(self.command, self.path, body=body, headers=dict(self.headers.items()))
                response = connection.getresponse()
                data = response.read()
            finally:
                connection.close()
            self.send_response(response.status)
            for name, value in response.getheaders():
                if name.lower() not in HOP_BY_HOP:
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

        def _answer(self, status: int, answer: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/xml")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(answer)

        do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _forward

        def log_message(self, format: str, *args: object) -> None:  # quiet
            return

    return Forward


@contextmanager
def refusing_s3(
    upstream: str,
    refused: set[str],
    slow: dict[str, int] | None = None,
    seen: list[str] | None = None,
    tls: ssl.SSLContext | None = None,
) -> Iterator[str]:
    """Yields the proxy's endpoint (host:port). ``refused`` ("/bucket/key" paths) and ``slow`` (path ->
    how many of its next requests get a 503) may change meanwhile; ``seen`` collects each request;
    with ``tls`` (a server context) the proxy speaks HTTPS, the store behind it plain HTTP."""
    handler = _handler(upstream, refused, {} if slow is None else slow, [] if seen is None else seen)
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()

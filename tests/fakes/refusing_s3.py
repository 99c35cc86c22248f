"""An S3 endpoint that refuses writes of chosen objects, as a bucket policy or an identity without
write access does: a proxy in front of the real S3 server (SeaweedFS) that forwards every request
as it came (its Host header too, so the client's signature still holds) and answers a PUT of a
refused object with S3's own 403 AccessDenied. The client, its error and bookwarm's mapping of it
are the real ones."""

from __future__ import annotations

import http.client
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ACCESS_DENIED = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code><Message>Access Denied</Message>'
    b"<Resource>%s</Resource><RequestId>refusing-s3</RequestId></Error>"
)
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length"}


def _handler(upstream: str, refused: set[str]) -> type[BaseHTTPRequestHandler]:
    host, port = upstream.rsplit(":", 1)

    class Forward(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _forward(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            path = self.path.split("?", 1)[0]
            if self.command == "PUT" and path in refused:
                answer = ACCESS_DENIED % path.encode()
                self.send_response(403)
                self.send_header("Content-Type", "application/xml")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)
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

        do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _forward

        def log_message(self, format: str, *args: object) -> None:  # quiet
            return

    return Forward


@contextmanager
def refusing_s3(upstream: str, refused: set[str]) -> Iterator[str]:
    """Yields the proxy's endpoint (host:port); ``refused`` ("/bucket/key" paths) may change meanwhile."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(upstream, refused))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()

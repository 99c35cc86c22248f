"""One TLS context per process and trust setting, for the HTTP clients bookwarm makes per call.

Building a verified context loads the whole CA bundle: about 20 ms of CPU here. httpx does it for
every client made without one, and Prefect's client for every `get_client()`, even for an
``http://`` address that never uses it. A client made per call (a run's state probe every 2 s, a
health check, a poll of shard states) paid that on every call: measured in the test suite, a
work-pool test's run processes spent about a tenth of their CPU building contexts (session 17).
A context is safe to share between clients, connections and threads.
"""

from __future__ import annotations

import functools
import ssl

import httpx


@functools.cache
def tls_context(cafile: str | None = None, verify: bool = True) -> ssl.SSLContext:
    """The verified context of ``cafile`` (None: certifi's bundle, as httpx and Prefect use), or an
    unverified one when ``verify`` is False (Prefect's PREFECT_API_TLS_INSECURE_SKIP_VERIFY)."""
    if not verify:
        return httpx.create_ssl_context(verify=False)
    if cafile:
        return ssl.create_default_context(cafile=cafile)
    return httpx.create_ssl_context()


@functools.cache
def system_tls_context() -> ssl.SSLContext:
    """The system's CA store (and OpenSSL's SSL_CERT_FILE / SSL_CERT_DIR): what minio's urllib3 pool
    verified the object store with, so a store behind a private CA the machine trusts stays trusted."""
    return ssl.create_default_context()

"""One TLS context per process and trust setting: the HTTP clients made per call share it instead
of loading the CA bundle each time (about 20 ms of CPU a client)."""

from __future__ import annotations

import ssl

from bookwarm.tls import tls_context


def test_one_context_per_trust_setting_verified_unless_asked_otherwise() -> None:
    verified, unverified = tls_context(), tls_context(verify=False)
    assert verified is tls_context() and unverified is tls_context(verify=False)
    assert verified.verify_mode == ssl.CERT_REQUIRED and verified.check_hostname
    assert unverified.verify_mode == ssl.CERT_NONE and not unverified.check_hostname
    assert verified.cert_store_stats()["x509_ca"] > 0  # the CA bundle is loaded


def test_the_prefect_api_clients_follow_prefects_tls_settings() -> None:
    """The probes and polls of tasks.prefect_api share one context, built as Prefect's own client
    would build it: verified by default, unverified when Prefect is told to skip verification."""
    from prefect.settings import PREFECT_API_TLS_INSECURE_SKIP_VERIFY, temporary_settings

    from tasks.prefect_api import _tls

    assert _tls() is _tls() and _tls().verify_mode == ssl.CERT_REQUIRED
    with temporary_settings({PREFECT_API_TLS_INSECURE_SKIP_VERIFY: True}):
        assert _tls().verify_mode == ssl.CERT_NONE

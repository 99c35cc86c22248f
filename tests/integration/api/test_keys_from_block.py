"""API keys from the `bookwarm-api` block (as `bookwarm config --register-blocks` saves it): every
API process reads them, none is in its environment. A real Prefect server holds the block."""

from __future__ import annotations

import os

import httpx
import pytest

from bookwarm.api.access import new_key
from bookwarm.services.process import stop
from tests.integration.api.conftest import start_api


@pytest.fixture
def api_block(prefect_api: str):
    """The block saved on the session's Prefect server, and deleted after (other API processes of
    this worker read the same server)."""
    from blocks.bookwarm_blocks import BookwarmApi

    key, digest = new_key()
    BookwarmApi(key_hashes=digest, client_rps=0).save("bookwarm-api", overwrite=True)
    try:
        yield key
    finally:
        httpx.delete(f"{prefect_api}/block_documents/{_block_id(prefect_api)}", timeout=10)


def _block_id(api: str) -> str:
    answer = httpx.post(
        f"{api}/block_documents/filter",
        json={"block_documents": {"name": {"any_": ["bookwarm-api"]}}},
        timeout=10,
    )
    return str(answer.json()[0]["id"])


@pytest.mark.parametrize("workers", ["2"])  # two processes: each must read the block
def test_keys_come_from_the_block_in_every_api_process(
    api_block, services, prefect_api, tmp_path, workers
) -> None:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("BOOKWARM_", "PREFECT_API_URL"))},
        **services.env(),
        "PREFECT_API_URL": prefect_api,
        "BOOKWARM_HOME": str(tmp_path),
        "BOOKWARM_REDIS_PREFIX": f"keyblock{os.getpid()}:",
    }
    url, proc = start_api(env, tmp_path / "api.log", "--workers", workers)
    try:
        # a write needs a key: none is 401, the block's key is let through (to the request's own check)
        for _ in range(8):  # with 2 processes, both answer over a few connections
            with httpx.Client(base_url=url, timeout=30) as client:
                refused = client.post("/v1/warm", json={"names": ["Neil Gaiman"]})
                wrong = client.post("/v1/warm", json={"names": []}, headers={"Authorization": "Bearer nope"})
                right = client.post(
                    "/v1/warm", json={"names": []}, headers={"Authorization": f"Bearer {api_block}"}
                )
            assert refused.status_code == 401 and wrong.status_code == 401, (refused.text, wrong.text)
            assert right.status_code not in (401, 403), right.text
        assert api_block not in (tmp_path / "api.log").read_text()
    finally:
        stop(proc.pid, 5.0)

"""The source policy: what a run may read, decided before anything is opened."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest

from bookwarm.errors import SourceError
from bookwarm.sources import PREFECT_PARAMETER_LIMIT, SourcePolicy, check_source, read_allowed, upload_key

SECRET = "FAKE-SECRET-7f3a9c1e"


@pytest.fixture
def layout(tmp_path: Path) -> tuple[SourcePolicy, Path, Path]:
    root = tmp_path / "root"
    outside = tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (root / "library.csv").write_text("Title,Author\nDune,Frank Herbert\n", encoding="utf-8")
    (outside / "secret.csv").write_text(f"key={SECRET},Author\n", encoding="utf-8")
    os.symlink(outside / "secret.csv", root / "link.csv")
    return SourcePolicy(bucket="bookwarm", roots=(root,)), root, outside


def refused(source: str, policy: SourcePolicy, match: str) -> str:
    with pytest.raises(SourceError, match=match) as info:
        check_source(source, policy)
    message = str(info.value)
    assert SECRET not in message and "\n" not in message
    return message


def test_a_file_under_a_root_is_read(layout):
    policy, root, _ = layout
    allowed = check_source(str(root / "library.csv"), policy)
    assert allowed.kind == "path" and read_allowed(allowed, None, 1000).startswith(b"Title,Author")
    assert allowed.label == "library.csv"


@pytest.mark.parametrize(
    "name",
    ["/etc/passwd", "/etc/shadow", "{outside}/secret.csv", "{root}/../outside/secret.csv", "{root}/link.csv"],
)
def test_paths_outside_the_roots_are_refused_without_quoting(layout, name):
    policy, root, outside = layout
    source = name.format(root=root, outside=outside)
    message = refused(source, policy, "refused")
    assert "passwd" not in message and "secret" not in message and str(outside) not in message


def test_no_roots_means_no_local_paths(layout):
    _, root, _ = layout
    refused(str(root / "library.csv"), SourcePolicy(bucket="bookwarm"), "BOOKWARM_SOURCE_ROOTS .none set")


@pytest.mark.parametrize(
    "uri",
    [
        "s3://other-bucket/uploads/lib.csv",
        "s3://bookwarm/secrets/lib.csv",
        "s3://bookwarm/uploads/../secrets/lib.csv",
        "s3://bookwarm/uploads//lib.csv",
        "s3://bookwarm/uploads/",
        "s3://bookwarm/uploadsX/lib.csv",
        "s3://bookwarm/uploads/a b.csv",
    ],
)
def test_objects_outside_the_uploads_prefix_are_refused(uri):
    message = refused(uri, SourcePolicy(bucket="bookwarm"), "refused: s3:// sources must be objects under")
    rest = uri.removeprefix("s3://bookwarm/uploads/").removeprefix("s3://")
    assert not rest or rest not in message.replace("s3://bookwarm/uploads/", "")


def test_an_upload_is_accepted():
    allowed = check_source("s3://bookwarm/uploads/ab12/library.csv", SourcePolicy(bucket="bookwarm"))
    assert allowed.kind == "s3" and allowed.object_key == "uploads/ab12/library.csv"


def test_base64_by_rule():
    csv = b"Title,Author\nDune,Frank Herbert\n"
    policy = SourcePolicy(bucket="bookwarm")
    for text in (base64.b64encode(csv).decode(), "base64:" + base64.urlsafe_b64encode(csv).decode()):
        assert check_source(text, policy).data == csv
    refused("SGVsbG8=X", policy, "not valid base64")
    refused("library.csv", policy, "none of them .a relative path is not accepted")
    refused("~/library.csv", policy, "none of them")
    refused("A" * (PREFECT_PARAMETER_LIMIT + 4), policy, "over Prefect's 512 KB parameter limit; upload")
    refused("  ", policy, "empty source")


@pytest.mark.parametrize("name", ["../../etc/passwd", "a b/..\\c.csv", "....", "\x00.csv", "é.csv"])
def test_upload_keys_are_safe_whatever_the_file_name(name):
    key = upload_key(Path(name), b"data", "uploads/")
    assert key.startswith("uploads/") and ".." not in key.split("/")
    assert check_source(f"s3://bookwarm/{key}", SourcePolicy(bucket="bookwarm")).object_key == key

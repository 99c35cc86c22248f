"""Which dump file is which: OpenLibrary names them ``ol_dump_{kind}_{YYYY-MM-DD|latest}.txt.gz``."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from bookwarm.errors import DumpError

KINDS = ("authors", "works", "editions", "redirects")
_NAME = re.compile(r"^ol_dump_(authors|works|editions|redirects)_(\d{4}-\d{2}-\d{2}|latest)\.txt(\.gz)?$")


@dataclass
class DumpFiles:
    authors: Path
    works: Path
    editions: Path | None = None
    redirects: Path | None = None
    date: str | None = None  # from the file names, when they carry one

    def to_dict(self) -> dict[str, str | None]:
        return {k: (str(v) if isinstance(v, Path) else v) for k, v in self.__dict__.items()}


def find_files(paths: list[Path]) -> DumpFiles:
    """The dumps among ``paths`` (files, or directories holding them): authors and works are
    required; the newest dated file of each kind wins in a directory holding several months."""
    found: dict[str, tuple[str, Path]] = {}
    for path in paths:
        if path.is_dir():
            candidates = sorted(path.iterdir())
        elif path.exists():
            candidates = [path]
        else:
            raise DumpError(f"no such dump file or directory: {path}")
        named = 0
        for candidate in candidates:
            match = _NAME.match(candidate.name)
            if match is None:
                continue
            named += 1
            kind, stamp = match.group(1), match.group(2)
            if kind not in found or stamp > found[kind][0]:
                found[kind] = (stamp, candidate)
        if not named:
            raise DumpError(
                f"{path} holds no OpenLibrary dump: expected files named like ol_dump_authors_2026-09-30.txt.gz"
            )
    missing = [k for k in ("authors", "works") if k not in found]
    if missing:
        raise DumpError(f"the {' and '.join(missing)} dump is missing (ol_dump_{missing[0]}_….txt.gz)")
    dates = {stamp for stamp, _ in found.values() if stamp != "latest"}
    return DumpFiles(
        authors=found["authors"][1],
        works=found["works"][1],
        editions=found["editions"][1] if "editions" in found else None,
        redirects=found["redirects"][1] if "redirects" in found else None,
        date=max(dates) if dates else None,
    )

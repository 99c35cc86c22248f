"""`bookwarm blocks register`: register the block types and save one block per section.

Values come from the current settings (environment, local services, defaults), so running it once
after `bookwarm services up` gives a working set that can then be edited in the Prefect UI.
"""

from __future__ import annotations

from dataclasses import asdict

from blocks.bookwarm_blocks import BLOCK_NAMES
from bookwarm.settings import Settings


def register_blocks(settings: Settings, *, overwrite: bool = False) -> list[str]:
    """Save the blocks; return the names saved. Existing blocks are kept unless ``overwrite``.

    Synchronous on purpose (the CLI): inside an event loop Prefect's load/save return coroutines.
    """
    saved = []
    for section, (cls, name) in BLOCK_NAMES.items():
        cls.register_type_and_schema()
        values = {k: v for k, v in asdict(getattr(settings, section)).items() if v is not None}
        if section in {"redis", "s3"} and not (values.get("url") or values.get("endpoint")):
            continue  # nothing to point at yet
        try:
            cls.load(name)
            exists = True
        except ValueError:
            exists = False
        if exists and not overwrite:
            continue
        cls(**values).save(name, overwrite=True)
        saved.append(name)
    return saved

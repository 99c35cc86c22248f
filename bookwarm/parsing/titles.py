"""Normalised title keys: how works are matched across providers and how `search:title:` keys read."""

from __future__ import annotations

import re
import unicodedata

_SERIES = re.compile(r"\s*[\(\[][^)\]]*[#\d][^)\]]*[\)\]]\s*$")  # "(The Locked Tomb #1)"
_NON_WORD = re.compile(r"[^\w]+")


def title_key(title: str) -> str:
    """'The Left Hand of Darkness: A Novel (Hainish #4)' -> 'the-left-hand-of-darkness'."""
    text = unicodedata.normalize("NFKC", title)
    text = _SERIES.sub("", text)
    text = text.split(":", 1)[0] if ":" in text[3:] else text
    folded = unicodedata.normalize("NFKD", text.casefold())
    folded = "".join(ch for ch in folded if not unicodedata.combining(ch))
    return _NON_WORD.sub("-", folded).strip("-_")

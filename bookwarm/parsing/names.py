"""Author-name normalisation: one display name and one canonical key per person.

The original system only trimmed names, so "J.K. Rowling" and "J. K. Rowling" were warmed twice.
The key is what deduplicates authors across rows, files and runs, and what every cache key of an
author is built from, so it must be stable: change it only with a cache migration.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from dataclasses import dataclass
from typing import Literal

NameStyle = Literal["first_last", "last_first", "auto"]

_TOKEN = re.compile(r"[^\W_]+")
# Two letters in a row that are not lower-case ASCII: the only way a run of initials ("JK") can occur.
_MAYBE_INITIALS = re.compile(r"[^\W\d_a-z]{2}")
_INLINE_ROLE = re.compile(r"^(?P<name>.*?)\s*\((?P<role>[^()]*)\)\s*$")
_SUFFIXES = {"jr", "sr", "ii", "iii", "iv", "v", "phd", "md", "esq"}
# The same suffixes as a regex, for gluing them to their name before a list is split in polars.
SUFFIX_AFTER_SEPARATOR = r"\s*,\s*((?i:jr|sr|ii|iii|iv|v|ph\.?\s?d|m\.?\s?d|esq)\.?)(\s*(?:,|$))"
# "O'Reilly & Associates", "Smith & Sons": one name (a firm), not two people. Its "&" is hidden from
# the list split by this stand-in and put back after.
COMPANY_AMPERSAND = r"\s*&\s*((?i:associates|co|company|sons|partners)\.?)(\s*(?:[,;|&]|$))"
AMPERSAND_STAND_IN = "\x1e"
_PARTICLES = {"de", "da", "del", "della", "der", "di", "du", "la", "le", "van", "von", "st", "saint"}
JUNK_KEYS = {
    "",
    "unknown",
    "anonymous",
    "anon",
    "various",
    "various-authors",
    "n-a",
    "na",
    "none",
    "unknown-author",
    "author-unknown",
    "et-al",
    "not-applicable",
}

_ROLE_WORDS: dict[str, str] = {}
for _canonical, _words in {
    # LibraryThing writes roles in the user's language: Autor, Auteur, Autore, Autorin, ...
    "author": (
        "author",
        "authors",
        "co-author",
        "coauthor",
        "writer",
        "creator",
        "primary author",
        "autor",
        "autora",
        "autorin",
        "auteur",
        "auteure",
        "autore",
        "autrice",
        "forfatter",
        "författare",
        "schrijver",
    ),
    "translator": (
        "translator",
        "translation",
        "translated by",
        "trans",
        "tr",
        "traductor",
        "traductora",
        "traducteur",
        "traductrice",
        "traduttore",
        "traduttrice",
        "tradutor",
        "übersetzer",
        "übersetzerin",
        "vertaler",
        "översättare",
    ),
    "narrator": ("narrator", "narrated by", "reader", "read by", "performer", "sprecher", "narrateur"),
    "illustrator": (
        "illustrator",
        "illustrateur",
        "illustratrice",
        "illustratore",
        "ilustrador",
        "illustratorin",
        "illustrations",
        "illustrated by",
        "artist",
        "cover artist",
        "cover design",
        "cover designer",
        "photographer",
        "photographs",
    ),
    "editor": (
        "editor",
        "editors",
        "ed",
        "eds",
        "edited by",
        "compiler",
        "editor-in-chief",
        "herausgeber",
        "herausgeberin",
        "curatore",
    ),
    "contributor": (
        "contributor",
        "foreword",
        "introduction",
        "afterword",
        "preface",
        "commentary",
        "notes",
        "adapter",
        "adaptation",
    ),
}.items():
    for _word in _words:
        _ROLE_WORDS[_word] = _canonical

DEFAULT_WARM_ROLES = frozenset({"author"})


@dataclass(frozen=True, slots=True)
class AuthorName:
    """One person named in a cell: display name as written (tidied), canonical key, role."""

    name: str
    key: str
    role: str = "author"


def tidy(raw: str) -> str:
    """NFKC, collapse whitespace, trim stray separators: the display form of a name."""
    text = raw if raw.isascii() else unicodedata.normalize("NFKC", raw)  # ASCII is already NFKC
    return " ".join(text.split()).strip(" ,;")


def author_key(name: str) -> str:
    """Canonical key: accents folded, case folded, initials unified, words joined by '-'.

    "J.K. Rowling", "J. K. Rowling" and "JK Rowling" all give "j-k-rowling". A run of 2-3 capitals
    before the surname is read as initials unless the whole name is in capitals ("ED CATMULL").
    """
    text = name if name.isascii() else unicodedata.normalize("NFKC", name)
    shouting = text.isupper()
    tokens = _TOKEN.findall(text)
    if shouting or not _MAYBE_INITIALS.search(text):  # most names: no run of capitals to split
        return _fold("-".join(tokens))
    parts: list[str] = []
    for index, token in enumerate(tokens):
        is_initials = (
            not shouting
            and index < len(tokens) - 1
            and 2 <= len(token) <= 3
            and token.isalpha()
            and token.isupper()
        )
        parts.extend(token if is_initials else [token])
    return _fold("-".join(parts))


def _fold(text: str) -> str:
    """Case and accents folded: the key compares names, the display name keeps them."""
    folded = text.casefold()
    if folded.isascii():
        return folded
    decomposed = unicodedata.normalize("NFKD", folded)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def is_junk(key: str) -> bool:
    return key in JUNK_KEYS


@functools.lru_cache(maxsize=1024)  # a handful of distinct roles, asked once per name
def canonical_role(raw: str | None) -> str:
    """Map a free-text role to author/translator/narrator/illustrator/editor/contributor.

    Anything unrecognised is 'contributor': kept with the book, not warmed by default.
    """
    if not raw or not raw.strip():
        return "author"
    return _ROLE_WORDS.get(_role_word(raw), "contributor")


def _role_word(raw: str) -> str:
    return raw.strip().strip(".").casefold()


def is_role(raw: str) -> bool:
    return _role_word(raw) in _ROLE_WORDS


def flip_last_first(name: str) -> str:
    """'King, Stephen' -> 'Stephen King'; 'King, Martin Luther, Jr.' -> 'Martin Luther King Jr.'."""
    parts = [p.strip() for p in name.split(",") if p.strip()]
    if len(parts) < 2:
        return name
    suffixes = [p for p in parts[2:] if _is_suffix(p)]
    others = [p for p in parts[2:] if not _is_suffix(p)]
    return " ".join([parts[1], *others, parts[0], *suffixes])


def _is_suffix(part: str) -> bool:
    return re.sub(r"[.\s]", "", part).casefold() in _SUFFIXES


def _looks_like_last_first(cell: str) -> bool:
    """'Smith, Mark' or 'Le Guin, Ursula K.' but not 'Tamsyn Muir, Aaron Reed'."""
    parts = [p.strip() for p in cell.split(",")]
    if len(parts) != 2 or not parts[0] or not parts[1] or _is_suffix(parts[1]):
        return False
    surname_words = parts[0].split()
    return len(surname_words) == 1 or (len(surname_words) == 2 and surname_words[0].casefold() in _PARTICLES)


def _split_list(cell: str, separator: str) -> list[str]:
    """Split on the format's separator, gluing suffixes ('Jr.') back onto the name before them."""
    if "&" in cell:
        cell = re.sub(COMPANY_AMPERSAND, rf" {AMPERSAND_STAND_IN} \1\2", cell)
    pieces = [p.strip() for p in re.split(separator, cell)] if separator else [cell.strip()]
    pieces = [p.replace(AMPERSAND_STAND_IN, "&") for p in pieces]
    out: list[str] = []
    for piece in pieces:
        if not piece:
            continue
        if out and _is_suffix(piece):
            out[-1] = f"{out[-1]} {piece}"
        else:
            out.append(piece)
    return out


def parse_cell(
    cell: str | None,
    *,
    style: NameStyle = "first_last",
    separator: str = "",
    role: str = "author",
    roles_cell: str | None = None,
) -> tuple[AuthorName, ...]:
    """Every person named in one cell, junk dropped, in cell order, without repeats.

    ``separator`` is a regex for multi-author cells; ``roles_cell`` carries parallel roles split
    the same way (LibraryThing's 'Secondary Author Roles'); inline '(Narrator)' roles win.
    """
    if not cell or not cell.strip():
        return ()
    if style == "first_last" and not separator and not roles_cell and "(" not in cell:
        name = tidy(cell)  # the common case: one plain name (each distinct name of a library passes here)
        key = author_key(name)
        return () if is_junk(key) else (AuthorName(name, key, canonical_role(role)),)
    text = tidy(cell)
    if style == "last_first":
        chunks = _split_list(text, separator) if separator and separator != "," else [text]
    elif style == "auto" and _looks_like_last_first(text):
        chunks, style = [text], "last_first"
    else:
        chunks = _split_list(text, separator)
    roles = _split_roles(roles_cell, separator, len(chunks))
    seen: set[str] = set()
    out: list[AuthorName] = []
    for chunk, chunk_role in zip(chunks, roles, strict=True):
        name, inline_role = chunk, None
        match = _INLINE_ROLE.match(chunk) if "(" in chunk else None
        if match and is_role(match["role"]):
            name, inline_role = match["name"], match["role"]
        elif match:  # "W. J. King (professor.)", "Shneur Zalman (of Lyady)": a qualifier, not a role
            name = match["name"]
        if style == "last_first":
            name = flip_last_first(name)
        name = tidy(name)
        key = author_key(name)
        if is_junk(key) or key in seen:
            continue
        seen.add(key)
        out.append(AuthorName(name, key, canonical_role(inline_role or chunk_role or role)))
    return tuple(out)


def _split_roles(roles_cell: str | None, separator: str, count: int) -> list[str | None]:
    if not roles_cell:
        return [None] * count
    roles: list[str | None] = [r.strip() or None for r in re.split(separator or r"\|", roles_cell)]
    return (roles + [None] * count)[:count]

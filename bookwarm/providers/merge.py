"""Merge the providers' works into one Bibliography.

OpenLibrary's works are the spine (authoritative list); Google Books and ISBNdb fill in what it
lacks and add works it does not know. Works are matched by OpenLibrary work key, then by any shared
ISBN-13, then by normalised title. Each filled field records its provider in ``sources``.
"""

from __future__ import annotations

import re
from collections import Counter

from bookwarm import clock
from bookwarm.providers.http import CallStats
from bookwarm.providers.models import Bibliography, Identity, ProviderResult, Work

REVIEW_BELOW = 0.6  # identity confidence under which a match is flagged, not cached as the author
ADD_UNMATCHED_FROM = 0.9  # confidence needed to add works only Google Books/ISBNdb know
_NON_CORE = re.compile(
    r"\b(study guide|sparknotes|cliffsnotes|cliff'?s notes|summary (of|and analysis)|analysis of|"
    r"box(ed)? set|boxset|collection set|books? \d+\s*-\s*\d+|workbook for|quicklet|bookrags)\b",
    re.IGNORECASE,
)
_FILLABLE = ("first_publish_year", "cover", "description")


def merge(
    name: str,
    key: str,
    identity: Identity | None,
    results: list[ProviderResult],
    stats: CallStats,
    *,
    core_only: bool = False,
) -> Bibliography:
    ol = next((r for r in results if r.provider == "openlibrary"), None)
    works: list[Work] = list(ol.works) if ol and ol.ok else []
    by_isbn = {i: w for w in works for i in w.isbn13}
    by_title = {w.title_key: w for w in works}
    # Google Books and ISBNdb match by name only: with a namesake around, their unmatched works may
    # be the other person's, so they only enrich OpenLibrary's works.
    add_unmatched = identity is not None and identity.confidence >= ADD_UNMATCHED_FROM
    for result in results:
        if result.provider == "openlibrary" or not result.ok:
            continue
        for work in result.works:
            target = next((by_isbn[i] for i in work.isbn13 if i in by_isbn), None) or by_title.get(
                work.title_key
            )
            if target is None:
                if not add_unmatched:
                    continue
                works.append(work)
                target = work
            else:
                _fill(target, work)
            by_isbn.update({i: target for i in target.isbn13})
            by_title.setdefault(target.title_key, target)
    if core_only:
        works = core_works(works)
    works.sort(key=lambda w: (w.first_publish_year or 9999, w.title_key))

    ol_ok = bool(ol and ol.ok)
    failed = [r for r in results if not r.ok and not r.skipped]
    if identity is None:
        identity = Identity(name=name, key=key, openlibrary_key=None, confidence=0.0)
        status = "unknown" if ol_ok else "partial"
    elif identity.confidence < REVIEW_BELOW:
        status = "review"
    else:
        status = "partial" if failed else "ok"
    return Bibliography(
        author=identity,
        works=works if status != "unknown" else [],
        complete=bool(ol is not None and ol.ok and ol.complete and identity.openlibrary_key),
        status=status,
        sources={
            r.provider: {
                "ok": r.ok,
                "works": len(r.works),
                "complete": r.complete,
                "skipped": r.skipped,
                "error": r.error,
            }
            for r in results
        },
        calls=dict(stats.calls),
        latency_s=dict(stats.seconds),
        fetched_at=clock.iso_now(),
    )


def _fill(target: Work, other: Work) -> None:
    for field in _FILLABLE:
        if getattr(target, field) in (None, "") and getattr(other, field) not in (None, ""):
            setattr(target, field, getattr(other, field))
            target.provenance[field] = other.source
    new_isbns = [i for i in other.isbn13 if i not in target.isbn13]
    if new_isbns:
        target.isbn13.extend(new_isbns)
        target.provenance.setdefault("isbn13", other.source)
    if other.categories and not target.categories:
        target.categories = list(other.categories)
        target.provenance["categories"] = other.source
    if other.language and not target.language:
        target.language = list(other.language)


def core_works(works: list[Work]) -> list[Work]:
    """The original design's 'core works': no study guides, summaries or box sets, and no
    other-language copies that only Google Books or ISBNdb know (OpenLibrary works already group
    editions in every language)."""
    languages = Counter(lang for w in works for lang in w.language[:1])
    main = languages.most_common(1)[0][0] if languages else None
    kept = []
    for work in works:
        if _NON_CORE.search(work.title):
            continue
        if (
            work.source != "openlibrary"
            and main
            and work.language
            and main not in work.language
            and not _same_lang(main, work.language)
        ):
            continue
        kept.append(work)
    return kept


_ISO3 = {
    "eng": "en",
    "fre": "fr",
    "fra": "fr",
    "spa": "es",
    "ger": "de",
    "deu": "de",
    "ita": "it",
    "jpn": "ja",
    "por": "pt",
}


def _same_lang(main: str, languages: list[str]) -> bool:
    norm = _ISO3.get(main, main)
    return any(_ISO3.get(lang, lang) == norm for lang in languages)

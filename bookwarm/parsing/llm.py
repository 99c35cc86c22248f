"""Gemini fallback for library files no rule understands: chunked, validated, never truncated.

The original design sent a whole file in one call capped at 8,192 output tokens, so large
libraries were silently cut short. Here the file's lines go to Gemini in chunks small enough that
no answer can be truncated (an answer that still stops at MAX_TOKENS is split and asked again),
with structured output (a list of ``{row, title, authors, isbn}``), a few chunks at a time. Every
answer is checked by row number: rows the model dropped or invented are reported, never accepted.

google-genai errors are mapped here to bookwarm's error tree with messages that never carry the key.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from pydantic import BaseModel

from bookwarm.errors import ConfigError, InputError, ProviderUnavailable
from bookwarm.settings import GeminiSettings

if TYPE_CHECKING:  # google-genai is imported where Gemini is called: most parses never need it
    from google import genai
    from google.genai import types

log = logging.getLogger("bookwarm.gemini")

PROMPT = """You extract books from lines of a personal library file that no parser understood.
Each input line starts with its row number, then the raw text: a CSV row, a hand-typed entry such as
"Title by Author" or "Author - Title", or a header. For every line that names a book, return one object
with the SAME row number, the title, the list of authors (people only, as written, one name each) and the
ISBN if the line has one (else an empty string). Skip header lines and lines that name no book.
Never invent rows, never merge rows, never change row numbers."""


class BookRow(BaseModel):
    row: int
    title: str
    authors: list[str]
    isbn: str = ""


@dataclass(frozen=True)
class LLMLimits:
    rows_per_chunk: int = 100
    concurrency: int = 4
    max_rows: int = 20_000
    max_tokens_per_file: int = 2_000_000
    max_output_tokens: int = 8192
    attempts: int = 4  # for 429 and 5xx; malformed JSON is retried once


@dataclass
class LLMResult:
    rows: list[BookRow] = field(default_factory=list)
    rejected: dict[int, str] = field(default_factory=dict)  # row -> reason
    calls: int = 0


def estimate_tokens(lines: list[tuple[int, str]]) -> int:
    """~4 characters a token in, ~40 tokens a row out: enough to refuse absurd files before any call."""
    return sum(len(text) + 8 for _, text in lines) // 4 + 40 * len(lines)


class GeminiFallback:
    """Parse text lines with Gemini. One instance per parse; its client lives for that parse only."""

    def __init__(self, settings: GeminiSettings, limits: LLMLimits | None = None) -> None:
        if settings.api_key is None or not settings.api_key.get_secret_value():
            raise ConfigError(
                "this file needs the Gemini fallback (no parsing rule understands it), but no Gemini API key "
                "is configured: set BOOKWARM_GEMINI_API_KEY or the bookwarm-gemini block"
            )
        self.settings = settings
        self._api_key = settings.api_key  # checked above: a SecretStr with a value
        self.limits = limits or LLMLimits(
            rows_per_chunk=settings.chunk_rows,
            concurrency=settings.concurrency,
            max_rows=settings.max_rows,
            max_tokens_per_file=settings.max_tokens,
        )

    def check_budget(self, lines: list[tuple[int, str]]) -> None:
        if len(lines) > self.limits.max_rows:
            raise InputError(
                f"{len(lines):,} rows is over the Gemini fallback's limit of {self.limits.max_rows:,} rows"
            )
        tokens = estimate_tokens(lines)
        if tokens > self.limits.max_tokens_per_file:
            raise InputError(
                f"about {tokens:,} tokens is over the Gemini fallback's limit of {self.limits.max_tokens_per_file:,} per file"
            )

    def parse(self, lines: list[tuple[int, str]]) -> LLMResult:
        """Synchronous entry point (runs its own event loop: call it from a thread inside async code)."""
        self.check_budget(lines)
        return asyncio.run(self.parse_async(lines))

    async def parse_async(self, lines: list[tuple[int, str]]) -> LLMResult:
        from google import genai
        from google.genai import types

        options = types.HttpOptions(
            base_url=self.settings.base_url or None,
            timeout=120_000,
            retry_options=types.HttpRetryOptions(attempts=1),  # retries are ours, below
        )
        client = genai.Client(api_key=self._api_key.get_secret_value(), http_options=options)
        config = types.GenerateContentConfig(
            system_instruction=PROMPT,
            response_mime_type="application/json",
            response_schema=list[BookRow],
            temperature=0.0,
            max_output_tokens=self.limits.max_output_tokens,
        )
        gate = asyncio.Semaphore(self.limits.concurrency)
        chunks = [
            lines[i : i + self.limits.rows_per_chunk]
            for i in range(0, len(lines), self.limits.rows_per_chunk)
        ]
        result = LLMResult()
        try:
            answers = await asyncio.gather(
                *(self._chunk(client, config, gate, chunk, result) for chunk in chunks)
            )
        finally:
            await client.aio.aclose()
        for answer in answers:  # merged in row order
            result.rows.extend(answer)
        result.rows.sort(key=lambda r: r.row)
        return result

    async def _chunk(
        self,
        client: genai.Client,
        config: types.GenerateContentConfig,
        gate: asyncio.Semaphore,
        chunk: list[tuple[int, str]],
        result: LLMResult,
    ) -> list[BookRow]:
        wanted = {row for row, _ in chunk}
        prompt = "\n".join(f"{row}: {text}" for row, text in chunk)
        malformed_retries = 1
        attempt = 0
        while True:
            attempt += 1
            async with gate:
                result.calls += 1
                try:
                    response = await client.aio.models.generate_content(
                        model=self.settings.model, contents=prompt, config=config
                    )
                except Exception as exc:
                    delay = self._classify(exc, attempt)
                    log.warning("gemini: %s (attempt %d), retrying in %.1fs", _describe(exc), attempt, delay)
                    await asyncio.sleep(delay)
                    continue
            candidates = response.candidates or []
            finish = str(
                candidates[0].finish_reason.value if candidates and candidates[0].finish_reason else ""
            )
            if finish == "MAX_TOKENS" and len(chunk) > 1:  # never truncate: ask again in halves
                half = len(chunk) // 2
                parts = await asyncio.gather(
                    self._chunk(client, config, gate, chunk[:half], result),
                    self._chunk(client, config, gate, chunk[half:], result),
                )
                return parts[0] + parts[1]
            blocked = _blocked_reason(response, finish)
            if blocked:
                result.rejected.update(dict.fromkeys(wanted, f"Gemini gave no answer ({blocked})"))
                return []
            try:
                rows = [BookRow.model_validate(item) for item in json.loads(response.text or "")]
            except (ValueError, TypeError):
                if malformed_retries > 0:
                    malformed_retries -= 1
                    continue
                result.rejected.update(dict.fromkeys(wanted, "Gemini answered malformed JSON twice"))
                return []
            return _check_rows(rows, wanted, result)

    def _classify(self, exc: Exception, attempt: int) -> float:
        """Raise for errors that retrying cannot fix; return the backoff delay for the others."""
        from google.genai import errors

        if isinstance(exc, errors.APIError):
            code, status, message = exc.code, str(exc.status or ""), str(exc.message or "")
            if code == 400 and ("API_KEY" in json.dumps(exc.details or "") or "API key" in message):
                raise ConfigError(
                    "Gemini rejected the API key (400 API_KEY_INVALID): check BOOKWARM_GEMINI_API_KEY"
                ) from None
            if code == 403:
                raise ConfigError(
                    f"Gemini refused the request (403 {status}): is the Generative Language API enabled for this key's project?"
                ) from None
            if code == 404:
                raise ConfigError(
                    f"Gemini model {self.settings.model!r} not found (404): set BOOKWARM_GEMINI_MODEL"
                ) from None
            if code != 429 and code < 500:
                raise InputError(f"Gemini rejected the request ({code} {status}): {message[:200]}") from None
        elif not _is_transport_error(exc):
            raise exc
        if attempt >= self.limits.attempts:
            raise ProviderUnavailable(
                "gemini", f"{_describe(exc)}; gave up after {attempt} attempts"
            ) from None
        return random.uniform(0.5, 1.0) * min(30.0, 2.0**attempt)


def _check_rows(rows: list[BookRow], wanted: set[int], result: LLMResult) -> list[BookRow]:
    """Keep rows the chunk asked for, once each; report invented and dropped ones."""
    kept: dict[int, BookRow] = {}
    for row in rows:
        if row.row not in wanted:
            result.rejected[row.row] = "invented by Gemini (no such row in the request)"
        elif row.row in kept:
            result.rejected.setdefault(row.row, "Gemini returned this row twice; the first answer was kept")
        else:
            kept[row.row] = row
    for missing in wanted - kept.keys():
        result.rejected.setdefault(missing, "no book found by Gemini (header, blank or dropped)")
    return list(kept.values())


def _blocked_reason(response: types.GenerateContentResponse, finish: str) -> str | None:
    if not response.candidates:
        feedback = response.prompt_feedback
        reason = (feedback.block_reason_message or feedback.block_reason) if feedback else None
        return f"prompt blocked: {reason}" if reason else "no candidates"
    if finish in {"SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "OTHER"}:
        message = getattr(response.candidates[0], "finish_message", None)
        return f"finish reason {finish}" + (f": {message}" if message else "")
    if not response.text:
        return "empty answer"
    return None


def _is_transport_error(exc: Exception) -> bool:
    import httpx

    return isinstance(exc, httpx.TransportError | httpx.TimeoutException | asyncio.TimeoutError)


def _describe(exc: Exception) -> str:
    code = getattr(exc, "code", None)
    return f"HTTP {code}" if code else type(exc).__name__


def gemini_fallback(settings: GeminiSettings) -> Callable[[], GeminiFallback]:
    """The fallback factory for ``parse_library``: a missing key is an error only for files that need it."""
    return lambda: GeminiFallback(settings)

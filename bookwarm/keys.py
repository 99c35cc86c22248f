"""Every Redis key and object name bookwarm uses, in one place, for the warm and the read path.

The original system wrote keys its own read path never read (0% hit rate); building both from
this module makes that impossible. All Redis keys carry the configured prefix.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Keys:
    prefix: str = ""

    # hot tier (Redis)
    def author(self, author_key: str) -> str:
        return f"{self.prefix}author:{author_key}"

    def isbn(self, isbn: str) -> str:
        return f"{self.prefix}isbn:{isbn}"

    def isbn_index(self, isbn13: str) -> str:
        """Hash: ISBN-13 -> author key, no TTL (the cold tier's ISBN lookup). Bucketed by the ISBN's
        digits 8-12, which run evenly within a publisher's block: 100,000 buckets of a few dozen."""
        return f"{self.prefix}isbnindex:{isbn13[7:12]}"

    def title(self, title_key: str) -> str:
        return f"{self.prefix}search:title:{title_key}"

    # warming bookkeeping
    def processed(self, author_key: str) -> str:
        return f"{self.prefix}warming:processed:{author_key}"

    def claim(self, author_key: str) -> str:
        return f"{self.prefix}warming:claim:{author_key}"

    def job(self, job_id: str) -> str:
        return f"{self.prefix}warming:job:{job_id}"

    def dead_letters(self, job_id: str) -> str:
        return f"{self.prefix}warming:job:{job_id}:dead"

    def dead_letter_runs(self, job_id: str) -> str:
        """Hash: author key -> the id of its Failed `dead-letter` task run (marked resolved in
        Prefect when a redrive warms the author)."""
        return f"{self.prefix}warming:job:{job_id}:dead-runs"

    def job_queued(self, job_id: str) -> str:
        """Hash: author key -> the author and the depth it was queued at (what a resume re-reads)."""
        return f"{self.prefix}warming:job:{job_id}:queued"

    def job_review(self, job_id: str) -> str:
        """Hash: author key -> a review entry (bookwarm.warming.review)."""
        return f"{self.prefix}warming:job:{job_id}:review"

    def reviews(self) -> str:
        return f"{self.prefix}warming:review"

    def pin(self, author_key: str) -> str:
        """The OpenLibrary key an operator chose for an author (no TTL)."""
        return f"{self.prefix}warming:pin:{author_key}"

    def blocklist(self) -> str:
        return f"{self.prefix}warming:blocklist"

    def job_counted(self, job_id: str) -> str:
        """Set of author keys already counted in the job: a retry, resume or redrive counts once."""
        return f"{self.prefix}warming:job:{job_id}:counted"

    def job_found(self, job_id: str, pass_id: str, depth: int) -> str:
        """List: the co-authors each batch found at ``depth`` (a JSON array an entry), written by the
        shards of one pass over the job (its first run, a resume, a redrive) as each batch ends.
        Shards on other machines hand their co-authors to the job here, not through a worker's
        memory, and the job reads them while the level still runs."""
        return f"{self.prefix}warming:job:{job_id}:found:{pass_id}:{depth}"

    def job_handed_over(self, job_id: str, pass_id: str, depth: int) -> str:
        """Set: the shards (their index) of a pass's first round at ``depth`` that counted every
        author they were given and handed over all they found: once every shard of a depth has,
        nothing more will be found there, and the next depth need not wait for their runs' ends."""
        return f"{self.prefix}warming:job:{job_id}:handed:{pass_id}:{depth}"

    def job_outcomes(self, job_id: str) -> str:
        """Pub/sub channel: finished authors of a job's shards run by workers (progress display only)."""
        return f"{self.prefix}warming:job:{job_id}:outcomes"

    def run_ends(self) -> str:
        """Hash: flow run id -> how its job ended, until Prefect is seen to hold a final state for it
        (bookwarm.warming.run_ends)."""
        return f"{self.prefix}warming:run-ends"

    # OpenLibrary's keys -> bookwarm's, written with each bibliography (what the change feed maps)
    def ol_authors(self) -> str:
        """Hash: OpenLibrary author key (OL…A) -> {"key", "name"} of the bookwarm author cached under it."""
        return f"{self.prefix}olindex:authors"

    def ol_works(self) -> str:
        """Hash: OpenLibrary work key (OL…W) -> its authors' OpenLibrary keys, comma-separated."""
        return f"{self.prefix}olindex:works"

    def refresh_checkpoint(self) -> str:
        """The last UTC day (YYYY-MM-DD) whose changes the refresh flow read to the end and warmed."""
        return f"{self.prefix}refresh:checkpoint"

    def refresh_seen(self, utc_day: str) -> str:
        """The newest changeset id of that (unfinished) day already acted on."""
        return f"{self.prefix}refresh:seen:{utc_day}"

    # demand: what readers asked for and missed (or found stale), one bucket per UTC hour
    def demand_authors(self, hour: str) -> str:
        """Sorted set: author key -> misses in that hour (``hour``: YYYYMMDDHH, UTC)."""
        return f"{self.prefix}demand:authors:{hour}"

    def demand_names(self, hour: str) -> str:
        """Hash: author key -> the name as a reader first asked for it in that hour."""
        return f"{self.prefix}demand:names:{hour}"

    def demand_isbns(self, hour: str) -> str:
        """Sorted set: ISBN-13 -> misses in that hour."""
        return f"{self.prefix}demand:isbns:{hour}"

    def demand_rank(self, scratch_id: str) -> str:
        """Sorted set, deleted in the same transaction: the union of the hours' buckets being ranked."""
        return f"{self.prefix}demand:rank:{scratch_id}"

    def enrich_pending(self, provider: str) -> str:
        """Authors waiting for a provider's enrichment: author key -> what is missing (bookwarm.warming.enrichment)."""
        return f"{self.prefix}enrich:pending:{provider}"

    def demand_spent(self, utc_day: str) -> str:
        """Provider calls the warm-demand runs of that UTC day spent (their share of the day's)."""
        return f"{self.prefix}demand:spent:{utc_day}"

    # provider limits, shared by every worker
    def rate(self, provider: str) -> str:
        return f"{self.prefix}limits:rate:{provider}"

    def quota(self, provider: str, utc_day: str) -> str:
        return f"{self.prefix}limits:quota:{provider}:{utc_day}"

    # cold tier (object names; the bucket is configuration)
    @staticmethod
    def author_object(author_key: str) -> str:
        return f"authors/{author_key}.json"

    @staticmethod
    def isbn_object(isbn: str) -> str:
        """Written by bookwarm 0.1 (one object per ISBN, up to 5 a work): still read, no longer written."""
        return f"isbn/{isbn}.json"

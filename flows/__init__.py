"""Prefect flows: orchestration only. I/O lives in tasks/ and the bookwarm core."""

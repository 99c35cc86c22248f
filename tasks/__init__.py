"""Thin Prefect tasks over the bookwarm core: one unit of work each, no orchestration."""

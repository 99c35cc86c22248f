"""Warming one author and keeping a job's record: the Prefect-free core the tasks wrap."""

"""What the local Prefect server keeps, and for how long: Prefect's own clean-up service
(``db_vacuum``), configured from bookwarm's settings.

A warmer scheduled hourly (demand) and daily (refresh) writes flow runs, task runs, logs and
events for ever unless the server deletes them; Prefect keeps events 7 days by default and
deletes no flow run. Here old runs go with their task runs (the dead letters), logs and artifacts,
never before the job's record expires (the settings resolver refuses a shorter retention).
"""

from __future__ import annotations

from bookwarm.settings import Settings


def prefect_retention_env(settings: Settings) -> dict[str, str]:
    """The Prefect server's environment for its clean-up (each value a default the environment may
    override, as the server's other tuning)."""
    orchestration = settings.orchestration
    events_s = orchestration.prefect_event_retention_s
    return {
        "PREFECT_SERVER_SERVICES_DB_VACUUM_ENABLED": "events,flow_runs",
        "PREFECT_SERVER_SERVICES_DB_VACUUM_RETENTION_PERIOD": str(orchestration.prefect_run_retention_s),
        "PREFECT_SERVER_SERVICES_DB_VACUUM_BATCH_SIZE": str(orchestration.prefect_vacuum_batch),
        "PREFECT_SERVER_EVENTS_RETENTION_PERIOD": f"PT{events_s}S",  # ISO 8601: a bare number is refused
        # heartbeats are most of the events of a long run: a day is enough to read a crash
        "PREFECT_SERVER_SERVICES_DB_VACUUM_EVENT_RETENTION_OVERRIDES": (
            f'{{"prefect.flow-run.heartbeat": {min(events_s, 24 * 3600)}}}'
        ),
    }

"""Deployments: how bookwarm's flows are triggered (UI, REST API) and scheduled."""

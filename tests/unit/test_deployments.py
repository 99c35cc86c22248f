"""The deployments: names, parameters and the weekly schedule (built, not served)."""

from deployments.serve import build_deployments
from flows.warm_popular import default_popular_authors


def test_nine_served_deployments_with_their_schedules():
    by_name = {d.name: d for d in build_deployments()}
    assert set(by_name) == {
        "warm-library",
        "warm-popular-authors",
        "redrive",
        "resume",
        "resolve-review",
        "enrich",
        "warm-demand",
        "refresh",
        "warm-from-dump",
    }
    (schedule,) = by_name["warm-popular-authors"].schedules
    assert schedule.schedule.cron == "0 3 * * 1" and schedule.schedule.timezone == "UTC"
    (daily,) = by_name["enrich"].schedules  # just after the providers' UTC quota reset
    assert daily.schedule.cron == "10 0 * * *" and daily.schedule.timezone == "UTC"
    (hourly,) = by_name["warm-demand"].schedules  # just after each hour's demand bucket closes
    assert hourly.schedule.cron == "5 * * * *" and hourly.schedule.timezone == "UTC"
    (feed,) = by_name["refresh"].schedules
    assert feed.schedule.cron == "35 * * * *"
    assert by_name["warm-library"].parameters == {"max_depth": 2, "force": False}
    from prefect.utilities.callables import parameter_schema

    from flows.warm_library import warm_library

    schema = parameter_schema(warm_library.fn).model_dump()
    assert (
        schema["properties"]["max_depth"]["maximum"] == 3
        and schema["properties"]["max_depth"]["minimum"] == 1
    )
    assert by_name["warm-library"].enforce_parameter_schema
    assert "source" in schema["required"]


def test_default_popular_authors_are_the_shipped_29(shared_fixtures):
    shipped = default_popular_authors()
    original = (shared_fixtures / "library-owner/bootstrap_popular_authors.txt").read_text().split("\n")
    assert shipped == [n.strip() for n in original if n.strip()]
    assert len(shipped) == 29


def test_popular_authors_variable_forms():
    from flows.warm_popular import popular_from_variable

    assert popular_from_variable(["Stephen King", " Nora Roberts "]) == ["Stephen King", "Nora Roberts"]
    assert popular_from_variable('["Stephen King"]') == ["Stephen King"]
    assert popular_from_variable("Stephen King") == ["Stephen King"]
    assert popular_from_variable(None) == []


def test_deploy_names_every_deployment_it_creates():
    from bookwarm.cli.deploy_cmd import PREFECT_YAML, deployment_names

    names = deployment_names()
    assert len(names) == PREFECT_YAML.read_text(encoding="utf-8").count("entrypoint: ") == len(set(names))
    assert {"warm-demand", "refresh"} <= set(names)  # the two the hand-written list left out


def test_warm_authors_refuses_formula_or_control_text_as_author_keys():
    """The shard deployment's schema (what the REST API enforces) refuses keys no parser makes."""
    import jsonschema
    from prefect.utilities.callables import parameter_schema

    from flows.warm_authors import warm_authors

    schema = parameter_schema(warm_authors).model_dump_for_openapi()
    good = {
        "author_keys": ["j-k-rowling", "gabriel-garcía-márquez"],
        "depth": 0,
        "job_id": "0" * 8 + "-0000-0000-0000-" + "0" * 12,
        "pass_id": "p1",
    }
    jsonschema.validate(good, schema)
    for hostile in ("=cmd|' /C calc'!A0", "+SUM(1)", "a\nb", "@x", "-1"):
        try:
            jsonschema.validate({**good, "author_keys": [hostile]}, schema)
        except jsonschema.ValidationError:
            continue
        raise AssertionError(f"accepted {hostile!r}")

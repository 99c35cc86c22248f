"""`GET /docs`: the API's reference as one HTML page rendered here from its own OpenAPI schema.

FastAPI's default /docs is Swagger UI loaded from a CDN: blank on a machine without internet (a
server room, this one), and the Swagger UI on PyPI (4.15) cannot read OpenAPI 3.1. This page needs
nothing but the API: each route with its parameters, answers and a `curl`. Swagger UI stays at
`/docs/swagger` for a browser with internet; the schema itself at `/openapi.json`.
"""

from __future__ import annotations

from html import escape
from typing import Any

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse

router = APIRouter(include_in_schema=False)

METHODS = ("get", "post", "put", "patch", "delete")
STYLE = """
body{font:15px/1.5 system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#222}
h2{border-top:1px solid #ddd;padding-top:1rem;font-size:1.05rem}code,pre{background:#f5f5f5;border-radius:3px}
pre{padding:.5rem;overflow-x:auto}table{border-collapse:collapse;margin:.3rem 0}td,th{border:1px solid #ddd;
padding:.2rem .5rem;text-align:left;vertical-align:top}.m{font-weight:bold;text-transform:uppercase}
"""


@router.get("/docs")
async def reference(request: Request) -> HTMLResponse:
    return HTMLResponse(render(request.app.openapi(), str(request.base_url).rstrip("/")))


@router.get("/docs/swagger")
async def swagger(request: Request) -> HTMLResponse:
    return get_swagger_ui_html(openapi_url="/openapi.json", title=f"{request.app.title}: Swagger UI")


def render(schema: dict[str, Any], base_url: str) -> str:
    info = schema.get("info", {})
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{escape(info.get('title', 'API'))} API</title><style>{STYLE}</style></head><body>",
        f"<h1>{escape(info.get('title', 'API'))} API, version {escape(str(info.get('version', '')))}</h1>",
        f"<p>{escape(info.get('summary', ''))}</p>",
        "<p>The schema: <a href='/openapi.json'>/openapi.json</a>. Interactive (loads Swagger UI from the "
        "internet): <a href='/docs/swagger'>/docs/swagger</a>.</p>",
    ]
    for path, operations in schema.get("paths", {}).items():
        for method in METHODS:
            if method in operations:
                parts.append(_operation(path, method, operations[method], base_url))
    parts.append("</body></html>")
    return "".join(parts)


def _operation(path: str, method: str, operation: dict[str, Any], base_url: str) -> str:
    html = [
        f"<h2><span class='m'>{method}</span> <code>{escape(path)}</code></h2>",
        f"<p>{escape(operation.get('summary', ''))}</p>",
    ]
    if operation.get("description"):
        html.append(f"<p>{escape(operation['description'])}</p>")
    parameters = operation.get("parameters", [])
    if parameters:
        html.append("<table><tr><th>parameter</th><th>in</th><th>required</th><th>meaning</th></tr>")
        for p in parameters:
            html.append(
                f"<tr><td><code>{escape(p['name'])}</code></td><td>{escape(p.get('in', ''))}</td>"
                f"<td>{'yes' if p.get('required') else 'no'}</td>"
                f"<td>{escape(p.get('description') or p.get('schema', {}).get('description', ''))}</td></tr>"
            )
        html.append("</table>")
    answers = operation.get("responses", {})
    if answers:
        listed = ", ".join(
            f"{escape(code)} {escape(a.get('description', ''))}" for code, a in answers.items()
        )
        html.append(f"<p>Answers: {listed}</p>")
    example = path
    for p in parameters:
        if p.get("in") == "path":
            example = example.replace("{" + p["name"] + "}", p["name"].upper())
    flag = "" if method == "get" else f" -X {method.upper()}"
    html.append(f"<pre>curl{flag} {escape(base_url + example)}</pre>")
    return "".join(html)

"""The HTML encoding of the OGC API pages: plain, accessible pages rendered with Jinja2 (autoescaped).

One template serves every page: a heading, a description, a table (collections, features or
properties) and the page's links, so a browser user can walk the same resources a client reads as
JSON. No scripts and no external assets.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi.responses import HTMLResponse
from jinja2 import Environment

_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ title }}</title>
<style>
body { font-family: system-ui, sans-serif; margin: 1rem auto; max-width: 60rem; padding: 0 1rem; color: #1a1a1a; }
table { border-collapse: collapse; width: 100%; overflow-x: auto; display: block; }
th, td { border: 1px solid #bbb; padding: .3rem .5rem; text-align: left; vertical-align: top; }
th { background: #eee; }
a { color: #0050a0; }
pre { white-space: pre-wrap; word-break: break-all; background: #f4f4f4; padding: .5rem; }
</style>
</head>
<body>
<h1>{{ title }}</h1>
{% if description %}<p>{{ description }}</p>{% endif %}
{% if rows %}
<table>
<thead><tr>{% for h in headers %}<th scope="col">{{ h }}</th>{% endfor %}</tr></thead>
<tbody>
{% for row in rows %}<tr>{% for cell in row %}<td>{% if cell.href %}<a href="{{ cell.href }}">{{ cell.text }}</a>{% else %}{{ cell.text }}{% endif %}</td>{% endfor %}</tr>
{% endfor %}</tbody>
</table>
{% endif %}
{% if pre %}<pre>{{ pre }}</pre>{% endif %}
{% if links %}<h2>Links</h2>
<ul>{% for link in links %}<li><a href="{{ link.href }}">{{ link.title or link.rel }}</a> ({{ link.rel }}{% if link.type %}, {{ link.type }}{% endif %})</li>
{% endfor %}</ul>{% endif %}
</body>
</html>
"""

_TEMPLATE = Environment(autoescape=True).from_string(_PAGE)


def cell(value: Any, href: str | None = None) -> dict[str, Any]:
    """One table cell: text (None shows as empty) and an optional link."""
    return {"text": "" if value is None else str(value), "href": href}


def page(
    title: str,
    *,
    description: str = "",
    headers: Sequence[str] = (),
    rows: Sequence[Sequence[dict[str, Any]]] = (),
    links: Sequence[dict[str, Any]] = (),
    pre: str = "",
) -> HTMLResponse:
    """An HTML response for one API page."""
    html = _TEMPLATE.render(
        title=title, description=description, headers=headers, rows=rows, links=links, pre=pre
    )
    return HTMLResponse(html)

"""Jinja filters of the console: numbers, durations and times as an operator reads them.

Times are rendered as ``<time datetime="...Z">`` in UTC; the page's script rewrites them in the
viewer's time zone (and without it they still read correctly, in UTC).
"""

from __future__ import annotations

import json
from typing import Any

from litestar.plugins.jinja import JinjaTemplateEngine
from markupsafe import Markup


def when(value: str | None) -> Markup:
    if not value:
        return Markup("-")
    shown = value.replace("T", " ").removesuffix("Z")[:19] + " UTC"
    return Markup('<time datetime="{0}" title="{0}">{1}</time>').format(value, shown)


def unix_when(value: float | None) -> Markup:
    from datetime import UTC, datetime

    return when(datetime.fromtimestamp(value, UTC).isoformat().replace("+00:00", "Z") if value else None)


def credits(value: float | int | None) -> str:
    return "-" if value is None else f"{int(value):,}"


def millis(value: int | None) -> str:
    """A length of time in milliseconds, the way a person says it: 850 ms, 2.9 s, 3 min 5 s."""
    if value is None:
        return "-"
    if value < 1000:
        return f"{value} ms"
    seconds = value / 1000
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest} s"


def as_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(", ", ": ")) if value else ""


def short(value: str | None, length: int = 12) -> str:
    if not value:
        return "-"
    return value if len(value) <= length else value[: length - 1] + "…"


def install(engine: JinjaTemplateEngine) -> None:
    engine.engine.filters.update(
        when=when, unix_when=unix_when, credits=credits, millis=millis, as_json=as_json, short=short
    )

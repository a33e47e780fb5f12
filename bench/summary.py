"""One table of the capacity figures, from the rows the benchmarks wrote with ``--json``:
this service next to a peer where both were measured in the run, and the ratio (this service /
peer). The peer is the peer-bench prototype, or the job queue a ``peers`` figure names."""

from __future__ import annotations

import json
from pathlib import Path

WITH_JSON = ("pipeline", "waiting", "open", "inflight", "peers")


def _rows(path: Path) -> list[dict]:
    return json.loads(path.read_text())


def _line(figure: str, ours: float | None, theirs: float | None, fmt: str = "{:.1f}") -> str:
    show = lambda v: fmt.format(v) if v is not None else "-"  # noqa: E731
    ratio = f"{ours / theirs:.2f}x" if ours is not None and theirs else "-"
    return f"{figure:<46} {show(ours):>12} {show(theirs):>12} {ratio:>8}"


def summary(results: dict[str, Path]) -> str:
    lines = [f"{'figure':<46} {'video-gen':>12} {'peer':>12} {'ratio':>8}", "-" * 81]
    if "pipeline" in results:
        rows = _rows(results["pipeline"])
        ours = next((r for r in rows if r["system"] == "video-gen"), None)
        proto = next((r for r in rows if r["system"] == "prototype"), None)
        for key, name in (("jobs_per_s", "pipeline jobs/s (zero-latency model)"), ("p99_ms", "pipeline p99 ms")):
            lines.append(_line(name, ours and ours[key], proto and proto[key]))
    if "waiting" in results:
        rows = _rows(results["waiting"])
        for n in sorted({r["n"] for r in rows}):
            ours = next((r for r in rows if r["n"] == n and r["system"] == "video-gen"), None)
            proto = next((r for r in rows if r["n"] == n and r["system"] == "prototype"), None)
            lines.append(_line(f"{n} waiting: errors", ours and ours["errors"], proto and proto["errors"], "{:.0f}"))
            lines.append(
                _line(
                    f"{n} waiting: KiB RSS per request",
                    ours and ours["kib_per_request"],
                    proto and proto["kib_per_request"],
                )
            )
            lines.append(
                _line(
                    f"{n} waiting: Redis connections",
                    ours and ours["redis_conns"],
                    proto and proto["redis_conns"],
                    "{:.0f}",
                )
            )
            for key, name in (
                ("answer_s", "s to answer all"),
                ("after_write_s", "s to answer, from last reply"),
            ):
                lines.append(_line(f"{n} waiting: {name}", ours and ours[key], proto and proto[key], "{:.2f}"))
    if "open" in results:
        rows = _rows(results["open"])
        for rate in sorted({r["offered_rate"] for r in rows}):
            ours = next((r for r in rows if r["offered_rate"] == rate and r["label"] == "video-gen"), None)
            proto = next((r for r in rows if r["offered_rate"] == rate and r["label"] == "prototype"), None)
            for key in ("overhead_p50_ms", "overhead_p99_ms"):
                name = f"{rate:g}/s Poisson, 2 s model: overhead {key.split('_')[1]} ms"
                lines.append(_line(name, ours and ours[key], proto and proto[key]))
            failed = [r and r["errors"] + r["unanswered_after_drain"] for r in (ours, proto)]
            lines.append(_line(f"{rate:g}/s Poisson: errors or unanswered", *failed, "{:.0f}"))
    if "inflight" in results:
        (row,) = _rows(results["inflight"])
        n = row["jobs"]
        lines.append(_line(f"{n} veo3 in flight: succeeded, charged once", row["charged_jobs"], None, "{:.0f}"))
        lines.append(_line(f"{n} veo3 in flight: worker peak RSS MiB", row["rss_peak_mib"], None, "{:.0f}"))
        lines.append(_line(f"{n} veo3 in flight: fal status polls/s", row["polls_per_s"], None))
    if "peers" in results:
        lines += _peers(_rows(results["peers"]))
    return "\n".join(lines)


def _peers(rows: list[dict]) -> list[str]:
    """video-gen's job round trips per second next to each peer's (``bench.queue_peers``)."""
    ours = next((r for r in rows if r["system"] == "video-gen" and "error" not in r), None)
    in_flight = next((r["in_flight"] for r in rows if "in_flight" in r), "?")
    lines = []
    for row in rows:
        if row["system"] != "video-gen":
            theirs = None if "error" in row else row["jobs_per_s"]
            name = f"no-op jobs/s, {in_flight} in flight: {row['system']}"
            lines.append(_line(name, ours and ours["jobs_per_s"], theirs, "{:.0f}"))
    return lines

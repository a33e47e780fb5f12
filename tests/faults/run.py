"""``just faults`` (``python -m tests.faults.run``): the fault-injection suite, as a table.

Each scenario runs the real processes (API, workers, redis-server, PostgreSQL; the fake fal for
Veo3), injects its failure, lets the clients resolve every job, and audits the outcome. Needs the
PostgreSQL of the test setup (``TEST_POSTGRES_URL``, default ``postgresql://postgres@127.0.0.1:5432/test``)
and ``redis-server`` on PATH. Exit status 0 when every scenario passes.

    python -m tests.faults.run                 # every scenario
    python -m tests.faults.run redis-restart   # some of them
    python -m tests.faults.run --list
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import textwrap

from tests.faults.scenarios import SCENARIOS, Result, run

COLUMNS = (("scenario", 40), ("jobs", 22), ("outcome", 22), ("ledger check", 82), ("", 4))


def row(values: list[str]) -> str:
    return " | ".join(v.ljust(w) if w else v for v, (_, w) in zip(values, COLUMNS, strict=True))


def line(r: Result) -> str:
    return row([r.scenario, r.jobs, r.outcome, r.ledger, "PASS" if r.ok else "FAIL"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scenarios", nargs="*", help="scenario names (default: all)")
    parser.add_argument("--list", action="store_true", help="list the scenarios")
    args = parser.parse_args(argv)
    if args.list:
        print("\n".join(SCENARIOS))
        return 0
    unknown = [n for n in args.scenarios if n not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenario(s) {unknown}; one of {list(SCENARIOS)}")
    logging.disable(logging.WARNING)  # the runner's own piccolo/httpx chatter; process logs go to files
    header = row([name for name, _ in COLUMNS])
    print(header)
    print("-" * len(header), flush=True)
    results = asyncio.run(run(args.scenarios or list(SCENARIOS), progress=lambda r: print(line(r), flush=True)))
    print()
    for r in results:
        print(f"{r.scenario} ({r.seconds:.0f} s): {r.events}")
        for problem in r.problems:
            print(textwrap.indent(f"PROBLEM: {problem}", "    "))
        if r.logs:
            print(f"    process logs kept in {r.logs}")
    passed = sum(r.ok for r in results)
    print(f"\n{passed}/{len(results)} scenarios passed in {sum(r.seconds for r in results):.0f} s")
    return 0 if passed == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())

"""``python -m bench [NAME ...]``: run the named benchmarks (all of them when none is named).

Each prints its own figures as ratios against a baseline measured in the same run; then one
summary table of the capacity figures (``bench.summary``) from those that write ``--json``.
"""

from __future__ import annotations

import runpy
import sys
import tempfile
from pathlib import Path

from bench.summary import WITH_JSON, summary

BENCHMARKS = {
    "pipeline": "bench.pipeline",  # the hot path of one job against the peer-bench prototype
    "waiting": "bench.waiting_requests",  # many requests waiting on one API process, against the prototype
    "inflight": "bench.inflight",  # 1,000 provider jobs in flight in one worker (fake fal)
    "open": "bench.open_loop",  # overhead under Poisson arrivals with a 2 s model, against the prototype
    "render": "bench.local_render",  # the local model's render against a plain encode
    "unreachable": "bench.fal_unreachable",  # time to fail with fal unreachable, bounded vs unbounded
    "webhooks": "bench.webhooks",  # webhook deliveries through the queue against bare signed POSTs
    "stream": "bench.stream_limit",  # jobs/s one Redis stream carries, against what N workers need
    "image": "bench.source_image_memory",  # memory of checking a source image against a plain decode
    "peers": "bench.queue_peers",  # a job's round trip against the prototype, taskiq-redis, saq and arq
}


def main(argv: list[str]) -> int:
    names = argv or list(BENCHMARKS)
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        print(f"unknown benchmark(s) {unknown}; one of {', '.join(BENCHMARKS)}", file=sys.stderr)
        return 2
    failed = 0
    with tempfile.TemporaryDirectory(prefix="video-gen-bench-all-") as tmp:
        results: dict[str, Path] = {}
        for name in names:
            print(f"\n=== bench {name}\n", flush=True)
            sys.argv = [BENCHMARKS[name]]
            if name in WITH_JSON:
                results[name] = Path(tmp) / f"{name}.json"
                sys.argv += ["--json", str(results[name])]
            try:
                runpy.run_module(BENCHMARKS[name], run_name="__main__")
            except SystemExit as exc:
                if exc.code not in (0, None):
                    failed = int(exc.code) if isinstance(exc.code, int) else 1
        if results:
            print("\n=== summary\n")
            print(summary({k: v for k, v in results.items() if v.exists()}))
    return failed


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

# video-gen tasks. Run through uv so the project's environment is used: `uv run just <recipe>`.

set dotenv-load := false

# List the recipes.
default:
    @just --list

# One request through the embedded stack (SQLite, child redis-server, local model), printed.
demo:
    uv run video-gen demo

# The embedded stack, kept running: prints the URL, a demo token and a curl line.
serve:
    uv run video-gen serve

# Lint: ruff (format and rules) and the import-linter layer contracts.
lint:
    uv run ruff format --check .
    uv run ruff check .
    uv run lint-imports

# The whole test suite (needs Redis on 127.0.0.1:6379 and PostgreSQL on 127.0.0.1:5432; see .ci/run),
# in TEST_PROCESSES pytest-xdist processes (default 2; a test file stays in one process, 0 runs it in this one).
test *args:
    uv run pytest -q -n ${TEST_PROCESSES:-2} --dist loadfile {{args}}

# The operator console in headless Chromium (Debian's /usr/bin/chromium, driven by Playwright):
# every browser test, with screenshots in test-artifacts/console/. `just test` runs only the first.
browser *args:
    VIDEO_GEN_BROWSER_SUITE=1 uv run pytest -q tests/console/test_browser.py {{args}}

# The fault-injection suite: kills workers at every pipeline stage, restarts Redis, drops PostgreSQL.
faults *names:
    uv run python -m tests.faults.run {{names}}

# Benchmarks, all or by name (pipeline, waiting, inflight, open, render, unreachable, webhooks, stream, image,
# peers); each prints ratios against a baseline measured in the same run.
bench *names:
    uv run python -m bench {{names}}

# Compose's topology as processes on this machine (Redis with AOF, a fresh PostgreSQL database,
# moto's S3 server, the migration, 2 APIs, 3 workers), kept running until Ctrl-C.
cluster:
    uv run python -m tests.cluster.run

# A rolling restart of that topology under load (every worker, then every API, SIGTERM and
# restart in turn), then the audit. `just test` runs a faster subset (one worker restarted).
cluster-test *args:
    uv run python -m tests.cluster.rolling {{args}}

# Apply database migrations to DATABASE_URL.
migrate:
    uv run video-gen migrate

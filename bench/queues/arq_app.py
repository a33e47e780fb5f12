"""arq 0.28, tuned: 200 jobs at once and a 5 ms queue poll (the default 0.5 s would measure the poll).

Run by ``bench.queue_peers`` in ``bench/.arq-venv`` (arq needs redis-py 5) as
``arq arq_app.WorkerSettings``. ``REDIS_URL`` names the private server.
"""

import os

from arq.connections import RedisSettings

POLL_S = 0.005


async def noop(ctx: dict, x: int = 0) -> int:
    """The job: nothing, so the figure is the queue's own cost."""
    return x


class WorkerSettings:
    functions = [noop]
    redis_settings = RedisSettings.from_dsn(os.environ["REDIS_URL"])
    max_jobs = 200
    poll_delay = POLL_S
    keep_result = 300
    handle_signals = True
    log_results = False


LOG_CONFIG = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"arq.standard": {"level": "WARNING", "class": "logging.StreamHandler"}},
    "loggers": {"arq": {"handlers": ["arq.standard"], "level": "WARNING"}},
}

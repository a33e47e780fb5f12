"""``video-gen``: the one console entry point (serve, api, worker, demo, migrate, token, probe...).

The group lives here (``service.cli:main`` in pyproject.toml); its commands live by kind:
``servers`` the long-running processes, ``tools`` the one-shot commands, ``startup`` the checks
they run before starting, and the operators' ``credits``/``ledger`` in ``service.admin.cli``."""

from __future__ import annotations

import click

from service.cli.startup import load_settings


@click.group()
def main() -> None:
    """video-gen: image-to-video generation service."""
    from service.core.logging import configure_logging

    settings = load_settings()
    configure_logging(settings.log_level, settings.log_format)  # one pipeline for every command


def _add_commands() -> None:
    from service.admin.cli import credits, ledger
    from service.cli.servers import api, serve, worker
    from service.cli.tools import demo, migrate, models, probe, token

    for command in (serve, api, worker, demo, migrate, token, models, probe, credits, ledger):
        main.add_command(command)


_add_commands()

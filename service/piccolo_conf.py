"""Piccolo's configuration module (``PICCOLO_CONF=service.piccolo_conf``).

``DB`` is resolved on access from ``service.core.db`` so that one process (a test run) can point
Piccolo at a fresh database without re-importing anything.
"""

from piccolo.conf.apps import AppRegistry

APP_REGISTRY = AppRegistry(apps=["service.piccolo_app"])


def __getattr__(name: str):
    if name == "DB":
        from service.core.db import current_engine

        return current_engine()
    raise AttributeError(name)

"""How many jobs of each model one worker process runs at once.

A model's slots are, first found: the operator's ``MODEL_CONCURRENCY`` entry for it, the plugin's
``max_concurrency``, ``WORKER_CONCURRENCY``. A provider model that mostly waits on its provider
declares hundreds; a CPU-bound one declares the cores (its work runs in the process pool of
``models_registry.cpu`` anyway, never more than the cores at once).

Every model has its own jobs stream, and the scheduler claims only from the streams of models
with a free slot, at most their free slots (``free_slots``): a job of a busy model stays in its
stream, undelivered, for whichever worker has room for it first, and never holds up another
model's jobs. A claimed job therefore takes its slot at once; the queue behind a full model here
is only for the odd job claimed beyond it (a stale job of the legacy shared stream reclaimed
during an upgrade), which waits, its lease renewed, for the next slot.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Mapping

from models_registry.registry import ModelRegistry


def model_limits(registry: ModelRegistry, overrides: Mapping[str, int], default: int) -> dict[str, int]:
    """Model name -> slots, for every model of ``registry``; an override naming no model is an error."""
    unknown = sorted(set(overrides) - set(registry.names()))
    if unknown:
        raise SystemExit(f"MODEL_CONCURRENCY names {unknown}, which are not installed: {registry.names()}")
    limits = {}
    for name in registry.names():
        declared = getattr(registry.get(name), "max_concurrency", None)
        limits[name] = overrides.get(name) or declared or default
    return limits


class ModelSlots:
    """Per-model counts of running jobs, and the claimed jobs waiting for a slot (first come first served)."""

    def __init__(self, limits: Mapping[str, int], *, default: int) -> None:
        self.limits, self.default = dict(limits), default
        self.running: dict[str, int] = dict.fromkeys(self.limits, 0)
        self._queues: dict[str, deque[asyncio.Future[None]]] = {}

    @property
    def waiting(self) -> int:
        return sum(len(q) for q in self._queues.values())

    def limit(self, model: str) -> int:
        return self.limits.get(model, self.default)

    def free(self, model: str) -> int:
        return self.limit(model) - self.running.get(model, 0)

    def free_slots(self) -> dict[str, int]:
        """The models with a free slot, and how many: what the scheduler claims at most, per model."""
        return {m: n for m in self.limits if (n := self.free(m)) > 0}

    def take(self, model: str) -> asyncio.Future[None] | None:
        """Take a slot of ``model`` at once (None), or queue for one: the future resolves when it is
        this job's. Called as the job is claimed, so ``free_slots`` counts it straight away."""
        if self.free(model) > 0:
            self.running[model] = self.running.get(model, 0) + 1
            return None
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queues.setdefault(model, deque()).append(fut)
        return fut

    def give_back(self, model: str, fut: asyncio.Future[None] | None) -> None:
        """The job is over (or was cancelled while waiting): its slot goes to the next in line."""
        if fut is not None and (not fut.done() or fut.cancelled()):  # never got its slot
            fut.cancel()
            with contextlib.suppress(ValueError):
                self._queues[model].remove(fut)
            return
        queue = self._queues.get(model)
        while queue:
            nxt = queue.popleft()
            if not nxt.done():
                nxt.set_result(None)  # the slot passes on: running stays as it is
                return
        self.running[model] -= 1

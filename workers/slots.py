"""How many jobs of each model one worker process runs at once.

A model's slots are, first found: the operator's ``MODEL_CONCURRENCY`` entry for it, the plugin's
``max_concurrency``, ``WORKER_CONCURRENCY``. A provider model that mostly waits on its provider
declares hundreds; a CPU-bound one declares the cores (its work runs in the process pool of
``models_registry.cpu`` anyway, never more than the cores at once).

The scheduler claims from the one jobs stream while some model has a free slot, at most
``WORKER_PREFETCH`` jobs at a time less the jobs already waiting here for a slot of theirs. A job
whose model is full waits here (its lease renewed) while jobs of other models start. Once
``WORKER_PREFETCH`` jobs wait and another model has a free slot, the waiting ones are handed back
to the group (reclaimable at once by any worker, no delivery counted) and claiming goes on: a
busy model never stops another model's jobs. (Claiming strictly per model, with nothing to hand
back, would need one stream per model.)
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

    def __init__(self, limits: Mapping[str, int], *, default: int, prefetch: int) -> None:
        self.limits, self.default, self.prefetch = dict(limits), default, max(prefetch, 1)
        self.running: dict[str, int] = dict.fromkeys(self.limits, 0)
        self._queues: dict[str, deque[asyncio.Future[None]]] = {}

    @property
    def waiting(self) -> int:
        return sum(len(q) for q in self._queues.values())

    def limit(self, model: str) -> int:
        return self.limits.get(model, self.default)

    def free(self, model: str) -> int:
        return self.limit(model) - self.running.get(model, 0)

    def any_free(self) -> bool:
        """Whether some model has a free slot."""
        return any(self.free(m) > 0 for m in self.limits)

    def claimable(self) -> int:
        """How many jobs to ask Redis for now: free slots of all models, at most ``prefetch``
        minus the jobs already waiting for a slot (0: claim nothing until a slot frees)."""
        free = sum(max(self.free(m), 0) for m in self.limits)
        return max(min(free, self.prefetch - self.waiting), 0)

    def take(self, model: str) -> asyncio.Future[None] | None:
        """Take a slot of ``model`` at once (None), or queue for one: the future resolves when it is
        this job's. Called as the job is claimed, so ``claimable`` counts it straight away."""
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

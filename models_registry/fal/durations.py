"""The API's durations mapped onto what a fal endpoint offers, and the finishing step.

fal's Veo 3 image-to-video endpoints generate ``"4s"``, ``"6s"`` or ``"8s"``; ``veo3`` and
``veo3-fast`` sell the spec's 5, 8 and 10 s (``SPEC_PLANS``), the Veo 3.1 models sell fal's own
durations as they are (``exact_plans``):

| API duration | fal ``duration`` | finishing step                                           |
| ------------ | ---------------- | -------------------------------------------------------- |
| ``"5s"``     | ``"6s"``         | trim to the first 5.0 s (``trim_video``)                 |
| ``"8s"``     | ``"8s"``         | none                                                     |
| ``"10s"``    | ``"8s"``         | extend to 10.0 s by slowing the last 2 s to a stop       |
|              |                  | over 4 s (``extend_video``; no invented content)         |

Nothing silently answers another length: the provider's clip must be (nearly) the length asked
of fal, the finished file must be (nearly) the length sold, and the duration reported is always
the one probed from the finished file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from models_registry.errors import GenerationFailed
from models_registry.video import VideoInfo, extend_video, probe_video, trim_video

# One frame at 24 fps is ~0.04 s; half a second covers container rounding but not a wrong clip.
TOLERANCE_SECONDS = 0.5


@dataclass(frozen=True)
class DurationPlan:
    requested: str  # as the API spells it
    fal_duration: str  # the value sent as fal's ``duration`` input
    target_seconds: float
    step: Literal["trim", "none", "extend"]

    @property
    def fal_seconds(self) -> float:
        return float(self.fal_duration.removesuffix("s"))


Plans = dict[str, DurationPlan]

SPEC_PLANS: Plans = {
    "5s": DurationPlan("5s", "6s", 5.0, "trim"),
    "8s": DurationPlan("8s", "8s", 8.0, "none"),
    "10s": DurationPlan("10s", "8s", 10.0, "extend"),
}


def exact_plans(durations: tuple[str, ...]) -> Plans:
    """Plans that ask fal for each duration as it is sold, with no finishing step."""
    return {d: DurationPlan(d, d, float(d.removesuffix("s")), "none") for d in durations}


def plan_for(plans: Plans, duration: str, model: str) -> DurationPlan:
    """The plan for an API duration; GenerationFailed for one this model does not offer."""
    try:
        return plans[duration]
    except KeyError:
        raise GenerationFailed(f"{model} does not offer duration {duration!r}") from None


def finish_video(plan: DurationPlan, raw: Path, out: Path) -> VideoInfo:
    """Turn fal's clip ``raw`` into ``out`` of the sold length, checking both ends (blocking)."""
    try:
        info = probe_video(raw)
    except ValueError as exc:
        raise GenerationFailed(f"fal returned a video that cannot be decoded: {exc}") from exc
    if info.duration_seconds < plan.fal_seconds - TOLERANCE_SECONDS:
        raise GenerationFailed(
            f"fal returned a {info.duration_seconds:.2f} s video for a {plan.fal_duration} request; "
            f"too short to make {plan.requested}"
        )
    try:
        if plan.step == "trim":
            info = trim_video(raw, out, plan.target_seconds)
        elif plan.step == "extend":
            info = extend_video(raw, out, plan.target_seconds)
        else:
            os.replace(raw, out)
    except ValueError as exc:
        raise GenerationFailed(f"could not make {plan.requested} from fal's video: {exc}") from exc
    if abs(info.duration_seconds - plan.target_seconds) > TOLERANCE_SECONDS:
        raise GenerationFailed(f"the finished video is {info.duration_seconds:.2f} s, not {plan.target_seconds:g} s")
    return info

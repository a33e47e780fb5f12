"""Google Veo 3.1 and Veo 3.1 Fast image-to-video on fal.ai (``veo3.1``, ``veo3.1-fast``).

They sell fal's own durations, 4s, 6s and 8s (default), as fal makes them, at 720p, 1080p or 4k,
silent unless ``generate_audio`` is set. Inputs from fal's API reference
(https://fal.ai/docs/model-api-reference/video-generation-api/veo3.1-image-to-video: aspect ratio
auto/16:9/9:16, duration 4s/6s/8s, resolution 720p/1080p/4k, generate_audio, negative_prompt, seed,
auto_fix, safety_tolerance 1-6), read 2026-11-27 through the stored-pages search (fal.ai itself
cannot be reached from here). The fast endpoint's inputs are taken to be the same: fal's page for
``fal-ai/veo3.1/fast/image-to-video`` was not found, only its first-last-frame sibling's.

fal's prices per second of video, from https://fal.ai/models/fal-ai/veo3.1/llms.txt (Veo 3.1) and
https://fal.ai/models/fal-ai/veo3.1/fast/first-last-frame-to-video/llms.txt (Veo 3.1 Fast), read
2026-11-27. Those are the text-to-video and first-last-frame endpoints; that image-to-video costs
the same could not be confirmed on fal's own image-to-video pages:

| model         | fal endpoint                          | 720p/1080p off / on | 4k off / on     |
| ------------- | ------------------------------------- | ------------------- | --------------- |
| ``veo3.1``      | ``fal-ai/veo3.1/image-to-video``        | $0.20 / $0.40       | $0.40 / $0.60   |
| ``veo3.1-fast`` | ``fal-ai/veo3.1/fast/image-to-video``   | $0.10 / $0.15       | $0.30 / $0.35   |

Credits (``cost``) are fal's price at 500 credits a dollar, 4s / 6s / 8s:

| model         | 720p/1080p silent | with audio     | 4k silent       | 4k with audio    |
| ------------- | ----------------- | -------------- | --------------- | ---------------- |
| ``veo3.1``      | 400 / 600 / 800   | 800/1200/1600  | 800/1200/1600   | 1200/1800/2400   |
| ``veo3.1-fast`` | 200 / 300 / 400   | 300 / 450 / 600| 600 / 900 / 1200| 700 / 1050 / 1400|
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import msgspec

from models_registry.fal.client import FalVideoModel
from models_registry.fal.durations import exact_plans


class Veo31Options(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, frozen=True):
    """What a request may set for Veo 3.1 on fal (fal's input names and values)."""

    aspect_ratio: Literal["auto", "16:9", "9:16"] = "auto"
    resolution: Literal["720p", "1080p", "4k"] = "720p"
    generate_audio: bool = False
    negative_prompt: str | None = None
    seed: int | None = None
    auto_fix: bool | None = None
    safety_tolerance: Literal["1", "2", "3", "4", "5", "6"] | None = None


# fal's dollars a second: (resolution is 4k, generate_audio) -> price.
VEO31_USD = {(False, False): 0.20, (False, True): 0.40, (True, False): 0.40, (True, True): 0.60}
VEO31_FAST_USD = {(False, False): 0.10, (False, True): 0.15, (True, False): 0.30, (True, True): 0.35}


class Veo31Model(FalVideoModel):
    """Veo 3.1 via fal.ai: 4s, 6s, 8s at 720p, 1080p or 4k, with or without audio."""

    name = "veo3.1"
    provider_name = "Veo3.1"
    endpoint = "fal-ai/veo3.1/image-to-video"
    durations = ("4s", "6s", "8s")
    default_duration = "8s"
    plans = exact_plans(durations)
    description = "Google Veo 3.1 image-to-video on fal.ai: 4s/6s/8s, up to 4k, optional audio"
    Options = Veo31Options
    price_options: ClassVar[tuple[str, ...]] = ("resolution", "generate_audio")
    usd: ClassVar[dict[tuple[bool, bool], float]] = VEO31_USD

    def usd_per_second(self, options: Any) -> float:
        return self.usd[(options.resolution == "4k", options.generate_audio)]


class Veo31FastModel(Veo31Model):
    """Veo 3.1 Fast via fal.ai: Veo 3.1's durations and options at about half the price."""

    name = "veo3.1-fast"
    provider_name = "Veo3.1 Fast"
    endpoint = "fal-ai/veo3.1/fast/image-to-video"
    description = "Google Veo 3.1 Fast image-to-video on fal.ai: faster and cheaper than veo3.1"
    usd: ClassVar[dict[tuple[bool, bool], float]] = VEO31_FAST_USD

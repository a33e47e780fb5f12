"""Google Veo 3 and Veo 3 Fast image-to-video on fal.ai (``veo3``, ``veo3-fast``).

Both sell the spec's 5s, 8s (default) and 10s: fal makes 4s, 6s or 8s, so 5s is fal's 6s trimmed
to 5.0 s, 8s is fal's 8s as is, and 10s is fal's 8s extended to 10.0 s by replaying its last 2 s
over 4 s, easing to a stop (``models_registry/fal/durations.py``). The duration returned is probed
from the finished file. Audio is off unless asked for (``generate_audio``): fal charges more for it
and the spec's clips are silent.

fal's prices, from fal's model pages (https://fal.ai/models/fal-ai/veo3/llms.txt and
https://fal.ai/models/fal-ai/veo3/fast/llms.txt, read 2026-11-27 through the stored-pages search;
fal.ai itself cannot be reached from here). Those pages price the text-to-video endpoints; that the
image-to-video endpoints cost the same could not be confirmed from fal's own pages (a mirror of
fal's image-to-video pages, docs.kkiai.com, lists the inputs: aspect_ratio auto/16:9/9:16,
duration default "8s", generate_audio default true, resolution 720p/1080p; and no price). That the
image-to-video endpoints take "6s" (asked for the 5s clip) is from the text-to-video pages' 4s/6s/8s
and could not be confirmed either; fal refusing it would fail the job with a 400, refunded:

| model       | fal endpoint                       | audio off | audio on | resolutions   |
| ----------- | ---------------------------------- | --------- | -------- | ------------- |
| ``veo3``      | ``fal-ai/veo3/image-to-video``       | $0.20/s   | $0.40/s  | 720p, 1080p   |
| ``veo3-fast`` | ``fal-ai/veo3/fast/image-to-video``  | $0.10/s   | $0.15/s  | 720p, 1080p   |

Credits (``cost``): ``veo3`` keeps the spec's flat 750 per clip, 1,500 with audio (fal's price
doubles); ``veo3-fast`` is fal's price of the clip fal makes at 500 credits a dollar:

| model       | 5s (fal 6s) | 8s  | 10s (fal 8s) | with audio: 5s / 8s / 10s |
| ----------- | ----------- | --- | ------------ | ------------------------- |
| ``veo3``      | 750         | 750 | 750          | 1500 / 1500 / 1500        |
| ``veo3-fast`` | 300         | 400 | 400          | 450 / 600 / 600           |
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import msgspec

from models_registry.fal.client import FalVideoModel
from models_registry.fal.durations import SPEC_PLANS


class Veo3Options(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, frozen=True):
    """What a request may set for Veo 3 on fal (fal's input names and values)."""

    aspect_ratio: Literal["auto", "16:9", "9:16"] = "auto"
    resolution: Literal["720p", "1080p"] = "720p"
    generate_audio: bool = False
    negative_prompt: str | None = None
    seed: int | None = None
    auto_fix: bool | None = None


class Veo3Model(FalVideoModel):
    """Veo 3 via fal.ai: 5s, 8s (default) and 10s, 750 credits each (1,500 with audio)."""

    name = "veo3"
    provider_name = "Veo3"
    endpoint = "fal-ai/veo3/image-to-video"
    durations = ("5s", "8s", "10s")
    default_duration = "8s"
    plans = SPEC_PLANS
    description = "Google Veo 3 image-to-video on fal.ai"
    Options = Veo3Options
    price_options: ClassVar[tuple[str, ...]] = ("generate_audio",)
    default_rank = 100  # the default model whenever FAL_KEY is set

    def usd_per_second(self, options: Any) -> float:
        return 0.40 if options.generate_audio else 0.20

    def cost(self, duration: str, options: Any) -> int:
        """The spec's flat 750 credits whatever the duration; twice that with audio."""
        return 1500 if options.generate_audio else 750


class Veo3FastModel(FalVideoModel):
    """Veo 3 Fast via fal.ai: the spec's durations at about half of Veo 3's price."""

    name = "veo3-fast"
    provider_name = "Veo3 Fast"
    endpoint = "fal-ai/veo3/fast/image-to-video"
    durations = ("5s", "8s", "10s")
    default_duration = "8s"
    plans = SPEC_PLANS
    description = "Google Veo 3 Fast image-to-video on fal.ai: faster and cheaper than veo3"
    Options = Veo3Options
    price_options: ClassVar[tuple[str, ...]] = ("generate_audio",)

    def usd_per_second(self, options: Any) -> float:
        return 0.15 if options.generate_audio else 0.10

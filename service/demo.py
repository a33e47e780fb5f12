"""``video-gen demo``: one real request through the embedded stack, printed as the spec shows it."""

from __future__ import annotations

import json
import logging
import secrets
import shutil
from datetime import timedelta

import httpx

from models_registry.video import probe_video
from service.core.auth import make_token
from service.core.embedded_redis import free_port
from service.core.settings import Settings, project_root
from service.embedded import DEMO_IMAGE_KEY, DEMO_USER, embedded_stack, seed_demo

DEMO_DIR = project_root() / "var" / "demo"


async def run_demo() -> int:
    """Start the stack in ``var/demo`` (wiped first), generate one video, print it, stop. Exit code."""
    logging.getLogger("httpx").setLevel(logging.WARNING)
    shutil.rmtree(DEMO_DIR, ignore_errors=True)
    DEMO_DIR.mkdir(parents=True)
    settings = Settings.from_env(
        database_url=f"sqlite:///{DEMO_DIR / 'video-gen.sqlite'}",
        storage_url=f"file://{DEMO_DIR / 'storage'}",
        redis_url=None,
        default_model="local",  # the demo runs offline even where FAL_KEY is set
        port=free_port(),
        host="127.0.0.1",
        jwt_secret=secrets.token_urlsafe(32),
        log_level="WARNING",
    )
    async with embedded_stack(settings) as stack:
        await seed_demo(stack.settings)
        token = make_token(settings.jwt_secret, DEMO_USER, ttl=timedelta(minutes=10))
        body = {
            "id": DEMO_IMAGE_KEY,
            "prompt": "A beautiful sunset over the ocean with gentle waves",
            "duration": "8s",
            "projectId": "project-456",
        }
        print(f"POST {stack.url}/video-gen/image-to-video\n{json.dumps(body, indent=2)}\n")
        async with httpx.AsyncClient(timeout=300) as client:
            response = await client.post(
                f"{stack.url}/video-gen/image-to-video", json=body, headers={"Authorization": f"Bearer {token}"}
            )
    print(f"HTTP {response.status_code}\n{json.dumps(response.json(), indent=2)}\n")
    if response.status_code != 200:
        return 1
    video = DEMO_DIR / "storage" / response.json()["s3Key"]
    info = probe_video(video)
    print(
        f"video: {video}\n       {info.width}x{info.height}, {info.frames} frames, "
        f"{info.duration_seconds:.2f} s, {info.codec}"
    )
    return 0

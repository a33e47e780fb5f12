"""How long a Veo generation takes to fail when fal cannot be reached, bounded and unbounded.

Two ways fal is unreachable: a refused connection (nothing listens) and a silent server (the TCP
handshake succeeds, no answer ever comes). For each, the Veo3 plugin runs with the default
``FAL_REQUEST_SECONDS``/``FAL_RETRY_SECONDS`` and, as the baseline, with both unbounded (fal-client's
own 10 retries stacked under the plugin's 3, as before), stopped at ``--cap`` seconds. Prints the
seconds to the failure and the ratio bounded / baseline.

    uv run just bench unreachable      # about 4 minutes, mostly waiting for the baseline
"""

from __future__ import annotations

import argparse
import asyncio
import io
import socket
import tempfile
import time
from pathlib import Path

import fal_client.client
from PIL import Image

from models_registry.base import GenerationJob, SourceImage
from models_registry.errors import GenerationFailed
from models_registry.fal.settings import FalSettings
from models_registry.veo3.plugin import Veo3Model

UNBOUNDED = 1e9


def _job(workdir: Path) -> GenerationJob:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 36), (200, 120, 40)).save(buffer, "PNG")
    image = SourceImage(key="k", data=buffer.getvalue(), content_type="image/png")
    return GenerationJob(job_id="bench", prompt="a harbour", duration="8s", image=image, workdir=workdir)


async def _time_to_fail(settings: FalSettings, cap: float) -> tuple[float, str]:
    plugin = Veo3Model(settings=settings)
    await plugin.open()
    started = time.monotonic()
    try:
        async with asyncio.timeout(cap):
            with tempfile.TemporaryDirectory(prefix="bench-fal-") as workdir:
                await plugin.generate(_job(Path(workdir)))
        outcome = "succeeded?"
    except GenerationFailed as exc:
        outcome = exc.message[:90]
    except TimeoutError:
        outcome = f"still trying at the {cap:g} s cap"
    finally:
        await plugin.close()
    return time.monotonic() - started, outcome


HELD: list[asyncio.StreamWriter] = []


async def _silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    HELD.append(writer)
    try:
        await reader.read()  # until the client gives up, or the bench closes the connection
    except asyncio.CancelledError:
        pass  # the bench is over: asyncio.run cancels the handlers still waiting
    finally:
        writer.close()


async def main(cap: float) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        refused_port = s.getsockname()[1]
    server = await asyncio.start_server(_silent, "127.0.0.1", 0)
    silent_port = server.sockets[0].getsockname()[1]
    defaults = FalSettings(key="bench-key")
    print(f"FAL_REQUEST_SECONDS={defaults.request_seconds:g} FAL_RETRY_SECONDS={defaults.retry_seconds:g}")
    print(f"{'fal':>10} {'bounded s':>10} {'baseline s':>11} {'ratio':>6}  outcome (bounded)")
    for label, port in (("refused", refused_port), ("silent", silent_port)):
        fal_client.client.QUEUE_URL_FORMAT = f"http://127.0.0.1:{port}/"
        bounded, outcome = await _time_to_fail(defaults, cap)
        baseline, _ = await _time_to_fail(
            FalSettings(key="bench-key", request_seconds=UNBOUNDED, retry_seconds=UNBOUNDED), cap
        )
        print(f"{label:>10} {bounded:10.1f} {baseline:11.1f} {bounded / baseline:6.2f}  {outcome}", flush=True)
    server.close()
    for writer in HELD:
        writer.close()
    await server.wait_closed()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cap", type=float, default=150.0, help="stop a baseline run after this many seconds")
    asyncio.run(main(parser.parse_args().cap))

"""A fake of fal.ai's queue protocol as a plain ASGI app, so tests run fal-client's real code.

Routes, exactly those fal-client's queue API calls plus the file its result points at:
``POST /{owner}/{alias}[/path]`` (submit), ``GET /{owner}/{alias}/requests/{id}/status[?logs=1]``,
``GET /{owner}/{alias}/requests/{id}`` (result), ``PUT .../requests/{id}/cancel``,
``GET /files/{id}.mp4`` (a real H.264 MP4 of the requested duration, made once with PyAV and
cached), and ``/_control/{health,submissions,reset}`` for tests in another process.

A request goes IN_QUEUE (positions counting down) -> IN_PROGRESS (with logs) -> COMPLETED.
Behaviours are chosen by tokens in the prompt, so they work the same in and across processes;
``:N`` means "the first N times, then behave", no count means always:

| token            | effect                                                          |
| ---------------- | --------------------------------------------------------------- |
| `[policy]`       | submit -> 422 ``{"detail": [{... "content_policy_violation"}]}`` |
| `[invalid]`      | submit -> 422 ``{"detail": "<string>"}``                         |
| `[fail:N]`       | submit -> 500                                                   |
| `[throttle:N]`   | submit -> 429                                                   |
| `[statusfail:N]` | status poll -> 503                                              |
| `[error]`        | COMPLETED carrying an error; result -> 500                      |
| `[resultpolicy]` | COMPLETED, but the result -> 422 content policy                  |
| `[never]`        | stays IN_PROGRESS forever                                       |
| `[time:N]`       | COMPLETED once N seconds have passed since the submit (not polls) |
| `[short]`        | serves a 4 s video whatever was asked                           |
| `[nourl]`        | the result has no video                                         |
"""

from __future__ import annotations

import base64
import json
import math
import os
import re
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import av
import httpx
from PIL import Image, ImageDraw

WIDTH, HEIGHT, FPS = 320, 180, 24
FAL_DURATIONS = ("4s", "6s", "8s")
MAX_IMAGE_BYTES = 8 * 1024 * 1024
# The test suite points this at a directory of its run (``tests/conftest.py``), removed at its end.
VIDEO_DIR_ENV = "VIDEO_GEN_FAKE_FAL_VIDEOS"


def default_video_dir() -> Path:
    """Where rendered clips are kept: ``VIDEO_GEN_FAKE_FAL_VIDEOS``, read when used (a test run
    sets it after this module may have been imported), else a directory in the system's tmp."""
    return Path(os.environ.get(VIDEO_DIR_ENV) or Path(tempfile.gettempdir()) / "video-gen-fake-fal")


_TOKEN = re.compile(r"\[(\w+)(?::(\d+))?\]")


def fake_video(seconds: int, video_dir: Path | None = None) -> Path:
    """A real MP4 of ``seconds`` (a moving square), made once and shared by every test process."""
    video_dir = video_dir or default_video_dir()
    path = video_dir / f"fake-veo-{seconds}s-{WIDTH}x{HEIGHT}.mp4"
    if path.exists():
        return path
    video_dir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.{uuid.uuid4().hex}.tmp")
    with av.open(str(tmp), "w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=FPS, options={"preset": "ultrafast"})
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        for i in range(seconds * FPS):
            img = Image.new("RGB", (WIDTH, HEIGHT), (30, 60 + i % 120, 120))
            x = (i * 4) % (WIDTH - 40)
            ImageDraw.Draw(img).rectangle((x, 70, x + 40, 110), fill=(250, 220, 40))
            out.mux(stream.encode(av.VideoFrame.from_image(img)))
        out.mux(stream.encode(None))
    os.replace(tmp, path)  # atomic, so concurrent test processes never read half a file
    return path


@dataclass
class FakeRequest:
    request_id: str
    app: str  # "{owner}/{alias}", the prefix of its queue URLs
    arguments: dict[str, Any]
    script: dict[str, float]
    polls: int = 0
    status_failures: int = 0
    cancelled: bool = False
    submitted: float = field(default_factory=time.monotonic)

    def urls(self, base: str) -> dict[str, str]:
        root = f"{base}/{self.app}/requests/{self.request_id}"
        return {"response_url": root, "status_url": f"{root}/status", "cancel_url": f"{root}/cancel"}


@dataclass
class FakeFal:
    """The fake's state and ASGI entry point; tests in the same process read its records directly."""

    video_dir: Path = field(default_factory=default_video_dir)
    api_key: str = "test-key"
    queue_polls: int = 2
    progress_polls: int = 2
    submissions: list[dict[str, Any]] = field(default_factory=list)  # every submit, even refused
    requests: dict[str, FakeRequest] = field(default_factory=dict)
    status_polls: int = 0
    cancelled: list[str] = field(default_factory=list)
    downloads: list[dict[str, Any]] = field(default_factory=list)  # file GETs and their auth header

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] == "lifespan":
            return await _lifespan(receive, send)
        body = await _read_body(receive)
        method, parts = scope["method"], [p for p in scope["path"].split("/") if p]
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        base = f"{scope['scheme']}://{headers['host']}"
        if parts[:1] == ["files"] and method == "GET":
            request_id = parts[-1].removesuffix(".mp4")
            self.downloads.append({"request_id": request_id, "authorization": headers.get("authorization")})
            return await self._file(send, request_id)
        if parts[:1] == ["_control"]:
            return await _json(send, 200, self._control(method, parts[1:]))
        if headers.get("authorization") != f"Key {self.api_key}":
            return await _json(send, 401, {"detail": "Invalid API key"})
        if len(parts) >= 4 and parts[2] == "requests":
            req = self.requests.get(parts[3])
            if req is None:
                return await _json(send, 404, {"detail": f"Request {parts[3]} not found"})
            query = parse_qs(scope["query_string"].decode())
            status, payload = self._route_request(method, parts[4:], req, base, query)
            return await _json(send, status, payload)
        if method == "POST" and len(parts) >= 2:
            status, payload = self._submit(parts, json.loads(body or b"{}"), base)
            return await _json(send, status, payload)
        return await _json(send, 404, {"detail": "Not found"})

    def _route_request(self, method: str, rest: list[str], req: FakeRequest, base: str, query: dict):
        if method == "GET" and rest == ["status"]:
            return self._status(req, base, query.get("logs", [""])[0] in ("1", "true", "True"))
        if method == "GET" and not rest:
            return self._result(req, base)
        if method == "PUT" and rest == ["cancel"]:
            req.cancelled = True
            self.cancelled.append(req.request_id)
            return 202, {"status": "CANCELLATION_REQUESTED"}
        return 405, {"detail": "Method not allowed"}

    def _submit(self, parts: list[str], args: dict, base: str):
        prompt = str(args.get("prompt", ""))
        self.submissions.append({"app": "/".join(parts), "arguments": args})
        seen = sum(1 for s in self.submissions if s["arguments"].get("prompt") == prompt)
        script = {m[1]: float(m[2]) if m[2] else math.inf for m in _TOKEN.finditer(prompt)}
        if seen <= script.get("throttle", 0):
            return 429, {"detail": "Rate limit exceeded"}
        if seen <= script.get("fail", 0):
            return 500, {"detail": "Internal server error"}
        if "policy" in script:
            return 422, {"detail": [_policy_violation("image_url")]}
        if "invalid" in script:
            return 422, {"detail": "Unsupported image: the image could not be decoded"}
        if errors := _validate(args, "/".join(parts)):
            return 422, {"detail": errors}
        req = FakeRequest(uuid.uuid4().hex, "/".join(parts[:2]), args, script)
        self.requests[req.request_id] = req
        return 200, {"request_id": req.request_id, **req.urls(base), "queue_position": self.queue_polls}

    def _status(self, req: FakeRequest, base: str, with_logs: bool):
        self.status_polls += 1
        if req.status_failures < req.script.get("statusfail", 0):
            req.status_failures += 1
            return 503, {"detail": "Service temporarily unavailable"}
        req.polls += 1
        logs = [_log(f"Generating: step {i}") for i in range(1, req.polls - self.queue_polls + 1)]
        common = {"request_id": req.request_id, **req.urls(base)}
        if req.polls <= self.queue_polls:
            return 200, {**common, "status": "IN_QUEUE", "queue_position": self.queue_polls - req.polls}
        if not self._finished(req):
            return 200, {**common, "status": "IN_PROGRESS", "logs": logs if with_logs else None}
        done = {**common, "status": "COMPLETED", "logs": logs if with_logs else None}
        if "error" in req.script:
            return 200, {**done, "error": "Veo3 backend crashed", "error_type": "internal_error"}
        return 200, {**done, "metrics": {"inference_time": 1.5}}

    def _finished(self, req: FakeRequest) -> bool:
        if "time" in req.script:
            return req.polls > self.queue_polls and time.monotonic() - req.submitted >= req.script["time"]
        return "never" not in req.script and req.polls > self.queue_polls + self.progress_polls

    def _result(self, req: FakeRequest, base: str):
        if not self._finished(req):
            return 400, {"detail": "Request is still in progress"}
        if "error" in req.script:
            return 500, {"detail": "Veo3 backend crashed"}
        if "resultpolicy" in req.script:
            return 422, {"detail": [_policy_violation("prompt")]}
        if "nourl" in req.script:
            return 200, {"seed": 1}
        size = self._video_path(req).stat().st_size
        url = f"{base}/files/{req.request_id}.mp4"
        return 200, {"video": {"url": url, "content_type": "video/mp4", "file_name": "output.mp4", "file_size": size}}

    def _video_path(self, req: FakeRequest) -> Path:
        seconds = 4 if "short" in req.script else int(req.arguments["duration"].removesuffix("s"))
        return fake_video(seconds, self.video_dir)

    async def _file(self, send: Callable, request_id: str) -> None:
        req = self.requests.get(request_id)
        if req is None:
            return await _json(send, 404, {"detail": "File not found"})
        path = self._video_path(req)
        size = str(path.stat().st_size).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"video/mp4"), (b"content-length", size)],
            }
        )
        with path.open("rb") as f:
            while chunk := f.read(64 * 1024):
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    def _control(self, method: str, rest: list[str]) -> dict[str, Any]:
        if method == "POST" and rest == ["reset"]:
            self.submissions.clear()
            self.requests.clear()
            self.cancelled.clear()
            self.downloads.clear()
            self.status_polls = 0
        short = [{**s, "arguments": {k: str(v)[:80] for k, v in s["arguments"].items()}} for s in self.submissions]
        return {"ok": True, "submissions": short, "status_polls": self.status_polls, "cancelled": self.cancelled}


RESOLUTIONS = {"fal-ai/veo3.1": ("720p", "1080p", "4k")}  # by app; others: 720p and 1080p


def _validate(args: dict[str, Any], endpoint: str) -> list[dict[str, Any]]:
    """The input checks of fal's Veo schemas that matter to the plugins (by endpoint)."""
    errors = []
    resolutions = RESOLUTIONS.get("/".join(endpoint.split("/")[:2]), ("720p", "1080p"))
    if args.get("resolution", "720p") not in resolutions:
        errors.append({"loc": ["body", "resolution"], "msg": f"Input should be one of {resolutions}", "type": "enum"})
    if args.get("aspect_ratio", "auto") not in ("auto", "16:9", "9:16"):
        errors.append({"loc": ["body", "aspect_ratio"], "msg": "Input should be auto, 16:9 or 9:16", "type": "enum"})
    if not isinstance(args.get("generate_audio", True), bool):
        errors.append({"loc": ["body", "generate_audio"], "msg": "Input should be a boolean", "type": "bool_type"})
    if not isinstance(args.get("prompt"), str) or not args["prompt"]:
        errors.append({"loc": ["body", "prompt"], "msg": "Field required", "type": "missing"})
    if args.get("duration") not in FAL_DURATIONS:
        errors.append({"loc": ["body", "duration"], "msg": "Input should be '4s', '6s' or '8s'", "type": "enum"})
    image = args.get("image_url")
    if not isinstance(image, str) or not image.startswith(("data:", "http://", "https://")):
        errors.append({"loc": ["body", "image_url"], "msg": "Invalid image URL", "type": "url"})
    elif image.startswith("data:") and len(base64.b64decode(image.split(",", 1)[1])) > MAX_IMAGE_BYTES:
        errors.append({"loc": ["body", "image_url"], "msg": "Image is larger than 8 MB", "type": "file_too_large"})
    return errors


def _policy_violation(where: str) -> dict[str, Any]:
    return {
        "loc": ["body", where],
        "type": "content_policy_violation",
        "msg": "The content could not be processed because it contained material flagged by a content checker.",
    }


def _log(message: str) -> dict[str, Any]:
    return {"message": message, "level": "INFO", "source": "user", "timestamp": "2025-01-01T00:00:00Z"}


async def _read_body(receive: Callable) -> bytes:
    chunks, more = [], True
    while more:
        message = await receive()
        chunks.append(message.get("body", b""))
        more = message.get("more_body", False)
    return b"".join(chunks)


async def _json(send: Callable, status: int, payload: Any) -> None:
    body = json.dumps(payload).encode()
    # fal's own servers tag their answers; fal-client then never mistakes them for ingress errors
    headers = [(b"content-type", b"application/json"), (b"x-fal-request-id", b"fake")]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _lifespan(receive: Callable, send: Callable) -> None:
    while (await receive())["type"] != "lifespan.shutdown":
        await send({"type": "lifespan.startup.complete"})
    await send({"type": "lifespan.shutdown.complete"})


def install_in_process(monkeypatch: Any, fake: FakeFal) -> httpx.AsyncBaseTransport:
    """Send fal-client's HTTP traffic to ``fake`` in this process; returns the ASGI transport.

    fal-client 1.0.3's ``AsyncClient`` has no transport hook: it builds its httpx client lazily as
    ``httpx.AsyncClient(transport=AsyncBackupDomainTransport(), ...)``. That transport class takes
    an inner ``transport``, so we patch the name in ``fal_client.client`` with a factory that passes
    the ASGI transport; fal-client's own code still builds the client, auth header, URLs, retries
    and parsing. Hand the returned transport to any other client that must reach the fake.
    """
    import fal_client.client as fal_module

    transport = httpx.ASGITransport(app=fake)
    original = fal_module.AsyncBackupDomainTransport
    monkeypatch.setattr(fal_module, "AsyncBackupDomainTransport", lambda: original(transport=transport))
    return transport


def start_fal_server(tmp_dir: Path) -> tuple[str, Path, Callable[[], None]]:
    """Run the fake over HTTPS (uvicorn, trustme cert) in a subprocess: ``(base_url, ca_path, stop)``.

    Point fal-client at it with ``FAL_QUEUE_RUN_HOST=localhost:<port>`` (and ``FAL_RUN_HOST``), read
    when fal-client is imported, and trust it with ``SSL_CERT_FILE=<ca_path>``, read when an httpx
    client is built.
    """
    import trustme

    ca = trustme.CA()
    ca_path, server_pem = tmp_dir / "fake-fal-ca.pem", tmp_dir / "fake-fal-server.pem"
    ca.cert_pem.write_to_path(str(ca_path))
    ca.issue_cert("localhost", "127.0.0.1").private_key_and_cert_chain_pem.write_to_path(str(server_pem))
    # Its clips in ``tmp_dir`` too (removed with it), unless a test run names its own directory.
    env = {**os.environ, VIDEO_DIR_ENV: os.environ.get(VIDEO_DIR_ENV) or str(tmp_dir / "videos")}
    proc = subprocess.Popen([sys.executable, __file__, str(server_pem)], stdout=subprocess.PIPE, text=True, env=env)

    def stop() -> None:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        proc.stdout.close()

    port = proc.stdout.readline().strip()  # the child binds port 0 and says which it got
    base_url = f"https://localhost:{port}"
    trust = ssl.create_default_context(cafile=str(ca_path))
    deadline = time.monotonic() + 10
    while True:
        try:
            httpx.get(f"{base_url}/_control/health", verify=trust, timeout=1).raise_for_status()
            return base_url, ca_path, stop
        except (httpx.HTTPError, ValueError) as exc:
            if proc.poll() is not None or time.monotonic() > deadline:
                stop()
                message = f"the fake fal server did not start (exit code {proc.returncode})"
                raise RuntimeError(message) from exc
            time.sleep(0.05)


def _serve(server_pem: str) -> None:
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    print(sock.getsockname()[1], flush=True)
    config = uvicorn.Config(
        FakeFal(), ssl_certfile=server_pem, ssl_keyfile=server_pem, log_level="warning", access_log=False, lifespan="on"
    )
    uvicorn.Server(config).run(sockets=[sock])


if __name__ == "__main__":
    _serve(sys.argv[1])

# syntax=docker/dockerfile:1
# video-gen: one image for the API, the workers and migrations (the command picks the role).
# Pinned: the Python base by exact version, uv copied from uv's own image at the version that wrote
# uv.lock. Rebuilds reuse uv's download cache (a BuildKit cache mount), never the image's layers.

FROM ghcr.io/astral-sh/uv:0.13.9 AS uv

FROM python:3.11.14-slim-trixie

COPY --from=uv /uv /uvx /bin/
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/opt/venv \
    PATH=/opt/venv/bin:$PATH
WORKDIR /app

# Dependencies first, from the lock file alone, so a code change does not reinstall them.
RUN --mount=type=cache,target=/root/.cache/uv \
    --mount=type=bind,source=uv.lock,target=uv.lock \
    --mount=type=bind,source=pyproject.toml,target=pyproject.toml \
    uv sync --frozen --no-dev --no-install-project

COPY pyproject.toml uv.lock README.md ./
COPY service ./service
COPY workers ./workers
COPY models_registry ./models_registry
COPY migrations ./migrations
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-editable

# A non-root user that owns the one directory the service writes to (var/: SQLite, local storage).
RUN useradd --system --uid 10001 --user-group --home-dir /app --no-create-home videogen \
    && mkdir -p /app/var \
    && chown videogen:videogen /app/var
USER 10001:10001
VOLUME ["/app/var"]

EXPOSE 8000 9100
# The API's readiness; compose and Kubernetes run `video-gen probe worker` for workers instead.
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=5 CMD ["video-gen", "probe", "api"]
ENTRYPOINT ["video-gen"]
CMD ["api"]

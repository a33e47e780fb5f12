"""The interactive API pages, working without internet: Swagger UI's assets are served by the
service itself (from the ``swagger-ui-py`` package), Scalar's from its bundle vendored in
``service/assets/scalar`` (no Python package ships it), never from a CDN."""

from __future__ import annotations

import gzip
from importlib import resources

from litestar import Request, Response, get
from litestar.openapi.plugins import ScalarRenderPlugin, SwaggerRenderPlugin
from litestar.static_files import create_static_files_router

ASSETS_PATH = "/docs-assets"
_SWAGGER = f"{ASSETS_PATH}/swagger"
_SCALAR = f"{ASSETS_PATH}/scalar"
_SCALAR_BUNDLE = f"{ASSETS_PATH}/scalar-bundle/standalone.js"
_FAVICON = f'<link rel="icon" type="image/png" href="{_SWAGGER}/favicon-32x32.png" sizes="32x32">'


def docs_assets() -> list[object]:
    """Swagger UI's files at ``/docs-assets/swagger/`` and Scalar's at ``/docs-assets/scalar/``,
    public like the schema they render."""
    swagger = resources.files("swagger_ui").joinpath("static")
    scalar = resources.files("service.assets").joinpath("scalar")
    return [
        create_static_files_router(path=_SWAGGER, directories=[str(swagger)], include_in_schema=False),
        scalar_bundle,
        create_static_files_router(path=_SCALAR, directories=[str(scalar)], include_in_schema=False),
    ]


@get(f"{_SCALAR_BUNDLE}", include_in_schema=False, sync_to_thread=False)
def scalar_bundle(request: Request) -> Response[bytes]:
    """Scalar's bundle, kept gzipped in the repository (0.9 MB instead of 3.3): sent as it is to
    clients that take gzip (every browser), inflated for the others."""
    data = resources.files("service.assets").joinpath("scalar/standalone.js.gz").read_bytes()
    headers = {"Vary": "Accept-Encoding", "Cache-Control": "public, max-age=86400"}
    if "gzip" in request.headers.get("accept-encoding", ""):
        return Response(data, media_type="text/javascript", headers={**headers, "Content-Encoding": "gzip"})
    return Response(gzip.decompress(data), media_type="text/javascript", headers=headers)


def render_plugins() -> list[object]:
    """Swagger at ``/schema/swagger`` (the default page) and Scalar at ``/schema/scalar``, both from
    our own assets."""
    swagger = SwaggerRenderPlugin(
        js_url=f"{_SWAGGER}/swagger-ui-bundle.js",
        css_url=f"{_SWAGGER}/swagger-ui.css",
        standalone_preset_js_url=f"{_SWAGGER}/swagger-ui-standalone-preset.js",
        favicon=_FAVICON,
    )
    scalar = ScalarRenderPlugin(
        js_url=_SCALAR_BUNDLE,
        css_url=f"{_SCALAR}/scalar.css",
        options={"withDefaultFonts": False},  # the default fonts come from fonts.scalar.com
        favicon=_FAVICON,
    )
    return [swagger, scalar]

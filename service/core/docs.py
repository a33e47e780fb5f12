"""The interactive API pages, working without internet: Swagger UI's assets are served by the
service itself (from the ``swagger-ui-py`` package), not a CDN."""

from __future__ import annotations

from importlib import resources

from litestar.openapi.plugins import ScalarRenderPlugin, SwaggerRenderPlugin
from litestar.router import Router
from litestar.static_files import create_static_files_router

ASSETS_PATH = "/docs-assets"
_SWAGGER = f"{ASSETS_PATH}/swagger"
_FAVICON = f'<link rel="icon" type="image/png" href="{_SWAGGER}/favicon-32x32.png" sizes="32x32">'


def docs_assets() -> Router:
    """Swagger UI's files at ``/docs-assets/swagger/``, public like the schema they render."""
    directory = resources.files("swagger_ui").joinpath("static")
    return create_static_files_router(path=_SWAGGER, directories=[str(directory)], include_in_schema=False)


def render_plugins() -> list[object]:
    """Swagger at ``/schema/swagger`` (the default page) from our own assets; Scalar at
    ``/schema/scalar`` still loads its script from its CDN (no package ships it)."""
    swagger = SwaggerRenderPlugin(
        js_url=f"{_SWAGGER}/swagger-ui-bundle.js",
        css_url=f"{_SWAGGER}/swagger-ui.css",
        standalone_preset_js_url=f"{_SWAGGER}/swagger-ui-standalone-preset.js",
        favicon=_FAVICON,
    )
    return [swagger, ScalarRenderPlugin()]

"""The interactive API pages, working without internet: Swagger UI's assets are served by the
service itself (from the ``swagger-ui-py`` package), Scalar's from its bundle vendored in
``service/assets/scalar`` (no Python package ships it), never from a CDN."""

from __future__ import annotations

from importlib import resources

from litestar.openapi.plugins import ScalarRenderPlugin, SwaggerRenderPlugin
from litestar.router import Router
from litestar.static_files import create_static_files_router

ASSETS_PATH = "/docs-assets"
_SWAGGER = f"{ASSETS_PATH}/swagger"
_SCALAR = f"{ASSETS_PATH}/scalar"
_FAVICON = f'<link rel="icon" type="image/png" href="{_SWAGGER}/favicon-32x32.png" sizes="32x32">'


def docs_assets() -> list[Router]:
    """Swagger UI's files at ``/docs-assets/swagger/`` and Scalar's at ``/docs-assets/scalar/``,
    public like the schema they render."""
    swagger = resources.files("swagger_ui").joinpath("static")
    scalar = resources.files("service.assets").joinpath("scalar")
    return [
        create_static_files_router(path=_SWAGGER, directories=[str(swagger)], include_in_schema=False),
        create_static_files_router(path=_SCALAR, directories=[str(scalar)], include_in_schema=False),
    ]


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
        js_url=f"{_SCALAR}/standalone.js",
        css_url=f"{_SCALAR}/scalar.css",
        options={"withDefaultFonts": False},  # the default fonts come from fonts.scalar.com
        favicon=_FAVICON,
    )
    return [swagger, scalar]

"""FastAPI application: the page, ``POST /api/compress`` (PNG or JSON), ``POST /api/compare``,
``GET /api/methods``, ``GET /api/settings`` and ``GET /api/health``.

Uploads are processed in memory; a client's file name never becomes a path. The form is read
into :class:`~colorquant.settings.Settings` by :mod:`.form`, from the same registries as the
command line, so a registered method or figure is offered here without touching this file.
Limits: the body size and a minimum upload rate are enforced while the body streams in (413,
408), the pixel count from the image header (413), images in progress (503 with Retry-After;
a slot is taken only once the body is in). Host names outside ``allowed_hosts`` get 400.
Every response carries nosniff, ``X-Frame-Options: DENY``, ``Referrer-Policy: no-referrer``
and a Content-Security-Policy without inline script; every error, 404 and 405 included, has
a JSON body ``{"error": ..., "status": ...}``.
"""

from __future__ import annotations

import base64
import re
import time
from dataclasses import dataclass
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException

from .. import __version__
from ..errors import (ColorquantError, ImageReadError, ImageTooLargeError, InvalidParameterError,
                      QualityTooLowError)
from .form import FormError, form_schema, read_upload

__all__ = ["WebSettings", "create_app"]

STATIC = Path(__file__).resolve().parent / "static"
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class WebSettings:
    """The server's limits.

    min_upload_rate, upload_grace_seconds : an upload must arrive at ``min_upload_rate``
        bytes per second on average, counted after ``upload_grace_seconds`` (so a slow start
        or a pause is forgiven); slower ones are cut off with 408 and hold nothing meanwhile
        but their connection (a processing slot is taken only once the body is in)
    allowed_hosts : Host header names accepted (``*``: any); others get 400, which stops
        DNS-rebinding pages from reaching a server on 127.0.0.1
    batch_max_files, batch_max_bytes : how many images, and how many bytes in all, the page
        takes in one batch (each image is its own request, within the limits above)
    max_pixels_in_flight : the pixels of all images in progress together (an image alone is
        always taken, up to ``max_pixels``): what bounds the server's memory, since a request
        costs in proportion to its pixels (a 40 MP photo with dithering and SSIMULACRA2 about
        1.1 GB at its peak), not to its upload's bytes
    """

    max_upload_bytes: int = 25 * 1024 * 1024
    max_pixels: int = 40_000_000
    max_in_flight: int = 2
    batch_max_files: int = 100
    batch_max_bytes: int = 200 * 1024 * 1024
    min_upload_rate: int = 16 * 1024
    upload_grace_seconds: float = 10.0
    allowed_hosts: tuple = ("*",)
    max_pixels_in_flight: int = 40_000_000


def error_response(status: int, message: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"error": message, "status": status}, status_code=status, headers=headers)


def failure(error: ColorquantError) -> JSONResponse:
    """The one place where a library error becomes an HTTP status."""
    message = error.describe("web").replace("<bytes>: ", "")
    if isinstance(error, ImageTooLargeError):
        return error_response(413, message)
    if isinstance(error, ImageReadError):
        return error_response(415, message)
    if isinstance(error, (InvalidParameterError, QualityTooLowError)):
        return error_response(422, message)
    return error_response(500, message)


class _BodyRefused(Exception):
    def __init__(self, status: int, message: str):
        self.status, self.message = status, message


# The page and its script come from this server only: no inline script, no framing, no
# referrer. The API docs (Swagger UI) set inline styles, so they alone may have them.
_PAGE_POLICY = ("default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; "
                "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
                "frame-ancestors 'none'")
_DOCS_POLICY = _PAGE_POLICY.replace("style-src 'self'", "style-src 'self' 'unsafe-inline'")
_SECURITY_HEADERS = ((b"x-content-type-options", b"nosniff"), (b"x-frame-options", b"DENY"),
                     (b"referrer-policy", b"no-referrer"))


class GuardMiddleware:
    """ASGI middleware in front of everything: the Host header, the body's size and rate
    while it streams in, and the security headers on every response."""

    def __init__(self, app, settings: WebSettings):
        self.app, self.settings = app, settings
        hosts = {host.lower() for host in settings.allowed_hosts}
        self.any_host = "*" in hosts
        self.hosts = hosts

    def _host_allowed(self, scope) -> bool:
        if self.any_host:
            return True
        host = dict(scope.get("headers", [])).get(b"host", b"").decode("latin-1").lower()
        name = host.rsplit(":", 1)[0] if not host.endswith("]") else host  # strip the port
        return name in self.hosts or name.strip("[]") in self.hosts

    async def __call__(self, scope, receive, send):
        import asyncio

        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        policy = (_DOCS_POLICY if scope["path"].startswith(("/docs", "/static/docs")) else _PAGE_POLICY).encode()

        async def send_guarded(message):
            if message["type"] == "http.response.start":
                ours = {name for name, _ in _SECURITY_HEADERS} | {b"content-security-policy"}
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() not in ours]
                headers += [*_SECURITY_HEADERS, (b"content-security-policy", policy)]
                message = {**message, "headers": headers}
            await send(message)

        if not self._host_allowed(scope):
            return await error_response(400, "this server does not answer to that host name "
                                             "(see colorquant serve --allowed-hosts)")(scope, receive, send_guarded)
        if scope["method"] != "POST":
            return await self.app(scope, receive, send_guarded)
        settings = self.settings
        limit = settings.max_upload_bytes
        too_large = f"upload is larger than the limit of {limit:,} bytes"
        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            return await error_response(413, too_large)(scope, receive, send_guarded)
        loop = asyncio.get_running_loop()
        opened = loop.time()
        received = 0
        refused = None
        started = body_done = False

        async def guarded_receive():
            nonlocal received, refused, body_done
            if body_done:
                return await receive()
            # the body must keep up with the minimum rate, counted after the grace period
            deadline = opened + settings.upload_grace_seconds + received / settings.min_upload_rate
            try:
                message = await asyncio.wait_for(receive(), timeout=max(0.0, deadline - loop.time()))
            except asyncio.TimeoutError:
                refused = _BodyRefused(408, f"upload too slow: under {settings.min_upload_rate:,} "
                                            "bytes per second; try again on a faster connection")
                raise refused from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                body_done = not message.get("more_body", False)
                if received > limit:
                    refused = _BodyRefused(413, too_large)
                    raise refused
            return message

        async def tracking_send(message):
            nonlocal started
            if refused is not None:
                return  # the app's answer to a cut-off body: ours wins
            if message["type"] == "http.response.start":
                started = True
            await send_guarded(message)

        try:
            await self.app(scope, guarded_receive, tracking_send)
        except _BodyRefused:
            pass
        if refused is not None and not started:
            headers = {"Connection": "close"}
            await error_response(refused.status, refused.message, headers)(scope, receive, send_guarded)


class Slots:
    """Images in progress: at most ``limit`` of them, of at most ``max_pixels`` pixels
    together (one image is always taken when nothing else is in progress); one event loop, so
    no lock is needed. A slot is taken only once the upload has been received in full."""

    def __init__(self, limit: int, max_pixels: int):
        self.limit, self.max_pixels = limit, max_pixels
        self.in_use, self.pixels = 0, 0

    def try_take(self, pixels: int) -> bool:
        if self.in_use >= self.limit or (self.in_use and self.pixels + pixels > self.max_pixels):
            return False
        self.in_use += 1
        self.pixels += pixels
        return True

    def give_back(self, pixels: int) -> None:
        self.in_use -= 1
        self.pixels -= pixels


def _busy() -> JSONResponse:
    return error_response(503, "busy: too many images in progress; retry shortly", {"Retry-After": "1"})


def download_name(upload_name: str | None, method: str, n_colors: int, format_name: str) -> str:
    """The CLI's default output name for the upload's stem, reduced to safe characters."""
    from ..compress import default_output_name

    stem = _SAFE_NAME.sub("_", Path(upload_name or "image").stem)[:64].strip("._") or "image"
    return default_output_name(stem + ".png", method, n_colors, format_name)


def _compress_upload(upload, methods=None) -> list[dict]:
    """Decode the upload once, then quantize, encode and measure it with each method asked
    for (in a worker thread): JSON records with the encoded bytes under ``"encoded"``."""
    from ..imageio import read_image

    started = time.perf_counter()
    loaded = read_image(upload.data, max_pixels=upload.max_pixels)
    read_seconds = time.perf_counter() - started
    return [_record(loaded, upload.filename, settings, read_seconds) for settings in upload.settings_for(methods)]


def _record(loaded, filename: str | None, settings, read_seconds: float) -> dict:
    from ..compress import compress_image, outcome_of

    started = time.perf_counter() - read_seconds
    compressed = compress_image(loaded, settings)
    # the CLI's name: the colour count asked for (or found by a target), not the count left
    # once equal entries merged (a 2-colour image at -k 16 is still ...-k16.png)
    name = download_name(filename, settings.method, compressed.result.n_colors_requested,
                         compressed.result.settings.format)
    outcome = outcome_of(filename or "image", compressed, output=name,
                         seconds=time.perf_counter() - started)
    record = outcome.as_json()
    record.update(
        filename=name,
        ratio=round(outcome.bytes_out / outcome.bytes_in, 5) if outcome.bytes_in else None,
        palette=["#" + "".join(f"{v:02x}" for v in entry[:3]) for entry in compressed.result.palette],
        search=[{"colors": step.n_colors, "value": round(step.value, 6), "meets_target": step.meets_target,
                 "dither": step.dither, "bytes": step.bytes} for step in outcome.search],
        target_met=compressed.result.target_met,
        encoded=compressed.encoded,
    )
    return record


async def _processed(request: Request, methods=None):
    """Read the upload and settings, take a slot, run every method asked for in a thread:
    a list of records, or an error response."""
    try:
        upload = await read_upload(request, request.app.state.settings)
    except FormError as problem:
        return error_response(422, str(problem))
    from ..imageio import header_pixels

    slots: Slots = request.app.state.slots
    pixels = header_pixels(upload.data) or 0  # unreadable: refused when decoded, at no cost
    if not slots.try_take(pixels):
        return _busy()
    try:
        return await run_in_threadpool(_compress_upload, upload, methods)
    except ColorquantError as problem:
        return failure(problem)
    finally:
        slots.give_back(pixels)


def _png_headers(record: dict) -> dict:
    from ..metrics import METRICS

    headers = {
        "X-Colorquant-Method": record["method"],
        "X-Colorquant-Colors": str(record["colors"]),
        "X-Colorquant-Bytes-In": str(record["bytes_in"]),
        "X-Colorquant-Bytes-Out": str(record["bytes_out"]),
        "X-Colorquant-Max-Bytes": "" if record["max_bytes"] is None else str(record["max_bytes"]),
        "X-Colorquant-Dither": str(record["dither"] or 0),
        "X-Colorquant-Seconds": str(record["seconds"]),
        "X-Colorquant-Palette": ",".join(record["palette"]),
        "Content-Disposition": f'attachment; filename="{record["filename"]}"',
    }
    for name in METRICS:  # X-Colorquant-Psnr, -Ssim, ...: "" where not computed
        value = record[name]
        if name == "psnr" and value is None and record["mse"] == 0:
            value = "inf"  # lossless
        header = "X-Colorquant-" + "-".join(part.capitalize() for part in name.split("_"))
        headers[header] = "" if value is None else str(value)
    return headers


async def compress_png(request: Request):
    """The compressed palette PNG; its figures in ``X-Colorquant-*`` headers."""
    records = await _processed(request)
    if isinstance(records, Response):
        return records
    record = records[0]
    from ..encoding import media_type

    return Response(record["encoded"], media_type=media_type(record["filename"]), headers=_png_headers(record))


def _json_record(record: dict) -> dict:
    encoded = record.pop("encoded")
    return {**record, "png_base64": base64.b64encode(encoded).decode("ascii")}


async def compress_json(request: Request):
    """The figures, the palette and the encoded file (base64) as JSON, for programs."""
    records = await _processed(request)
    if isinstance(records, Response):
        return records
    return _json_record(records[0])


async def compare(request: Request):
    """Every method on one image: a list of the JSON records of /api/compress/json."""
    from ..methods import METHODS

    records = await _processed(request, methods=list(METHODS))
    if isinstance(records, Response):
        return records
    return [_json_record(record) for record in records]


def methods():
    """Every registered method: name, title, description and options with their choices."""
    from ..methods import METHODS

    return [spec.as_json() for spec in METHODS.values()]


def settings_route(request: Request):
    """The form's fields with their bounds and defaults, and this server's limits: what the
    page builds its controls and its batch checks from."""
    from .form import settings_list

    limits = request.app.state.settings
    return {"fields": settings_list(),
            "limits": {"max_upload_bytes": limits.max_upload_bytes, "max_pixels": limits.max_pixels,
                       "max_in_flight": limits.max_in_flight, "batch_max_files": limits.batch_max_files,
                       "batch_max_bytes": limits.batch_max_bytes}}


def health():
    return {"status": "ok", "version": __version__}


def page():
    return FileResponse(STATIC / "index.html", media_type="text/html")


async def validation_error(request: Request, error: RequestValidationError):
    problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'][1:]) or 'request'}: {e['msg']}"
                         for e in error.errors())
    return error_response(422, problems)


async def http_error(request: Request, error: HTTPException):
    """404, 405 and the like in the documented shape, not FastAPI's ``{"detail": ...}``."""
    messages = {404: f"not found: {request.url.path}",
                405: f"{request.method} is not allowed on {request.url.path}"}
    message = messages.get(error.status_code, str(error.detail))
    return error_response(error.status_code, message, getattr(error, "headers", None))


def docs_page():
    """Swagger UI from files installed with the web extra (fastapi-offline's copy): the API
    docs work without a network, and without inline script."""
    return FileResponse(STATIC / "docs.html", media_type="text/html")


def _swagger_files() -> Path:
    from importlib.resources import files

    return Path(str(files("fastapi_offline") / "static"))


def create_app(settings: WebSettings | None = None) -> FastAPI:
    """The application; ``settings`` sets the limits."""
    app = FastAPI(title="colorquant", version=__version__, docs_url=None, redoc_url=None,
                  description="Smaller images through palettes learned by clustering.")
    app.state.settings = settings or WebSettings()
    app.state.slots = Slots(app.state.settings.max_in_flight, app.state.settings.max_pixels_in_flight)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(HTTPException, http_error)
    app.add_api_route("/", page, methods=["GET", "HEAD"], include_in_schema=False)
    app.add_api_route("/docs", docs_page, methods=["GET", "HEAD"], include_in_schema=False)
    app.mount("/static/docs", StaticFiles(directory=_swagger_files()), name="docs")  # before /static
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    for path, endpoint in (("/api/health", health), ("/api/methods", methods), ("/api/settings", settings_route)):
        app.add_api_route(path, endpoint, methods=["GET"])
        # HEAD as a route of its own, out of the schema: one route with both methods gives
        # the schema two operations of one id
        app.add_api_route(path, endpoint, methods=["HEAD"], include_in_schema=False)
    schema = {"requestBody": form_schema()}
    app.add_api_route("/api/compress", compress_png, methods=["POST"], response_class=Response,
                      responses={200: {"content": {"image/png": {}}}}, openapi_extra=schema)
    app.add_api_route("/api/compress/json", compress_json, methods=["POST"], openapi_extra=schema)
    app.add_api_route("/api/compare", compare, methods=["POST"], openapi_extra=schema)
    app.add_middleware(GuardMiddleware, settings=app.state.settings)
    return app

"""FastAPI application: the page, ``POST /api/compress`` (PNG or JSON), ``POST /api/compare``,
``GET /api/methods`` and ``GET /api/health``.

Uploads are processed in memory; a client's file name never becomes a path. The form is read
into :class:`~colorquant.settings.Settings` by :mod:`.form`, from the same registries as the
command line, so a registered method or figure is offered here without touching this file.
Limits: the body size is enforced while it streams in (413), the pixel count from the image
header (413), images in progress (503 with Retry-After). Every response carries
``X-Content-Type-Options: nosniff``; every error has a JSON body ``{"error": ..., "status": ...}``.
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

from .. import __version__
from ..errors import (ColorquantError, ImageReadError, ImageTooLargeError, InvalidParameterError,
                      QualityTooLowError)
from .form import FormError, form_schema, read_upload

__all__ = ["WebSettings", "create_app"]

STATIC = Path(__file__).resolve().parent / "static"
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class WebSettings:
    max_upload_bytes: int = 25 * 1024 * 1024
    max_pixels: int = 40_000_000
    max_in_flight: int = 2


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


class _BodyTooLarge(Exception):
    pass


class LimitsMiddleware:
    """ASGI middleware: the body size while it streams in, and nosniff on every response."""

    def __init__(self, app, settings: WebSettings):
        self.app, self.settings = app, settings

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def send_nosniff(message):
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"x-content-type-options"]
                message = {**message, "headers": headers + [(b"x-content-type-options", b"nosniff")]}
            await send(message)

        if scope["method"] != "POST":
            return await self.app(scope, receive, send_nosniff)
        limit = self.settings.max_upload_bytes
        too_large = f"upload is larger than the limit of {limit:,} bytes"
        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            return await error_response(413, too_large)(scope, receive, send_nosniff)
        received = 0
        exceeded = started = False

        async def counting_receive():
            nonlocal received, exceeded
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    exceeded = True
                    raise _BodyTooLarge()
            return message

        async def tracking_send(message):
            nonlocal started
            if exceeded:
                return  # the app's answer to a cut-off body: ours wins
            if message["type"] == "http.response.start":
                started = True
            await send_nosniff(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except _BodyTooLarge:
            pass
        if exceeded and not started:
            await error_response(413, too_large)(scope, receive, send_nosniff)


class Slots:
    """Images in progress, at most ``limit``; one event loop, so no lock is needed. A slot is
    taken only once the upload has been received in full."""

    def __init__(self, limit: int):
        self.limit, self.in_use = limit, 0

    def try_take(self) -> bool:
        if self.in_use >= self.limit:
            return False
        self.in_use += 1
        return True

    def give_back(self) -> None:
        self.in_use -= 1


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
    name = download_name(filename, settings.method, compressed.figures.n_colors, settings.format)
    outcome = outcome_of(filename or "image", compressed, output=name,
                         seconds=time.perf_counter() - started)
    record = outcome.as_json()
    record.update(
        filename=name,
        ratio=round(outcome.bytes_out / outcome.bytes_in, 5) if outcome.bytes_in else None,
        palette=["#" + "".join(f"{v:02x}" for v in entry[:3]) for entry in compressed.result.palette],
        search=[{"colors": step.n_colors, "value": round(step.value, 6), "meets_target": step.meets_target}
                for step in outcome.search],
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
    slots: Slots = request.app.state.slots
    if not slots.try_take():
        return _busy()
    try:
        return await run_in_threadpool(_compress_upload, upload, methods)
    except ColorquantError as problem:
        return failure(problem)
    finally:
        slots.give_back()


def _png_headers(record: dict) -> dict:
    from ..metrics import METRICS

    headers = {
        "X-Colorquant-Method": record["method"],
        "X-Colorquant-Colors": str(record["colors"]),
        "X-Colorquant-Bytes-In": str(record["bytes_in"]),
        "X-Colorquant-Bytes-Out": str(record["bytes_out"]),
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
    from ..imageio import media_type

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


def health():
    return {"status": "ok", "version": __version__}


def page():
    return FileResponse(STATIC / "index.html", media_type="text/html")


async def validation_error(request: Request, error: RequestValidationError):
    problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'][1:]) or 'request'}: {e['msg']}"
                         for e in error.errors())
    return error_response(422, problems)


def create_app(settings: WebSettings | None = None) -> FastAPI:
    """The application; ``settings`` sets the limits."""
    app = FastAPI(title="colorquant", version=__version__,
                  description="Smaller images through palettes learned by clustering.")
    app.state.settings = settings or WebSettings()
    app.state.slots = Slots(app.state.settings.max_in_flight)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_api_route("/", page, methods=["GET"], include_in_schema=False)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.add_api_route("/api/health", health, methods=["GET"])
    app.add_api_route("/api/methods", methods, methods=["GET"])
    schema = {"requestBody": form_schema()}
    app.add_api_route("/api/compress", compress_png, methods=["POST"], response_class=Response,
                      responses={200: {"content": {"image/png": {}}}}, openapi_extra=schema)
    app.add_api_route("/api/compress/json", compress_json, methods=["POST"], openapi_extra=schema)
    app.add_api_route("/api/compare", compare, methods=["POST"], openapi_extra=schema)
    app.add_middleware(LimitsMiddleware, settings=app.state.settings)
    return app

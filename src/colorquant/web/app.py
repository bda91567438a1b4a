"""FastAPI application: the page, ``POST /api/compress`` (PNG or JSON), ``POST /api/compare``
and ``GET /api/health``.

Uploads are processed in memory; a client's file name never becomes a path. Limits: the body
size is enforced while it streams in (413), the pixel count from the image header (413),
requests in flight (503 with Retry-After). Every response carries
``X-Content-Type-Options: nosniff``; every error has a JSON body ``{"error": ...}``.
"""

import base64
import re
import time
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

from fastapi import FastAPI, File, Form, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles

from .. import __version__
from ..errors import ColorquantError, ImageReadError, ImageTooLargeError, InvalidParameterError

STATIC = Path(__file__).resolve().parent / "static"
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class WebSettings:
    max_upload_bytes: int = 25 * 1024 * 1024
    max_pixels: int = 40_000_000
    max_in_flight: int = 2


class Method(str, Enum):
    kmeans = "kmeans"
    minibatch = "minibatch"
    gmm = "gmm"


class ColorSpace(str, Enum):
    rgb = "rgb"
    lab = "lab"
    oklab = "oklab"


# Form fields of the compress endpoints (FastAPI reads these annotations at run time).
Upload = Annotated[UploadFile, File(description="the image: PNG, JPEG, WebP, GIF, BMP or TIFF")]
MethodField = Annotated[Method, Form()]
ColorsField = Annotated[Optional[int], Form(
    ge=2, le=256, description="colours (default 16), or the upper bound with a target (default 256)")]
TargetField = Annotated[Optional[float], Form(gt=0, le=100, description="PSNR target in dB")]
DitherField = Annotated[float, Form(ge=0, le=1)]
SpaceField = Annotated[ColorSpace, Form()]


def _error(status: int, message: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"error": message, "status": status}, status_code=status, headers=headers)


class _BodyTooLarge(Exception):
    pass


class LimitsMiddleware:
    """ASGI middleware: body size while streaming, requests in flight, nosniff everywhere."""

    def __init__(self, app, settings: WebSettings):
        self.app, self.settings = app, settings
        self.in_flight = 0  # one event loop: no lock needed

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def send_nosniff(message):
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"x-content-type-options"]
                message = {**message, "headers": headers + [(b"x-content-type-options", b"nosniff")]}
            await send(message)

        limited = scope["path"].startswith("/api/compress") or scope["path"].startswith("/api/compare")
        if not limited:
            return await self.app(scope, receive, send_nosniff)
        limit = self.settings.max_upload_bytes
        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            return await _error(413, f"upload is larger than the limit of {limit:,} bytes")(scope, receive, send_nosniff)
        if self.in_flight >= self.settings.max_in_flight:
            return await _error(503, "busy: too many images in progress; retry shortly",
                                {"Retry-After": "1"})(scope, receive, send_nosniff)
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
                return  # the app's answer to a cut-off body (FastAPI makes it a 400): ours wins
            if message["type"] == "http.response.start":
                started = True
            await send_nosniff(message)

        self.in_flight += 1
        try:
            await self.app(scope, counting_receive, tracking_send)
        except _BodyTooLarge:
            pass
        finally:
            self.in_flight -= 1
        if exceeded and not started:
            await _error(413, f"upload is larger than the limit of {limit:,} bytes")(scope, receive, send_nosniff)


def create_app(settings: WebSettings | None = None) -> FastAPI:
    """The application; ``settings`` sets the limits."""
    settings = settings or WebSettings()
    app = FastAPI(title="colorquant", version=__version__,
                  description="Smaller images through palettes learned by clustering.")

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, error: RequestValidationError):
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'][1:]) or 'request'}: {e['msg']}"
                             for e in error.errors())
        return _error(422, problems)

    @app.get("/", include_in_schema=False)
    def page():
        return FileResponse(STATIC / "index.html", media_type="text/html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/api/health")
    def health():
        return {"status": "ok", "version": __version__}

    def run(data: bytes, method: str, colors: int, target_psnr: float | None, dither: float,
            color_space: str):
        from ..api import quantize

        options = {"method": method, "max_pixels": settings.max_pixels, "dither": dither,
                   "color_space": color_space, "n_colors": colors, "target_psnr": target_psnr}
        started = time.perf_counter()
        result = quantize(data, **options)
        encoded = result.encode("png")
        figures = result.measure(encoded, "png")
        return result, encoded, figures, time.perf_counter() - started

    def failure(error: ColorquantError) -> JSONResponse:
        if isinstance(error, ImageTooLargeError):
            return _error(413, str(error).replace("<bytes>: ", ""))
        if isinstance(error, ImageReadError):
            return _error(415, str(error).replace("<bytes>: ", ""))
        if isinstance(error, InvalidParameterError):
            return _error(422, str(error))
        from ..errors import QualityTooLowError

        if isinstance(error, QualityTooLowError):
            return _error(422, str(error))
        return _error(500, str(error))

    def describe(name, result, encoded, figures, seconds, bytes_in) -> dict:
        return {
            "filename": name, "method": result.method, "colors": figures.n_colors,
            "psnr": None if figures.psnr == float("inf") else round(figures.psnr, 4),
            "ssim": None if figures.ssim is None else round(figures.ssim, 5),
            "mse": round(figures.mse, 4), "bytes_in": bytes_in, "bytes_out": len(encoded),
            "ratio": round(len(encoded) / bytes_in, 5) if bytes_in else None,
            "seconds": round(seconds, 4),
            "palette": ["#" + "".join(f"{v:02x}" for v in entry[:3]) for entry in result.palette],
            "search": [{"colors": s.n_colors, "psnr": round(s.value, 4)} for s in result.search],
        }

    def output_name(upload_name: str | None, method: str, n_colors: int) -> str:
        stem = _SAFE_NAME.sub("_", Path(upload_name or "image").stem)[:64] or "image"
        return f"{stem}-{method}-k{n_colors}.png"

    def process(file: UploadFile, method: Method, colors, target_psnr, dither, color_space):
        """(record, PNG bytes) for one upload, or the JSON error response."""
        data = file.file.read()
        try:
            result, encoded, figures, seconds = run(data, method.value, colors, target_psnr, dither,
                                                    color_space.value)
        except ColorquantError as error:
            return failure(error), None
        name = output_name(file.filename, method.value, figures.n_colors)
        return describe(name, result, encoded, figures, seconds, len(data)), encoded

    @app.post("/api/compress", responses={200: {"content": {"image/png": {}}}},
              response_class=Response)
    def compress(file: Upload, method: MethodField = Method.kmeans, colors: ColorsField = None,
                 target_psnr: TargetField = None, dither: DitherField = 0.0,
                 color_space: SpaceField = ColorSpace.rgb):
        """The compressed palette PNG; its figures in ``X-Colorquant-*`` headers."""
        info, encoded = process(file, method, colors, target_psnr, dither, color_space)
        if encoded is None:
            return info
        headers = {
            "X-Colorquant-Method": info["method"],
            "X-Colorquant-Colors": str(info["colors"]),
            "X-Colorquant-Psnr": "inf" if info["psnr"] is None else str(info["psnr"]),
            "X-Colorquant-Ssim": "" if info["ssim"] is None else str(info["ssim"]),
            "X-Colorquant-Bytes-In": str(info["bytes_in"]),
            "X-Colorquant-Bytes-Out": str(info["bytes_out"]),
            "X-Colorquant-Seconds": str(info["seconds"]),
            "X-Colorquant-Palette": ",".join(info["palette"]),
            "Content-Disposition": f'attachment; filename="{info["filename"]}"',
        }
        return Response(encoded, media_type="image/png", headers=headers)

    @app.post("/api/compress/json")
    def compress_json(file: Upload, method: MethodField = Method.kmeans, colors: ColorsField = None,
                      target_psnr: TargetField = None, dither: DitherField = 0.0,
                      color_space: SpaceField = ColorSpace.rgb):
        """The figures, the palette and the PNG (base64) as JSON, for programs."""
        info, encoded = process(file, method, colors, target_psnr, dither, color_space)
        if encoded is None:
            return info
        return {**info, "png_base64": base64.b64encode(encoded).decode("ascii")}

    @app.post("/api/compare")
    def compare(file: Upload, colors: ColorsField = None, target_psnr: TargetField = None,
                dither: DitherField = 0.0, color_space: SpaceField = ColorSpace.rgb):
        """All three methods on one image: a list of the JSON records of /api/compress/json."""
        records = []
        for method in Method:
            file.file.seek(0)
            info, encoded = process(file, method, colors, target_psnr, dither, color_space)
            if encoded is None:
                return info
            records.append({**info, "png_base64": base64.b64encode(encoded).decode("ascii")})
        return records

    app.add_middleware(LimitsMiddleware, settings=settings)
    return app

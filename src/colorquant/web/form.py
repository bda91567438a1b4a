"""The web form: its fields, read into :class:`~colorquant.settings.Settings`.

The fields come from the same places as the command line's options: the methods registry
(``method`` and each method option by name, e.g. ``covariance_type``), the metrics registry
(``target_<figure>``) and the bounds in :mod:`colorquant.settings`. ``form_schema`` describes
them for the OpenAPI docs; ``GET /api/methods`` lists the methods for the page.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import InvalidParameterError
from ..effort import DEFAULT_SPEED, MAX_SPEED, MIN_SPEED
from ..settings import COLOR_SPACES, FORMATS, FRONT_END_COLORS, FRONT_END_SPACE, MAX_COLORS, MAX_SEED, MIN_COLORS

__all__ = ["FormError", "Upload", "read_upload", "form_schema", "settings_list"]


class FormError(Exception):
    """A field is missing, unknown or out of range (422)."""


def _fields() -> dict:
    """Every field but ``file``: name -> (JSON-schema type, description, extra schema)."""
    from ..methods import METHODS, options_for_flag
    from ..metrics import METRICS

    fields = {
        "method": ("string", "palette method", {"enum": list(METHODS), "default": "kmeans"}),
        "colors": ("integer", "colours (default 200, in Oklab unless color_space is given), or the "
                              "upper bound with a target or a budget (default 256)",
                   {"minimum": MIN_COLORS, "maximum": MAX_COLORS}),
        "seed": ("integer", "random seed (default 0)", {"minimum": 0, "maximum": MAX_SEED}),
        "speed": ("integer", "1 (slowest, best) to 11 (fastest), default 4",
                  {"minimum": MIN_SPEED, "maximum": MAX_SPEED}),
        "metrics": ("string", "figures beyond MSE and PSNR, comma-separated, or all (default ssim)", {}),
        "color_space": ("string", "space to cluster in (default mixed; rgb for a PSNR or MSE target)",
                        {"enum": list(COLOR_SPACES)}),
        "dither": ("number", "error diffusion 0-1 (default: none, or the level a budget or a "
                             "SSIMULACRA2 target finds best)", {"minimum": 0, "maximum": 1}),
        "max_size": ("string", "fit under: the best-looking output of at most this many bytes "
                               "(150000, 100KB, 2MiB, 64k, or 30% of the upload)", {}),
        "format": ("string", "output format", {"enum": list(FORMATS), "default": "png"}),
        "quality": ("string", "pngquant-style MIN-MAX, 0-100 (instead of a target)", {}),
        "min_colors": ("integer", "lower bound of a target's search (default 2)",
                       {"minimum": MIN_COLORS, "maximum": MAX_COLORS}),
    }
    for name, metric in METRICS.items():
        if metric.target_bounds is not None:
            relation = "at least" if metric.higher_is_better else "at most"
            low, high, _ = metric.target_bounds
            fields[f"target_{name}"] = ("number", f"fewest colours with {metric.title} {relation} this",
                                        {"minimum": low, "maximum": high, "title": metric.title,
                                         "unit": metric.unit or ""})
    for option, methods in options_for_flag().values():
        fields[option.name] = ("string", f"{option.help} (methods: {', '.join(methods)})",
                               {"enum": list(option.choices)})
    return fields


def settings_list() -> list[dict]:
    """Every form field but ``file`` with its JSON schema, for ``GET /api/settings``: the page
    builds its controls (speed, the targets...) from it."""
    from ..effort import DEFAULT_SPEED

    defaults = {"speed": DEFAULT_SPEED, "seed": 0, "colors": FRONT_END_COLORS}
    listed = []
    for name, (kind, description, extra) in _fields().items():
        entry = {"name": name, "type": kind, "description": description, **extra}
        if name in defaults:
            entry.setdefault("default", defaults[name])
        listed.append(entry)
    return listed


def form_schema() -> dict:
    """OpenAPI requestBody of the compress endpoints (multipart form)."""
    properties = {"file": {"type": "string", "format": "binary",
                           "description": "the image: PNG, JPEG, WebP, GIF, BMP or TIFF"}}
    for name, (kind, description, extra) in _fields().items():
        properties[name] = {"type": kind, "description": description,
                            **{key: value for key, value in extra.items() if key != "unit"}}
    return {"required": True, "content": {"multipart/form-data": {
        "schema": {"type": "object", "required": ["file"], "properties": properties}}}}


@dataclass(frozen=True)
class Upload:
    """One uploaded image and the form's settings."""

    data: bytes
    filename: str | None
    fields: dict
    max_pixels: int

    def settings_for(self, methods=None) -> list:
        """Settings for the form's method, or one per method of ``methods`` (each taking the
        method options it has)."""
        names = methods or [self.fields.get("method", "kmeans")]
        return [_settings(self.fields, name, self.max_pixels, strict=methods is None) for name in names]


def _number(name: str, text: str, kind: str):
    try:
        return int(text) if kind == "integer" else float(text)
    except ValueError:
        expected = "an integer" if kind == "integer" else "a number"
        raise FormError(f"{name}: must be {expected}; got {text!r}") from None


def _settings(fields: dict, method: str, max_pixels: int, *, strict: bool):
    from ..methods import get_method, options_for_flag
    from ..metrics import METRICS
    from ..settings import Settings

    try:
        spec = get_method(method)
    except InvalidParameterError as error:
        raise FormError(str(error)) from None
    accepted = {option.name for option in spec.options}
    options = {}
    for option, methods in options_for_flag().values():
        if option.name in fields:
            if option.name in accepted:
                options[option.name] = fields[option.name]
            elif strict:
                raise FormError(f"{option.name}: applies to method {' or '.join(methods)} only")
    targets = {f"target_{name}": fields.get(f"target_{name}") for name in METRICS
               if METRICS[name].target_bounds is not None}
    try:
        metrics = [name.strip().lower() for name in fields.get("metrics", "ssim").split(",") if name.strip()]
        if metrics == ["all"]:  # as on the command line
            metrics = list(METRICS)
        n_colors, color_space = fields.get("colors"), fields.get("color_space")
        searched = fields.get("quality") is not None or fields.get("max_size") is not None \
            or any(value is not None for value in targets.values())
        if n_colors is None and not searched and strict:  # one method: the page's default
            n_colors, color_space = FRONT_END_COLORS, color_space or FRONT_END_SPACE
        return Settings.from_keywords(
            n_colors=n_colors, method=method, random_state=fields.get("seed", 0),
            speed=fields.get("speed", DEFAULT_SPEED), metrics=tuple(metrics),
            color_space=color_space, dither=fields.get("dither"),
            min_colors=fields.get("min_colors", MIN_COLORS), quality=fields.get("quality"),
            max_pixels=max_pixels, format=fields.get("format", "png"), max_size=fields.get("max_size"),
            keep_animation_format="format" not in fields,  # an animated GIF comes back a GIF
            **targets, **options)
    except InvalidParameterError as error:
        message = re.sub(r"\bn_colors\b", "colors", str(error))
        raise FormError(re.sub(r"\brandom_state\b", "seed", message)) from None


async def read_upload(request, web_settings) -> Upload:
    """The form of ``request``, checked: raises FormError for a missing file or a bad field."""
    from starlette.datastructures import UploadFile
    from starlette.exceptions import HTTPException
    from starlette.requests import ClientDisconnect

    known = _fields()
    try:
        form = await request.form(max_files=1, max_fields=len(known) + 1)
    except HTTPException as error:  # a malformed multipart body
        raise FormError(f"request: {error.detail}") from None
    except ClientDisconnect:  # gone mid-upload: nobody to answer, nothing to log
        raise FormError("request: the client went away during the upload") from None
    upload = form.get("file")
    if not isinstance(upload, UploadFile):
        raise FormError("file: a file upload is required")
    fields = {}
    for name, value in form.multi_items():
        if name == "file":
            continue
        if name not in known:
            raise FormError(f"{name}: unknown field (known: file, {', '.join(known)})")
        if not isinstance(value, str):
            raise FormError(f"{name}: must be a value, not a file")
        if value == "":
            continue  # an empty field is an absent one
        kind = known[name][0]
        fields[name] = _number(name, value, kind) if kind in ("integer", "number") else value
    data = await upload.read()
    _settings(fields, fields.get("method", "kmeans"), web_settings.max_pixels, strict=True)  # check now
    return Upload(data=data, filename=upload.filename, fields=fields, max_pixels=web_settings.max_pixels)

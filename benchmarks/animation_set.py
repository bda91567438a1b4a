"""Animations to measure and check colorquant on (issue 26).

Clips made from photographs, each saved as a full-colour APNG, a lossless animated WebP and a
GIF (Pillow's own palette for each frame, as a user's GIF is):

- ``pan``: a 384x256 window panning and zooming in over a photo, 24 frames at 80 ms, looping;
  every pixel changes on every frame;
- ``sprite``: a photo as a still background with a 96x64 view of another photo moving over it
  (a product spin, a UI demo, a sticker): most pixels never change.

Conformance files (:func:`conformance_files`): small GIFs assembled block by block here
(every disposal, transparency, frame offsets, an interlaced frame, variable delays, loop
counts, no loop at all), APNGs (every dispose and blend op, a default image outside the
animation) and animated WebPs (transparency, variable durations), each with the frames a
browser shows, worked out by hand for the GIFs.

    python benchmarks/animation_set.py OUT_DIR      # writes the clips of the first 6 CQ100 photos
"""

from __future__ import annotations

import io
import struct
import sys
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

CLIP_SIZE = (384, 256)
CLIP_FRAMES = 24
CLIP_DELAY_MS = 80


def _rgb(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def pan_frames(photo: np.ndarray, n_frames: int = CLIP_FRAMES, size=CLIP_SIZE) -> list[np.ndarray]:
    """A window moving from the top left towards the bottom right of ``photo`` while zooming
    in from 90% to 60% of its width, each view resized to ``size``."""
    height, width = photo.shape[:2]
    aspect = size[1] / size[0]
    image = Image.fromarray(photo)
    frames = []
    for index in range(n_frames):
        t = index / max(1, n_frames - 1)
        view_width = width * (0.9 - 0.3 * t)
        view_height = min(height, view_width * aspect)
        view_width = view_height / aspect
        left = (width - view_width) * (0.1 + 0.8 * t)
        top = (height - view_height) * (0.2 + 0.6 * t)
        box = (left, top, left + view_width, top + view_height)
        frames.append(np.asarray(image.resize(size, Image.Resampling.LANCZOS, box=box)))
    return frames


def sprite_frames(background: np.ndarray, sprite: np.ndarray, n_frames: int = CLIP_FRAMES,
                  size=CLIP_SIZE) -> list[np.ndarray]:
    """``background`` resized to ``size`` and kept still, with a view of ``sprite`` a quarter
    of its width and height (96x64 on 384x256) moving along an arc over it."""
    width, height = size
    piece_width, piece_height = width // 4, height // 4
    base = np.asarray(Image.fromarray(background).resize(size, Image.Resampling.LANCZOS))
    piece = np.asarray(Image.fromarray(sprite).resize((piece_width, piece_height), Image.Resampling.LANCZOS))
    margin = max(1, height // 32)
    frames = []
    for index in range(n_frames):
        t = index / max(1, n_frames - 1)
        left = int(round(margin + (width - piece_width - 2 * margin) * t))
        top = int(round(height - piece_height - margin - (height - piece_height - 2 * margin) * 4 * t * (1 - t)))
        frame = base.copy()
        frame[top:top + piece_height, left:left + piece_width] = piece
        frames.append(frame)
    return frames


def save_clip(frames: list[np.ndarray], stem: Path, durations=None, loop: int = 0) -> dict:
    """The frames as ``stem``.png (APNG, full colour), .webp (lossless) and .gif (Pillow's
    per-frame palettes); the paths by format."""
    durations = durations or [CLIP_DELAY_MS] * len(frames)
    images = [Image.fromarray(frame) for frame in frames]
    paths = {}
    for format_name, options in (("png", {}), ("webp", {"lossless": True, "quality": 100, "method": 4}),
                                 ("gif", {})):
        path = stem.with_suffix(f".{format_name}")
        images[0].save(path, save_all=True, append_images=images[1:], duration=list(durations), loop=loop,
                       **options)
        paths[format_name] = path
    return paths


def make_clips(photos: list[Path], folder: Path, n_frames: int = CLIP_FRAMES, size=CLIP_SIZE) -> list[dict]:
    """A pan clip of each photo, and a sprite clip of each photo with the next one moving over
    it: ``{"name", "kind", "frames", "paths"}`` each."""
    folder.mkdir(parents=True, exist_ok=True)
    clips = []
    pixels = [_rgb(path) for path in photos]
    for index, (path, photo) in enumerate(zip(photos, pixels)):
        kind = "pan" if index % 2 == 0 else "sprite"
        if kind == "pan":
            frames = pan_frames(photo, n_frames, size)
        else:
            frames = sprite_frames(photo, pixels[(index + 1) % len(pixels)], n_frames, size)
        name = f"{kind}-{path.stem}"
        clips.append({"name": name, "kind": kind, "frames": frames, "paths": save_clip(frames, folder / name)})
    return clips


# ------------------------------------------------------------------------- conformance files

BLUE, RED, GREEN, WHITE, CLEAR = (0, 0, 255, 255), (255, 0, 0, 255), (0, 255, 0, 255), (255, 255, 255, 255), (0, 0, 0, 0)


def _canvas(width: int, height: int, colour) -> np.ndarray:
    return np.tile(np.array(colour, np.uint8), (height, width, 1))


def _gif_image_block(indices: np.ndarray, interlaced: bool = False) -> tuple[bytes, bytes]:
    """(LZW code size byte, data sub-blocks and terminator) of ``indices``, coded by Pillow as
    a one-frame GIF and cut out of it."""
    height, width = indices.shape
    image = Image.frombytes("P", (width, height), np.ascontiguousarray(indices, np.uint8).tobytes())
    image.putpalette(bytes(range(256)) * 3)
    buffer = io.BytesIO()
    image.save(buffer, "GIF", interlace=interlaced, optimize=False)
    data = buffer.getvalue()
    start = data.index(b",", 13 + 3 * 256)  # the image descriptor after the colour table
    flags = data[start + 9]
    offset = start + 10 + (3 << ((flags & 7) + 1) if flags & 0x80 else 0)
    return data[offset:offset + 1], data[offset + 1:-1]


def gif_file(width: int, height: int, palette: list, frames: list[dict], loop: int | None = 0,
             background: int = 0) -> bytes:
    """A GIF assembled block by block. Each frame: ``indices`` (h, w), ``left``, ``top``,
    ``delay`` (centiseconds), ``disposal``, ``transparent`` (index or None), ``interlaced``."""
    table = bytearray(3 * 256)
    for index, colour in enumerate(palette):
        table[3 * index:3 * index + 3] = bytes(colour[:3])
    parts = [b"GIF89a", struct.pack("<HHBBB", width, height, 0xF7, background, 0), bytes(table)]
    if loop is not None:
        parts.append(b"!\xff\x0bNETSCAPE2.0\x03\x01" + struct.pack("<H", loop) + b"\0")
    for frame in frames:
        transparent = frame.get("transparent")
        flags = (frame.get("disposal", 0) << 2) | int(transparent is not None)
        parts.append(b"!\xf9\x04" + struct.pack("<BHB", flags, frame.get("delay", 10), transparent or 0) + b"\0")
        indices = frame["indices"]
        interlaced = frame.get("interlaced", False)
        parts.append(b"," + struct.pack("<HHHHB", frame.get("left", 0), frame.get("top", 0), indices.shape[1],
                                        indices.shape[0], 0x40 if interlaced else 0))
        code_size, data = _gif_image_block(indices, interlaced)
        parts += [code_size, data]
    parts.append(b";")
    return b"".join(parts)


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def _rgba_data(rgba: np.ndarray) -> bytes:
    rows = np.zeros((rgba.shape[0], 1 + 4 * rgba.shape[1]), np.uint8)
    rows[:, 1:] = rgba.reshape(rgba.shape[0], -1)
    return zlib.compress(rows.tobytes())


def apng_file(width: int, height: int, frames: list[dict], plays: int = 0, default: np.ndarray | None = None) -> bytes:
    """An RGBA APNG assembled chunk by chunk. Each frame: ``rgba`` (h, w, 4), ``left``,
    ``top``, ``delay`` (ms), ``dispose`` (0 none, 1 background, 2 previous), ``blend`` (0
    source, 1 over). ``default``: an IDAT image that is not part of the animation."""
    chunks = [_png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)),
              _png_chunk(b"acTL", struct.pack(">II", len(frames), plays))]
    if default is not None:
        chunks.append(_png_chunk(b"IDAT", _rgba_data(default)))
    sequence = 0
    for index, frame in enumerate(frames):
        rgba = frame["rgba"]
        chunks.append(_png_chunk(b"fcTL", struct.pack(
            ">IIIIIHHBB", sequence, rgba.shape[1], rgba.shape[0], frame.get("left", 0), frame.get("top", 0),
            frame.get("delay", 10), 1000, frame.get("dispose", 0), frame.get("blend", 0))))
        sequence += 1
        if index == 0 and default is None:
            chunks.append(_png_chunk(b"IDAT", _rgba_data(rgba)))
        else:
            chunks.append(_png_chunk(b"fdAT", struct.pack(">I", sequence) + _rgba_data(rgba)))
            sequence += 1
    chunks.append(_png_chunk(b"IEND", b""))
    return b"\x89PNG\r\n\x1a\n" + b"".join(chunks)


def conformance_files() -> list[dict]:
    """Small animations and what a browser shows of each: ``{"name", "data", "frames"
    (list of (H, W, 4) uint8), "durations" (ms), "plays"}``."""
    palette = [BLUE, RED, GREEN, WHITE]
    cases = []

    def full(index, width=8, height=6):
        return np.full((height, width), index, np.uint8)

    # disposal 1 (keep) with frame offsets: each frame adds to the last
    expected = [_canvas(8, 6, BLUE)]
    second = expected[0].copy()
    second[2:4, 3:5] = RED
    third = second.copy()
    third[0:3, 0:1] = GREEN
    cases.append({"name": "gif-keep-offsets", "data": gif_file(8, 6, palette, [
        {"indices": full(0), "disposal": 1, "delay": 10},
        {"indices": full(1, 2, 2), "left": 3, "top": 2, "disposal": 1, "delay": 20},
        {"indices": full(2, 1, 3), "left": 0, "top": 0, "delay": 30}]),
        "frames": expected + [second, third], "durations": [100, 200, 300], "plays": 0})

    # disposal 2: the frame's rectangle is cleared to transparent (not the background colour)
    cleared = _canvas(8, 6, CLEAR)
    cleared[1:3, 1:3] = RED
    then = cleared.copy()
    then[1:3, 1:3] = CLEAR  # the red square's rectangle cleared in turn
    then[4:6, 6:8] = GREEN
    cases.append({"name": "gif-dispose-background", "data": gif_file(8, 6, palette, [
        {"indices": full(0), "disposal": 2, "delay": 10},
        {"indices": full(1, 2, 2), "left": 1, "top": 1, "disposal": 2, "delay": 10},
        {"indices": full(2, 2, 2), "left": 6, "top": 4, "delay": 10}], background=3),
        "frames": [_canvas(8, 6, BLUE), cleared, then], "durations": [100, 100, 100], "plays": 0})

    # disposal 3: back to what was there before the frame
    base = _canvas(8, 6, BLUE)
    with_red = base.copy()
    with_red[0:2, 0:2] = RED
    with_green = base.copy()
    with_green[5:6, 7:8] = GREEN
    cases.append({"name": "gif-dispose-previous", "data": gif_file(8, 6, palette, [
        {"indices": full(0), "disposal": 1, "delay": 10},
        {"indices": full(1, 2, 2), "disposal": 3, "delay": 10},
        {"indices": full(2, 1, 1), "left": 7, "top": 5, "delay": 10}]),
        "frames": [base, with_red, with_green], "durations": [100, 100, 100], "plays": 0})

    # transparency: transparent pixels of the first frame are transparent, later ones show
    # what is under them
    first = full(0)
    first[:, :4] = 3  # index 3 is transparent in frame 1
    over = full(1)
    over[:3] = 2  # index 2 is transparent in frame 2
    shown = _canvas(8, 6, BLUE)
    shown[:, :4] = CLEAR
    shown_next = shown.copy()
    shown_next[3:] = RED
    cases.append({"name": "gif-transparency", "data": gif_file(8, 6, palette, [
        {"indices": first, "transparent": 3, "disposal": 1, "delay": 10},
        {"indices": over, "transparent": 2, "delay": 10}]),
        "frames": [shown, shown_next], "durations": [100, 100], "plays": 0})

    # an interlaced frame, variable delays, a loop count (3 repeats: 4 plays)
    stripes = (np.arange(16)[:, None] % 4 + np.zeros((16, 16), np.int64)).astype(np.uint8)
    lookup = np.array(palette, np.uint8)
    cases.append({"name": "gif-interlaced-delays-loop", "data": gif_file(16, 16, palette, [
        {"indices": stripes, "interlaced": True, "delay": 2},
        {"indices": stripes[::-1].copy(), "delay": 50},
        {"indices": full(3, 16, 16), "delay": 7}], loop=3),
        "frames": [lookup[stripes], lookup[stripes[::-1]], _canvas(16, 16, WHITE)],
        "durations": [20, 500, 70], "plays": 4})

    # no NETSCAPE block: played once
    cases.append({"name": "gif-no-loop", "data": gif_file(8, 6, palette, [
        {"indices": full(0), "delay": 10}, {"indices": full(1), "delay": 10}], loop=None),
        "frames": [_canvas(8, 6, BLUE), _canvas(8, 6, RED)], "durations": [100, 100], "plays": 1})

    # APNG, assembled chunk by chunk: offsets, every dispose op, both blend ops, partial alpha
    rng = np.random.default_rng(26)
    noise = rng.integers(0, 256, (6, 8, 4), dtype=np.uint8)
    noise[..., 3] = rng.choice([0, 90, 200, 255], size=(6, 8)).astype(np.uint8)
    noise[noise[..., 3] == 0] = 0
    red_square, green_bar = _canvas(2, 2, RED), _canvas(1, 3, GREEN)
    holey = _canvas(4, 4, RED)
    holey[1:3, 1:3] = CLEAR
    start = _canvas(8, 6, BLUE)
    kept = start.copy()
    kept[2:4, 3:5] = RED
    kept_bar = kept.copy()
    kept_bar[0:3, 0:1] = GREEN
    cases.append({"name": "apng-offsets-source", "data": apng_file(8, 6, [
        {"rgba": start, "delay": 10}, {"rgba": red_square, "left": 3, "top": 2, "delay": 20},
        {"rgba": green_bar, "delay": 30}], plays=0),
        "frames": [start, kept, kept_bar], "durations": [10, 20, 30], "plays": 0})
    cleared = _canvas(8, 6, CLEAR)
    cleared[1:3, 1:3] = RED
    cleared_then = cleared.copy()
    cleared_then[1:3, 1:3] = CLEAR
    cleared_then[4:6, 7:8] = GREEN
    cases.append({"name": "apng-dispose-background", "data": apng_file(8, 6, [
        {"rgba": start, "dispose": 1, "delay": 10},
        {"rgba": red_square, "left": 1, "top": 1, "dispose": 1, "delay": 10},
        {"rgba": green_bar[:2], "left": 7, "top": 4, "delay": 10}], plays=3),
        "frames": [start, cleared, cleared_then], "durations": [10, 10, 10], "plays": 3})
    with_red = start.copy()
    with_red[0:2, 0:2] = RED
    with_green = start.copy()
    with_green[5:6, 7:8] = GREEN
    cases.append({"name": "apng-dispose-previous", "data": apng_file(8, 6, [
        {"rgba": start, "delay": 10}, {"rgba": red_square, "dispose": 2, "delay": 10},
        {"rgba": green_bar[:1], "left": 7, "top": 5, "delay": 10}], plays=1),
        "frames": [start, with_red, with_green], "durations": [10, 10, 10], "plays": 1})
    over = start.copy()
    over[1:5, 2:6] = holey  # the hole shows what is under it
    over[2:4, 3:5] = BLUE
    replaced = start.copy()
    replaced[1:5, 2:6] = holey  # blend source: the hole is written as transparent
    cases.append({"name": "apng-blend-over-and-source", "data": apng_file(8, 6, [
        {"rgba": start, "delay": 10}, {"rgba": holey, "left": 2, "top": 1, "blend": 1, "dispose": 0, "delay": 10},
        {"rgba": start, "delay": 10}, {"rgba": holey, "left": 2, "top": 1, "blend": 0, "delay": 10}], plays=0),
        "frames": [start, over, start, replaced], "durations": [10, 10, 10, 10], "plays": 0})
    cases.append({"name": "apng-partial-alpha-default-image", "data": apng_file(8, 6, [
        {"rgba": noise, "delay": 40}, {"rgba": noise[::-1].copy(), "delay": 50}], plays=0,
        default=_canvas(8, 6, WHITE)),
        "frames": [noise, noise[::-1].copy()], "durations": [40, 50], "plays": 0})

    # animated WebP: transparency, variable durations, loop count
    webp_frames = [rng.integers(0, 256, (12, 10, 4), dtype=np.uint8) for _ in range(4)]
    webp_frames[1][:4] = webp_frames[0][:4]  # some rows unchanged
    for frame in webp_frames:
        frame[..., 3] = np.where(frame[..., 3] > 64, 255, 0)
        frame[frame[..., 3] == 0] = 0
    buffer = io.BytesIO()
    images = [Image.fromarray(frame, "RGBA") for frame in webp_frames]
    images[0].save(buffer, "WEBP", save_all=True, append_images=images[1:], duration=[30, 40, 50, 60], loop=5,
                   lossless=True, quality=100)
    cases.append({"name": "webp-alpha-durations-loop", "data": buffer.getvalue(), "frames": webp_frames,
                  "durations": [30, 40, 50, 60], "plays": 5})
    return cases


def main(argv: list[str]) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _common import DEFAULT_IMAGES, find_images

    folder = Path(argv[0]) if argv else Path("animations")
    for clip in make_clips(find_images(DEFAULT_IMAGES, 6), folder):
        print(clip["name"], {key: path.stat().st_size for key, path in clip["paths"].items()})
    for case in conformance_files():
        (folder / f"{case['name']}.{case['name'].split('-')[0].replace('apng', 'png')}").write_bytes(case["data"])


if __name__ == "__main__":
    main(sys.argv[1:])

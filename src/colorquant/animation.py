"""Animations: every frame of a GIF, APNG or animated WebP, composited as a browser shows it,
quantized with one palette and written back with only what changes between frames.

The frames travel through the pipeline stacked top to bottom as one tall image (frame 0 at
the top): one histogram over all of them is what the palette is learned from, every frame is
remapped to that palette, and the figures of the whole animation are those of the stack.
:class:`Animation` says how to cut the stack back into frames and how they play.

Reading: GIF is parsed here and composited in numpy the way browsers do (a transparent
canvas to start with, disposal 2 clears to transparent whatever the background colour says,
disposal 3 restores what was there before); Pillow only decodes each frame's LZW data. Pillow
composites APNG (dispose and blend operations, a default image outside the animation left
out) and libwebp's animation decoder does animated WebP. A broken animation (bad sequence
numbers, missing or truncated frame data) is refused as a whole: no frame is dropped silently.

Writing: GIF and APNG are written here. Each frame after the first is cropped to the
rectangle that changed, and inside it the pixels that did not change may be written as a
transparent entry (GIF transparency, APNG ``blend_op`` over), when that compresses smaller,
as ``gifsicle -O3`` and APNG optimisers do. Animated WebP goes through libwebp's encoder,
lossless, which does the same on its own.
"""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass

import numpy as np

from .errors import ImageReadError, ImageTooLargeError
from .settings import DEFAULT_MAX_FRAMES

# How much farther (sRGB levels, Euclidean) a pixel's previous entry may be from its colour
# than its own entry, for it to keep the previous one (see stable_labels): 1.5 times the fit's
# RMS error, at most 12 levels. Measured on GIF clips made by Pillow (a palette per frame, so
# still areas flicker by a few levels), against each pixel taking its own entry: the GIFs of
# moving-sprite clips 1.2-2.5x smaller at 64 and 256 colours (most frames became small
# rectangles) for SSIMULACRA2 within 0.7; a flat 12 levels saved more at 256 colours but cost
# a pan 7 points. Applied only to frames with palettes of their own: on full-colour pans it
# cost up to 20 points (entries lag behind content that moves slowly) and saved no bytes.
STABLE_RMS_SHARE = 1.5
STABLE_TOLERANCE = 12.0

__all__ = ["Animation", "DEFAULT_MAX_FRAMES", "read_frames", "gif_frame_count", "frames_of",
           "steady_labels", "encode_animation", "ANIMATED_FORMATS"]


# Output formats that hold an animation, by the decoder that read the input.
ANIMATED_FORMATS = {"GIF": "gif", "PNG": "png", "WEBP": "webp"}


@dataclass(frozen=True)
class Animation:
    """How the frames stacked in a tall image play.

    n_frames : frames in the stack, each ``height`` rows
    durations : how long each frame shows, in milliseconds
    plays : how many times the animation plays, 0 for ever (APNG's ``num_plays`` and WebP's
        loop count; a GIF's NETSCAPE loop count is the repeats after the first play)
    source_format : the output format of the same kind as the input ("gif", "png", "webp")
    own_palettes : the frames after the first have palettes of their own (GIF local colour
        tables): still areas then flicker by a few levels from frame to frame
    """

    n_frames: int
    height: int
    durations: tuple[int, ...]
    plays: int = 0
    source_format: str = "png"
    own_palettes: bool = False


def frames_of(stacked: np.ndarray, animation: Animation) -> list[np.ndarray]:
    """The frames of a stacked image (views, not copies)."""
    height = animation.height
    return [stacked[index * height:(index + 1) * height] for index in range(animation.n_frames)]


def steady_labels(labels: np.ndarray, pixels: np.ndarray, animation: Animation) -> np.ndarray:
    """``labels`` with every pixel whose source colour did not change since the previous frame
    given that frame's label: error diffusion of each frame alone would otherwise draw a new
    pattern over still areas on every frame (dither "crawl"), which shows as shimmer and costs
    bytes in every frame."""
    labels = labels.copy()
    height = animation.height
    for index in range(1, animation.n_frames):
        here, before = slice(index * height, (index + 1) * height), slice((index - 1) * height, index * height)
        still = (pixels[here] == pixels[before]).all(axis=2)
        labels[here][still] = labels[before][still]
    return labels


def stable_labels(labels: np.ndarray, pixels: np.ndarray, palette: np.ndarray, animation: Animation,
                  tolerance: float) -> np.ndarray:
    """``labels`` where a pixel keeps the previous frame's entry if that entry is at most
    ``tolerance`` sRGB levels (Euclidean) farther from its colour than its own entry.

    A source whose still areas flicker by a few levels from frame to frame (a GIF whose every
    frame has its own palette, video noise) would otherwise change entries all over them:
    every frame rewrites those areas, and the eye sees them shimmer. A kept entry costs at most
    ``tolerance`` levels of error on that pixel. Where content moves, kept entries lag behind
    it: the pipeline applies this only to frames with palettes of their own."""
    if tolerance <= 0 or animation.n_frames < 2:
        return labels
    labels = labels.copy()
    colours = palette[:, :3].astype(np.int32)
    opaque = palette[:, 3] == 255 if palette.shape[1] == 4 else np.ones(len(palette), dtype=bool)
    height = animation.height
    for index in range(1, animation.n_frames):
        here = labels[index * height:(index + 1) * height].reshape(-1)
        before = labels[(index - 1) * height:index * height].reshape(-1)
        moved = np.flatnonzero((here != before) & opaque[here] & opaque[before])
        if not len(moved):
            continue
        source = pixels[index * height:(index + 1) * height].reshape(-1, pixels.shape[2])[moved, :3].astype(np.int32)
        kept_error = np.sqrt(_squared_distance(source, colours[before[moved]]))
        own_error = np.sqrt(_squared_distance(source, colours[here[moved]]))
        keep = moved[kept_error <= own_error + np.float32(tolerance)]
        here[keep] = before[keep]
    return labels


def _squared_distance(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Squared Euclidean distances of int32 RGB rows, as float32."""
    difference = first - second
    return np.einsum("ij,ij->i", difference, difference).astype(np.float32)


# ---------------------------------------------------------------------------------- reading


def check_frames(n_frames: int, size: tuple[int, int], name: str, max_pixels: int, max_frames: int) -> None:
    """Refuse an animation from its header: too many frames, or too many pixels in all."""
    width, height = size
    if n_frames > max_frames:
        raise ImageTooLargeError(
            f"{name}: animation has {n_frames:,} frames, over the limit of {max_frames:,}", remedy="max_frames")
    if width * height * n_frames > max_pixels:
        raise ImageTooLargeError(
            f"{name}: {n_frames} frames of {width}x{height} are {width * height * n_frames:,} pixels, "
            f"over the limit of {max_pixels:,}", remedy="max_pixels")


def read_frames(image, data: bytes, name: str, max_pixels: int, max_frames: int) -> tuple[np.ndarray, Animation]:
    """Every frame of an animated ``image`` (opened by Pillow from ``data``), composited, as
    one stacked (n*H, W, 3|4) uint8 array, and how they play. Limits are checked before any
    frame is decoded."""
    from .imageio import fix_palette_alpha

    if image.format == "GIF":
        return _read_gif(data, name, max_pixels, max_frames)
    skip_default = bool(getattr(image, "default_image", False))  # an APNG's IDAT outside the animation
    n_frames = image.n_frames - int(skip_default)
    width, height = image.size
    check_frames(n_frames, image.size, name, max_pixels, max_frames)
    stacked = np.empty((n_frames * height, width, 4), dtype=np.uint8)
    durations = []
    for index in range(n_frames):
        image.seek(index + int(skip_default))
        fix_palette_alpha(image, data)
        frame = image.convert("RGBA")
        stacked[index * height:(index + 1) * height] = np.asarray(frame)
        durations.append(int(round(float(image.info.get("duration") or 0))))
    plays = int(image.info.get("loop", 0) or 0)
    animation = Animation(n_frames, height, tuple(durations), plays, ANIMATED_FORMATS[image.format])
    return _drop_opaque_alpha(stacked), animation


def _drop_opaque_alpha(stacked: np.ndarray) -> np.ndarray:
    if stacked[:, :, 3].min() == 255:
        return np.ascontiguousarray(stacked[:, :, :3])
    return stacked


@dataclass
class _GifFrame:
    left: int
    top: int
    width: int
    height: int
    interlaced: bool
    table: bytes | None  # local colour table, RGB triples
    code_size: int
    data_start: int
    data_end: int
    delay: int  # centiseconds
    disposal: int
    transparent: int | None


class _GifParser:
    """The block structure of a GIF: screen size, colour table, frames (where their LZW data
    lies), loop count. Nothing is decoded."""

    def __init__(self, data: bytes, name: str):
        self.data, self.name, self.offset = data, name, 0
        if len(data) < 13 or data[:6] not in (b"GIF87a", b"GIF89a"):
            self._broken("not a GIF")
        self.width, self.height, flags = struct.unpack_from("<HHB", data, 6)
        self.offset = 13
        self.table = self._color_table(flags)
        self.frames: list[_GifFrame] = []
        self.loop: int | None = None

    def _broken(self, why: str):
        raise ImageReadError(f"{self.name}: corrupt or truncated GIF ({why})")

    def _take(self, count: int) -> bytes:
        if self.offset + count > len(self.data):
            self._broken(f"ends inside frame {len(self.frames) + 1}")
        chunk = self.data[self.offset:self.offset + count]
        self.offset += count
        return chunk

    def _color_table(self, flags: int) -> bytes | None:
        if not flags & 0x80:
            return None
        return self._take(3 << ((flags & 7) + 1))

    def _sub_blocks(self) -> bytes:
        """Skip (and return the joined payload of) a run of data sub-blocks."""
        parts = []
        while True:
            size = self._take(1)[0]
            if size == 0:
                return b"".join(parts)
            parts.append(self._take(size))

    def _skip_sub_blocks(self) -> None:
        data, offset = self.data, self.offset
        while True:
            if offset >= len(data):
                self.offset = offset
                self._broken(f"frame {len(self.frames) + 1}'s data ends early")
            size = data[offset]
            offset += 1 + size
            if size == 0:
                break
        if offset > len(data):
            self._broken(f"frame {len(self.frames) + 1}'s data ends early")
        self.offset = offset

    def parse(self, max_frames: int, max_pixels: int) -> None:
        control = (0, 0, None)  # delay, disposal, transparent index of the next frame
        while self.offset < len(self.data):
            kind = self._take(1)[0]
            if kind == 0x3B:  # trailer
                return
            if kind == 0x21:
                label = self._take(1)[0]
                payload = self._sub_blocks()
                if label == 0xF9 and len(payload) >= 4:
                    flags, delay, index = struct.unpack_from("<BHB", payload)
                    control = (delay, (flags >> 2) & 7, index if flags & 1 else None)
                elif label == 0xFF and payload[:11] == b"NETSCAPE2.0" and len(payload) >= 14 and payload[11] == 1:
                    self.loop = struct.unpack_from("<H", payload, 12)[0]
                continue
            if kind != 0x2C:
                if self.frames:  # bytes after the last frame (no trailer): browsers stop there too
                    return
                self._broken(f"unknown block 0x{kind:02x}")
            left, top, width, height, flags = struct.unpack("<HHHHB", self._take(9))
            if width * height > max_pixels:  # decoded whole before it is cut to the canvas
                raise ImageTooLargeError(
                    f"{self.name}: frame {len(self.frames) + 1} is {width}x{height}, {width * height:,} pixels, "
                    f"over the limit of {max_pixels:,}", remedy="max_pixels")
            table = self._color_table(flags)
            code_size = self._take(1)[0]
            if not 1 <= code_size <= 11:
                self._broken(f"frame {len(self.frames) + 1} has LZW code size {code_size}")
            start = self.offset
            self._skip_sub_blocks()
            self.frames.append(_GifFrame(left, top, width, height, bool(flags & 0x40), table, code_size,
                                         start, self.offset, *control))
            control = (0, 0, None)
            if len(self.frames) > max_frames:  # refuse before walking the rest of a huge file
                check_frames(len(self.frames), (self.width, self.height), self.name, max_pixels, max_frames)
        # no trailer: browsers show the frames that are complete, and every frame here is

    def decode(self, frame: _GifFrame) -> np.ndarray:
        """A frame's colour indices, (height, width) uint8: its LZW data decoded by Pillow,
        as a one-frame GIF of its own."""
        from PIL import Image

        table = frame.table if frame.table is not None else self.table
        if table is None:
            self._broken("a frame has no colour table")
        bits = max(1, (len(table) // 3 - 1).bit_length())
        table = table.ljust(3 << bits, b"\0")
        screen = struct.pack("<HHBBB", frame.width, frame.height, 0x80 | (bits - 1), 0, 0)
        descriptor = b"," + struct.pack("<HHHHB", 0, 0, frame.width, frame.height, 0x40 if frame.interlaced else 0)
        single = (b"GIF89a" + screen + table + descriptor + bytes([frame.code_size])
                  + self.data[frame.data_start:frame.data_end] + b";")
        with Image.open(io.BytesIO(single), formats=("GIF",)) as decoded:
            decoded.load()
            return np.asarray(decoded, dtype=np.uint8)


def gif_frame_count(data: bytes, name: str = "<gif>") -> tuple[int, tuple[int, int]]:
    """Frames and canvas size of a GIF, from its block structure alone."""
    parser = _GifParser(data, name)
    parser.parse(max_frames=1 << 62, max_pixels=1 << 62)
    return len(parser.frames), (parser.width, parser.height)


def _read_gif(data: bytes, name: str, max_pixels: int, max_frames: int) -> tuple[np.ndarray, Animation]:
    parser = _GifParser(data, name)
    parser.parse(max_frames, max_pixels)
    width, height = parser.width, parser.height
    if width < 1 or height < 1 or not parser.frames:
        parser._broken("no frame" if not parser.frames else "no canvas")
    check_frames(len(parser.frames), (width, height), name, max_pixels, max_frames)
    stacked = np.empty((len(parser.frames) * height, width, 4), dtype=np.uint8)
    canvas = np.zeros((height, width, 4), dtype=np.uint8)  # browsers start from transparent
    for index, frame in enumerate(parser.frames):
        try:
            indices = parser.decode(frame)
        except ImageReadError:
            raise
        except Exception as error:  # noqa: BLE001 - decoder boundary, as in imageio
            parser._broken(f"frame {index + 1}: {type(error).__name__}: {error}")
        table = frame.table if frame.table is not None else parser.table
        colors = np.zeros((256, 4), dtype=np.uint8)
        rgb = np.frombuffer(table, dtype=np.uint8).reshape(-1, 3)[:256]
        colors[:len(rgb), :3] = rgb
        colors[:, 3] = 255
        if frame.transparent is not None:
            colors[frame.transparent, 3] = 0
        # the part of the frame inside the canvas
        right, bottom = min(width, frame.left + frame.width), min(height, frame.top + frame.height)
        restore = canvas.copy() if frame.disposal == 3 else None
        if right > frame.left and bottom > frame.top:
            part = indices[:bottom - frame.top, :right - frame.left]
            region = canvas[frame.top:bottom, frame.left:right]
            if frame.transparent is None:
                region[...] = colors[part]
            else:
                np.copyto(region, colors[part], where=(part != frame.transparent)[:, :, None])
        stacked[index * height:(index + 1) * height] = canvas
        if frame.disposal == 2:
            canvas[frame.top:bottom, frame.left:right] = 0
        elif restore is not None:
            canvas = restore
    # NETSCAPE's count is the repeats after the first play; none at all means one play
    plays = 1 if parser.loop is None else (0 if parser.loop == 0 else parser.loop + 1)
    durations = tuple(frame.delay * 10 for frame in parser.frames)
    own_palettes = any(frame.table is not None for frame in parser.frames[1:])
    return _drop_opaque_alpha(stacked), Animation(len(parser.frames), height, durations, plays, "gif", own_palettes)


# ---------------------------------------------------------------------------------- writing


def encode_animation(labels: np.ndarray, palette: np.ndarray, animation: Animation, format_name: str,
                     *, deflate_level: int = 10) -> bytes:
    """The animation file of stacked ``labels`` over ``palette``: "gif", "png" (APNG) or
    "webp" (animated, lossless)."""
    frames = frames_of(labels, animation)
    if format_name == "gif":
        return _encode_gif(frames, palette, animation)
    if format_name == "png":
        return _encode_apng(frames, palette, animation, deflate_level)
    if format_name == "webp":
        return _encode_webp(frames, palette, animation)
    from .errors import InvalidParameterError

    raise InvalidParameterError(f"an animation is written as png (APNG), gif or webp, not {format_name}")


def _changed_box(changed: np.ndarray) -> tuple[int, int, int, int] | None:
    """(top, bottom, left, right) of the True cells, or None when there are none."""
    rows, cols = np.flatnonzero(changed.any(axis=1)), np.flatnonzero(changed.any(axis=0))
    if not len(rows):
        return None
    return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1


@dataclass
class _Delta:
    """What one frame writes: a rectangle of its labels, and what is known of it."""

    box: tuple[int, int, int, int]  # top, bottom, left, right
    block: np.ndarray  # the frame's labels in the box
    changed: np.ndarray | None  # which of them changed since the frame before (None: write all)
    clears: bool = False  # a pixel turns transparent: what is under it must go
    blends: bool = False  # a pixel is partly transparent: drawn over the canvas it would blend

    def see_through(self, index: int | None) -> np.ndarray | None:
        """The block with its unchanged pixels as ``index`` (an entry that draws nothing), or
        None where that cannot be written so."""
        if index is None or self.changed is None or self.clears or self.blends:
            return None
        return np.where(self.changed, self.block, np.uint8(index))


def _deltas(frames: list[np.ndarray], transparent: np.ndarray, translucent: np.ndarray) -> list[_Delta]:
    """Per frame, the rectangle that changed since the frame before. ``transparent`` and
    ``translucent`` mark the palette entries that are fully and partly transparent."""
    height, width = frames[0].shape
    deltas = [_Delta((0, height, 0, width), frames[0], None)]
    for before, frame in zip(frames, frames[1:]):
        changed = frame != before
        box = _changed_box(changed)
        if box is None:  # identical: one pixel keeps the frame (and its duration) in the file
            deltas.append(_Delta((0, 1, 0, 1), frame[:1, :1], None))
            continue
        top, bottom, left, right = box
        block = frame[top:bottom, left:right]
        clears = bool((transparent[block] & ~transparent[before[top:bottom, left:right]]).any())
        deltas.append(_Delta(box, block, changed[top:bottom, left:right], clears, bool(translucent[block].any())))
    return deltas


def _encode_gif(frames: list[np.ndarray], palette: np.ndarray, animation: Animation) -> bytes:
    """A GIF with one global colour table. A frame after the first is the rectangle that
    changed; inside it, the pixels that did not change may be written as a transparent index
    when that codes smaller: any index the rectangle does not use serves (as gifsicle picks
    one), else a spare entry past the palette."""
    from .encoding import gif_palette

    palette, frames = gif_palette(palette, frames)
    transparent = np.zeros(256, dtype=bool)
    if palette.shape[1] == 4:
        transparent[:len(palette)] = palette[:, 3] == 0
    has_alpha = bool(transparent.any())
    image_see_through = int(np.flatnonzero(transparent)[0]) if has_alpha else None
    height, width = frames[0].shape
    deltas = _deltas(frames, transparent, np.zeros(256, dtype=bool))
    # GIF cannot draw a transparent pixel over a visible one: the frame before such a frame
    # is written whole and cleared after it shows (disposal 2), and the frame is written whole
    clear_after = [False] * len(frames)
    for index, delta in enumerate(deltas[1:], start=1):
        if delta.clears:
            clear_after[index - 1] = True
            deltas[index] = _Delta((0, height, 0, width), frames[index], None)
            deltas[index - 1] = _Delta((0, height, 0, width), frames[index - 1], None)
    # a spare entry past the palette, for frames whose rectangle uses every entry; it widens
    # the table (64 colours: 128 entries, 192 bytes) but only those frames' codes
    spare = len(palette) if len(palette) < 256 and not has_alpha else None
    table_bits = max(1, (len(palette) - 1 + int(spare is not None)).bit_length())
    table = np.zeros((1 << table_bits, 3), dtype=np.uint8)
    table[:len(palette)] = palette[:, :3]
    parts = [b"GIF89a", struct.pack("<HHBBB", width, height, 0x80 | 0x70 | (table_bits - 1),
                                      image_see_through or 0, 0), table.tobytes()]
    if animation.plays != 1:
        repeats = 0 if animation.plays == 0 else animation.plays - 1
        parts.append(b"!\xff\x0bNETSCAPE2.0\x03\x01" + struct.pack("<H", min(repeats, 65535)) + b"\0")
    for index, delta in enumerate(deltas):
        top, bottom, left, right = delta.box
        see_through = image_see_through
        if not has_alpha and delta.changed is not None:
            see_through = _unused_index(delta.block[delta.changed], len(palette))
            see_through = spare if see_through is None else see_through
        candidates = [(delta.block, has_alpha), (delta.see_through(see_through), True)]
        coded = [(_lzw(block), flagged) for block, flagged in candidates if block is not None]
        data, uses_see_through = min(coded, key=lambda pair: len(pair[0]))
        delay = min(65535, int(round(animation.durations[index] / 10)))
        flags = ((2 if clear_after[index] else 1) << 2) | int(uses_see_through)
        parts.append(b"!\xf9\x04" + struct.pack("<BHB", flags, delay, see_through if uses_see_through else 0) + b"\0")
        parts.append(b"," + struct.pack("<HHHHB", left, top, right - left, bottom - top, 0))
        parts.append(data)
    parts.append(b";")
    return b"".join(parts)


def _unused_index(drawn: np.ndarray, table_size: int) -> int | None:
    """The lowest colour-table index that no pixel in ``drawn`` uses (it codes in the fewest
    bits), or None when every one is used."""
    used = np.bincount(drawn.ravel(), minlength=table_size) > 0
    free = np.flatnonzero(~used[:table_size])
    return int(free[0]) if len(free) else None


def _lzw(block: np.ndarray) -> bytes:
    """The minimum code size byte, LZW data sub-blocks and terminator of a block of indices,
    at the smallest code size its largest index allows (Pillow's encoder writes 8 always)."""
    from PIL import Image, ImageFile

    bits = max(2, int(block.max()).bit_length())
    height, width = block.shape
    image = Image.frombytes("P", (width, height), np.ascontiguousarray(block).tobytes())
    image.encoderconfig = (bits, 0)
    out = io.BytesIO()
    ImageFile._save(image, out, [ImageFile._Tile("gif", (0, 0, width, height), 0, "P")])
    return bytes([bits]) + out.getvalue() + b"\0"


def _encode_apng(frames: list[np.ndarray], palette: np.ndarray, animation: Animation, deflate_level: int) -> bytes:
    """A palette APNG: one PLTE for every frame, the first frame in IDAT, each later one as
    the rectangle that changed (``dispose_op`` none), blended over the canvas with a
    see-through entry where that deflates smaller, or replacing it where a pixel turns
    transparent."""
    import deflate

    from .encoding import _png_chunk, _scanlines, popularity_order

    counts = sum(np.bincount(frame.ravel(), minlength=len(palette)) for frame in frames)
    order, palette = popularity_order(palette, counts)
    frames = [order[frame] for frame in frames]
    transparent = np.zeros(256, dtype=bool)
    if palette.shape[1] == 4:
        transparent[:len(palette)] = palette[:, 3] == 0
    see_through = int(np.flatnonzero(transparent)[0]) if transparent.any() else None
    depth = next(d for d in (1, 2, 4, 8) if len(palette) <= 1 << d)
    if see_through is None and len(palette) < 256 and (depth == 8 or len(palette) < 1 << depth):
        # a spare entry that draws nothing, in front so that tRNS holds one byte
        rgba = palette if palette.shape[1] == 4 else np.hstack([palette, np.full((len(palette), 1), 255, np.uint8)])
        palette = np.vstack([np.zeros((1, 4), np.uint8), rgba])
        frames = [frame + np.uint8(1) for frame in frames]
        see_through = 0
        transparent[0] = True
    translucent = np.zeros(256, dtype=bool)
    if palette.shape[1] == 4:
        translucent[:len(palette)] = (palette[:, 3] > 0) & (palette[:, 3] < 255)
    deltas = _deltas(frames, transparent, translucent)
    height, width = frames[0].shape
    chunks = [_png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, depth, 3, 0, 0, 0)),
              _png_chunk(b"acTL", struct.pack(">II", len(frames), animation.plays)),
              _png_chunk(b"PLTE", np.ascontiguousarray(palette[:, :3]).tobytes())]
    if palette.shape[1] == 4 and (palette[:, 3] < 255).any():
        translucent_entries = int(np.flatnonzero(palette[:, 3] < 255)[-1]) + 1
        chunks.append(_png_chunk(b"tRNS", palette[:translucent_entries, 3].tobytes()))
    sequence = 0
    for index, delta in enumerate(deltas):
        top, bottom, left, right = delta.box
        # blend_op source writes the rectangle as it is; over lets see-through pixels show the
        # canvas. Judged by a fast deflate; the kept one is compressed at the written level.
        candidates = [(block, blend) for block, blend in ((delta.block, 0), (delta.see_through(see_through), 1))
                      if block is not None]
        block, blend = min(candidates, key=lambda pair: len(deflate.zlib_compress(_scanlines(pair[0], depth), 1)))
        data = deflate.zlib_compress(_scanlines(block, depth), deflate_level)
        delay = animation.durations[index]
        numerator, denominator = (delay, 1000) if delay <= 65535 else (min(65535, round(delay / 10)), 100)
        chunks.append(_png_chunk(b"fcTL", struct.pack(">IIIIIHHBB", sequence, right - left, bottom - top, left, top,
                                                      numerator, denominator, 0, blend)))
        sequence += 1
        if index == 0:
            chunks.append(_png_chunk(b"IDAT", data))
        else:
            chunks.append(_png_chunk(b"fdAT", struct.pack(">I", sequence) + data))
            sequence += 1
    chunks.append(_png_chunk(b"IEND", b""))
    return b"\x89PNG\r\n\x1a\n" + b"".join(chunks)


def _encode_webp(frames: list[np.ndarray], palette: np.ndarray, animation: Animation) -> bytes:
    """An animated lossless WebP through libwebp's animation encoder (Pillow), which crops
    each frame to what changed and uses a colour-indexed transform for <= 256 colours."""
    from PIL import Image

    images = [Image.fromarray(palette[frame]) for frame in frames]
    out = io.BytesIO()
    images[0].save(out, "WEBP", save_all=True, append_images=images[1:], duration=list(animation.durations),
                   loop=animation.plays, lossless=True, quality=100, method=4, allow_mixed=False,
                   background=(0, 0, 0, 0))
    data = bytearray(out.getvalue())
    if palette.shape[1] == 4 and (palette[:, 3] < 255).any() and data[12:16] == b"VP8X" and not data[20] & 0x10:
        # libwebp leaves out of every frame the pixels that stay transparent (the canvas shows
        # them), and then no frame has alpha and the file is flagged opaque: decoders show
        # those pixels black. The canvas has transparency: say so (VP8X alpha flag).
        data[20] |= 0x10
    return bytes(data)

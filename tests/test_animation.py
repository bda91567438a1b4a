"""Animations (GIF, APNG, animated WebP): every frame read as a browser shows it, one palette
for all frames, every frame, duration and the loop count written back; broken files and bombs
refused before any work."""

from __future__ import annotations

import io
import json
import struct
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from colorquant import quantize
from colorquant.imageio import read_image

from .conftest import assert_one_line_error, files_in

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from animation_set import conformance_files, gif_file, sprite_frames  # noqa: E402

CASES = {case["name"]: case for case in conformance_files()}
SUFFIX = {"gif": ".gif", "png": ".png", "webp": ".webp"}


def rgba(pixels: np.ndarray) -> np.ndarray:
    """(.., 4) pixels, transparent ones all zero: how two images are compared."""
    if pixels.shape[-1] == 3:
        pixels = np.concatenate([pixels, np.full(pixels.shape[:-1] + (1,), 255, np.uint8)], axis=-1)
    pixels = pixels.copy()
    pixels[pixels[..., 3] == 0] = 0
    return pixels


def timeline(frames: list[np.ndarray], durations) -> list[tuple[bytes, int]]:
    """What plays: each picture and how long, a frame equal to the one before merged into it
    (libwebp's encoder merges those; the animation plays the same)."""
    played = []
    for frame, duration in zip(frames, durations):
        key = rgba(frame).tobytes()
        if played and played[-1][0] == key:
            played[-1] = (key, played[-1][1] + duration)
        else:
            played.append((key, duration))
    return played


def frames_of(loaded) -> list[np.ndarray]:
    height = loaded.animation.height
    return [loaded.pixels[i * height:(i + 1) * height] for i in range(loaded.animation.n_frames)]


@pytest.fixture(scope="module")
def clip() -> list[np.ndarray]:
    """A photo background with a piece of another photo moving over it: 8 frames of 96x64."""
    from skimage import data

    return sprite_frames(data.astronaut(), data.coffee(), n_frames=8, size=(96, 64))


def save_animation(frames, path: Path, durations=None, loop=0, **options) -> Path:
    images = [Image.fromarray(frame) for frame in frames]
    images[0].save(path, save_all=True, append_images=images[1:], duration=durations or 60, loop=loop, **options)
    return path


# ------------------------------------------------------------------------------- conformance


@pytest.mark.parametrize("name", list(CASES))
def test_every_frame_is_read_as_a_browser_composites_it(name):
    case = CASES[name]
    loaded = read_image(case["data"], name=name)
    assert loaded.animation is not None
    assert loaded.animation.n_frames == len(case["frames"])
    assert list(loaded.animation.durations) == case["durations"]
    assert loaded.animation.plays == case["plays"]
    for got, want in zip(frames_of(loaded), case["frames"]):
        np.testing.assert_array_equal(rgba(got), rgba(want))


@pytest.mark.parametrize("name", list(CASES))
@pytest.mark.parametrize("format_name", ["gif", "png", "webp"])
def test_round_trip_keeps_frames_durations_and_loop(name, format_name):
    case = CASES[name]
    result = quantize(case["data"], n_colors=16)
    back = read_image(result.encode(format_name))
    assert back.animation is not None and back.animation.plays == case["plays"]
    written = result.frames()
    if format_name == "gif":  # GIF shows alpha under half as transparent, the rest opaque
        written = [np.where(frame[..., 3:] < 128, 0, np.concatenate([frame[..., :3], np.full_like(frame[..., :1], 255)],
                                                                    axis=-1)) if frame.shape[-1] == 4 else frame
                   for frame in written]
    if format_name == "webp":
        assert timeline(frames_of(back), back.animation.durations) == timeline(written, case["durations"])
    else:
        assert back.animation.n_frames == len(case["frames"])
        assert list(back.animation.durations) == case["durations"]
        for got, want in zip(frames_of(back), written):
            np.testing.assert_array_equal(rgba(got), rgba(want))


def test_one_palette_is_learned_from_all_frames():
    # three frames of one colour each: a palette from the first frame alone would have one entry
    frames = [np.full((8, 8, 3), colour, np.uint8) for colour in ((200, 10, 10), (10, 200, 10), (10, 10, 200))]
    buffer = io.BytesIO()
    save_animation(frames, buffer, format="PNG")
    result = quantize(buffer.getvalue(), n_colors=4)
    assert result.n_frames == 3 and result.n_colors == 3
    for got, want in zip(result.frames(), frames):
        np.testing.assert_array_equal(got, want)


# ------------------------------------------------------------------------------- the command


@pytest.mark.parametrize("suffix", [".gif", ".png", ".webp"])
def test_compress_writes_the_same_kind_of_animation_by_default(run_cli, tmp_path, clip, suffix):
    options = {"lossless": True} if suffix == ".webp" else {}
    source = save_animation(clip, tmp_path / f"clip{suffix}", durations=[40, 50, 60, 70, 80, 90, 100, 110], loop=3,
                            **options)
    result = run_cli("compress", source, "-k", "32", "--json")
    assert result.status == 0, result
    record = json.loads(result.out)
    assert record["output"].endswith(f"clip-kmeans-k32{suffix}")
    assert record["frames"] == 8
    assert set(record["frame_mean"]) >= {"psnr", "mse"} and record["frame_worst"]["psnr"] <= record["frame_mean"]["psnr"]
    back = read_image(Path(record["output"]))
    assert back.animation.n_frames == 8
    assert list(back.animation.durations) == [40, 50, 60, 70, 80, 90, 100, 110]
    assert back.animation.plays == read_image(source).animation.plays
    assert "using the first" not in result.err


@pytest.mark.parametrize("target", ["out.webp", "out.png", "out.gif"])
def test_an_animation_converts_by_suffix(run_cli, tmp_path, clip, target):
    source = save_animation(clip, tmp_path / "clip.gif")
    result = run_cli("compress", source, "-k", "64", "--output", tmp_path / target)
    assert result.status == 0, result
    back = read_image(tmp_path / target)
    assert back.format == {".webp": "WEBP", ".png": "PNG", ".gif": "GIF"}[Path(target).suffix]
    assert back.animation.n_frames == 8


def test_jpeg_for_an_animation_is_refused(run_cli, tmp_path, clip):
    source = save_animation(clip, tmp_path / "clip.gif")
    before = files_in(tmp_path)
    result = run_cli("compress", source, "--format", "jpeg", "-q")
    assert_one_line_error(result, 2, "JPEG holds one frame")
    assert files_in(tmp_path) == before


def test_same_input_same_bytes_dithered_or_not(run_cli, tmp_path, clip):
    source = save_animation(clip, tmp_path / "clip.png")
    for extra in ([], ["--dither"]):
        outputs = []
        for index in range(2):
            out = tmp_path / f"out{index}-{len(extra)}.gif"
            assert run_cli("compress", source, "-k", "16", "--output", out, *extra).status == 0
            outputs.append(out.read_bytes())
        assert outputs[0] == outputs[1]


def test_dithering_keeps_the_pattern_of_still_areas(clip):
    buffer = io.BytesIO()
    save_animation(clip, buffer, format="PNG")
    result = quantize(buffer.getvalue(), n_colors=8, dither=1.0)
    still = np.all([(frame == clip[0]).all(axis=2) for frame in clip], axis=0)
    assert still.mean() > 0.5
    labels = [result.labels[i * 64:(i + 1) * 64] for i in range(8)]
    for frame in labels[1:]:
        np.testing.assert_array_equal(frame[still], labels[0][still])


def test_a_gif_whose_frames_have_palettes_of_their_own_does_not_flicker(clip):
    # Pillow gives each frame of a GIF its own palette: the still background comes back a few
    # levels off on every frame
    buffer = io.BytesIO()
    save_animation(clip, buffer, format="GIF")
    loaded = read_image(buffer.getvalue())
    assert loaded.animation.own_palettes
    source = frames_of(loaded)
    flickering = np.mean([(after != before).any(axis=2).mean() for before, after in zip(source, source[1:])])
    result = quantize(loaded, n_colors=256)  # entries close enough for the flicker to cross them
    labels = [result.labels[i * 64:(i + 1) * 64] for i in range(8)]
    changed = np.mean([(after != before).mean() for before, after in zip(labels, labels[1:])])
    # the sprite covers a sixteenth of the frame and moves over about twice that; 0.41 of the
    # pixels change with every pixel taking its own nearest entry, 0.27 here
    assert flickering > 0.6 and changed < 0.32, (flickering, changed)


def test_a_target_and_a_budget_judge_the_whole_animation(run_cli, tmp_path, clip):
    source = save_animation(clip, tmp_path / "clip.png")
    result = run_cli("compress", source, "--target-psnr", "30", "--json", "--output", tmp_path / "t.png")
    assert result.status == 0, result
    record = json.loads(result.out)
    assert record["psnr"] >= 30 and record["frames"] == 8
    budget = record["bytes_out"] // 2
    result = run_cli("compress", source, "--max-size", str(budget), "--json", "--output", tmp_path / "b.png")
    assert result.status == 0, result
    record = json.loads(result.out)
    assert record["bytes_out"] <= budget == (tmp_path / "b.png").stat().st_size or \
        (tmp_path / "b.png").stat().st_size <= budget
    assert read_image(tmp_path / "b.png").animation.n_frames == 8


def test_pipes_keep_the_animation(tmp_path, clip):
    import subprocess

    source = save_animation(clip, tmp_path / "clip.gif")
    done = subprocess.run([sys.executable, "-m", "colorquant", "compress", "-", "-k", "16"],
                          input=source.read_bytes(), capture_output=True, check=True)
    back = read_image(done.stdout)
    assert back.format == "GIF" and back.animation.n_frames == 8


def test_quantize_result_saves_an_animation(tmp_path, clip):
    source = save_animation(clip, tmp_path / "clip.webp", lossless=True)
    result = quantize(source, n_colors=24)
    assert result.n_frames == 8 and len(result.frames()) == 8
    assert result.metrics.frames["count"] == 8
    saved = result.save(tmp_path / "small.gif")
    assert read_image(saved).animation.n_frames == 8


def test_batch_compresses_animations_and_records_their_frames(run_cli, tmp_path, clip):
    folder = tmp_path / "in"
    folder.mkdir()
    save_animation(clip, folder / "clip.gif")
    Image.fromarray(clip[0]).save(folder / "still.png")
    result = run_cli("batch", folder, "-o", tmp_path / "out", "-k", "16")
    assert result.status == 0, result
    assert read_image(tmp_path / "out" / "clip-kmeans-k16.gif").animation.n_frames == 8
    from colorquant.manifest import MANIFEST_NAME, Manifest

    rows = Manifest(tmp_path / "out" / MANIFEST_NAME, readonly=True).rows()
    animated, still = rows["clip.gif"].outcome, rows["still.png"].outcome
    assert animated.frames == 8 and animated.frame_metrics["worst"]["psnr"] <= animated.frame_metrics["mean"]["psnr"]
    assert still.frames is None
    result = run_cli("batch", "--status", tmp_path / "out", "--csv", tmp_path / "rows.csv")
    assert result.status == 0, result
    import csv

    table = {row["input"]: row for row in csv.DictReader(open(tmp_path / "rows.csv", newline=""))}
    assert table["clip.gif"]["frames"] == "8" and json.loads(table["clip.gif"]["frame_metrics"])["worst"]
    assert table["still.png"]["frames"] == ""


# ------------------------------------------------------------------------ broken files, bombs


def one_frame_gif_blocks(count: int, width: int, height: int) -> bytes:
    """A GIF of ``count`` frames of ``width`` x ``height``, all one colour, built from one
    frame's coded data repeated: a small file that declares many pixels."""
    single = gif_file(width, height, [(0, 0, 0), (255, 255, 255)], [{"indices": np.zeros((height, width), np.uint8)}])
    frame = single[single.index(b"!\xf9"):-1]  # control block, descriptor and data
    return single[:single.index(b"!\xf9")] + frame * count + b";"


def test_many_big_frames_are_refused_from_the_header_with_little_memory(run_cli, tmp_path):
    import tracemalloc

    path = tmp_path / "bomb.gif"
    path.write_bytes(one_frame_gif_blocks(60, 2000, 2000))
    before = files_in(tmp_path)
    tracemalloc.start()
    started = time.perf_counter()
    result = run_cli("compress", path, "--max-pixels", "100000000")
    seconds = time.perf_counter() - started
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert_one_line_error(result, 3, "60 frames of 2000x2000", "over the limit of 100,000,000", "--max-pixels")
    assert files_in(tmp_path) == before
    assert peak < 64 * 2**20, "refused before any frame was decoded"
    assert seconds < 30  # generous: the benchmark measures it (well under a second)


def test_too_many_frames_are_refused(run_cli, tmp_path):
    path = tmp_path / "long.gif"
    path.write_bytes(one_frame_gif_blocks(20, 4, 4))
    assert_one_line_error(run_cli("compress", path, "--max-frames", "10"), 3, "20 frames", "--max-frames")


@pytest.mark.parametrize("cut", [0.3, 0.6, 0.95])
def test_a_truncated_gif_animation_is_refused(run_cli, tmp_path, clip, cut):
    data = (save_animation(clip, tmp_path / "whole.gif")).read_bytes()
    path = tmp_path / "cut.gif"
    path.write_bytes(data[:int(len(data) * cut)])
    before = files_in(tmp_path)
    assert_one_line_error(run_cli("compress", path), 3, str(path), "corrupt or truncated")
    assert files_in(tmp_path) == before


def apng_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    chunks, offset = [], 8
    while offset < len(data):
        length = struct.unpack(">I", data[offset:offset + 4])[0]
        chunks.append((data[offset + 4:offset + 8], data[offset + 8:offset + 8 + length]))
        offset += 12 + length
    return chunks


def apng_bytes(chunks) -> bytes:
    return b"\x89PNG\r\n\x1a\n" + b"".join(
        struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))
        for kind, payload in chunks)


@pytest.mark.parametrize("damage", ["sequence", "missing-frame", "truncated-last"])
def test_a_broken_apng_is_refused(run_cli, tmp_path, clip, damage):
    chunks = apng_chunks(save_animation(clip, tmp_path / "whole.png").read_bytes())
    fdats = [index for index, (kind, _) in enumerate(chunks) if kind == b"fdAT"]
    if damage == "sequence":
        kind, payload = chunks[fdats[2]]
        chunks[fdats[2]] = (kind, struct.pack(">I", 99) + payload[4:])
    elif damage == "missing-frame":
        del chunks[fdats[3] - 1:fdats[3] + 1]  # its fcTL and fdAT; acTL still counts it
    else:
        kind, payload = chunks[fdats[-1]]
        chunks[fdats[-1]] = (kind, payload[:len(payload) // 2])
    path = tmp_path / "broken.png"
    path.write_bytes(apng_bytes(chunks))
    before = files_in(tmp_path)
    result = run_cli("compress", path)
    assert_one_line_error(result, 3, str(path))
    assert files_in(tmp_path) == before


def test_a_truncated_webp_animation_is_refused(run_cli, tmp_path, clip):
    data = save_animation(clip, tmp_path / "whole.webp", lossless=True).read_bytes()
    path = tmp_path / "cut.webp"
    path.write_bytes(data[:len(data) * 2 // 3])
    before = files_in(tmp_path)
    assert_one_line_error(run_cli("compress", path), 3, str(path))
    assert files_in(tmp_path) == before


@pytest.mark.parametrize("ground", ["transparent", "opaque"])
def test_a_sticker_with_transparency_round_trips_in_every_format(ground):
    # a still opaque badge, a square moving over a transparent background (pixels turn
    # transparent where it leaves) or over an opaque one (unchanged pixels may be written
    # see-through): each frame must come back as it was quantized
    frames = []
    for index in range(6):
        frame = np.zeros((24, 32, 4), np.uint8)
        if ground == "opaque":
            frame[9:, :] = (128, 128, 128, 255)
        frame[2:8, 2:10] = (200, 30, 30, 255)
        frame[10 + index:16 + index, 4 * index:4 * index + 6] = (20, 40, 220, 255)
        frame[20:22, 20:30] = (10, 200, 10, 128 if index % 2 else 255)  # partly transparent, blinking
        frame[0, 31] = 0  # a transparent pixel that stays
        frames.append(frame)
    buffer = io.BytesIO()
    save_animation(frames, buffer, format="PNG", durations=[50] * 6)
    result = quantize(buffer.getvalue(), n_colors=8)
    for format_name in ("gif", "png", "webp"):
        back = read_image(result.encode(format_name))
        written = result.frames()
        if format_name == "gif":
            written = [np.where(frame[..., 3:] < 128, 0, np.concatenate([frame[..., :3], np.full_like(frame[..., :1], 255)],
                                                                        axis=-1)) for frame in written]
        assert timeline(frames_of(back), back.animation.durations) == timeline(written, [50] * 6), format_name


@pytest.mark.parametrize("format_name", ["gif", "png", "webp"])
def test_a_moving_sprite_round_trips_exactly(clip, format_name):
    # frames disposed of by restoring their canvas, cropped rectangles, see-through pixels:
    # whatever the writer chose, what plays is what was quantized
    buffer = io.BytesIO()
    save_animation(clip, buffer, format="PNG", durations=[40] * 8)
    result = quantize(buffer.getvalue(), n_colors=48)
    back = read_image(result.encode(format_name))
    assert timeline(frames_of(back), back.animation.durations) == timeline(result.frames(), [40] * 8)


def test_a_gif_frame_far_larger_than_its_canvas_is_refused_before_decoding(run_cli, tmp_path):
    data = bytearray(one_frame_gif_blocks(2, 4, 4))
    second = data.index(b"!\xf9", data.index(b"!\xf9") + 1)
    descriptor = data.index(b",", second)
    data[descriptor + 5:descriptor + 9] = struct.pack("<HH", 60000, 60000)  # the second frame claims 3.6 G pixels
    path = tmp_path / "huge-frame.gif"
    path.write_bytes(bytes(data))
    before = files_in(tmp_path)
    assert_one_line_error(run_cli("compress", path, "--max-pixels", "1000000"), 3, "60000x60000", "over the limit")
    assert files_in(tmp_path) == before


@st.composite
def animations(draw):
    """Small animations: a few frames that change in parts (a still area, a moving or
    blinking block), opaque, with binary alpha or with partial alpha."""
    height, width = draw(st.integers(1, 12)), draw(st.integers(1, 12))
    n_frames = draw(st.integers(2, 5))
    alpha = draw(st.sampled_from(["opaque", "binary", "partial"]))
    seed = draw(st.integers(0, 2**16))
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (height, width, 4), dtype=np.uint8)
    frames = []
    for _ in range(n_frames):
        frame = base.copy()
        if draw(st.booleans()):  # a block changes
            top, left = draw(st.integers(0, height - 1)), draw(st.integers(0, width - 1))
            frame[top:top + draw(st.integers(1, height)), left:left + draw(st.integers(1, width))] = \
                rng.integers(0, 256, 4, dtype=np.uint8)
        if alpha == "opaque":
            frame[..., 3] = 255
        elif alpha == "binary":
            frame[..., 3] = np.where(frame[..., 3] < 100, 0, 255)
        frame[frame[..., 3] == 0] = 0
        frames.append(frame)
    durations = [draw(st.integers(1, 50)) * 10 for _ in range(n_frames)]
    return frames, durations


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(animation=animations(), n_colors=st.integers(2, 256), dither=st.sampled_from([0.0, 1.0]))
def test_any_small_animation_round_trips_through_every_format(animation, n_colors, dither):
    frames, durations = animation
    buffer = io.BytesIO()
    images = [Image.fromarray(frame, "RGBA") for frame in frames]
    images[0].save(buffer, "PNG", save_all=True, append_images=images[1:], duration=durations, loop=0,
                   disposal=1, blend=0)
    loaded = read_image(buffer.getvalue())
    if loaded.animation is None:  # Pillow merged frames that are all alike into one
        return
    result = quantize(loaded, n_colors=n_colors, dither=dither)
    played = timeline(result.frames(), loaded.animation.durations)
    for format_name in ("gif", "png", "webp"):
        back = read_image(result.encode(format_name))
        written = result.frames()
        if format_name == "gif":
            written = [np.where(frame[..., 3:] < 128, 0, np.concatenate([frame[..., :3], np.full_like(frame[..., :1], 255)],
                                                                        axis=-1)) if frame.shape[-1] == 4 else frame
                       for frame in written]
            played = timeline(written, loaded.animation.durations)
        else:
            played = timeline(written, loaded.animation.durations)
        got = [back.pixels] if back.animation is None else frames_of(back)
        got_durations = [sum(loaded.animation.durations)] if back.animation is None else back.animation.durations
        assert timeline(got, got_durations) == played, format_name


def test_pixels_that_stay_transparent_stay_transparent_in_webp():
    # libwebp leaves them out of every frame (the canvas shows them) and flagged the file
    # opaque: they came back black (found by the property test above)
    frames = [np.array([[[150, 29, 187, 255], [0, 0, 0, 0]]], np.uint8), np.array([[[250, 1, 182, 255], [0, 0, 0, 0]]], np.uint8)]
    buffer = io.BytesIO()
    images = [Image.fromarray(frame, "RGBA") for frame in frames]
    images[0].save(buffer, "PNG", save_all=True, append_images=images[1:], duration=[30, 30], loop=0)
    back = read_image(quantize(buffer.getvalue(), n_colors=3).encode("webp"))
    assert rgba(back.pixels)[:, 1].tolist() == [[0, 0, 0, 0], [0, 0, 0, 0]]

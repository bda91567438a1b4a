"""Object storage for real: an S3-compatible server (moto's, as s3fs tests itself) on
127.0.0.1, started and stopped by these tests; batch on a Dask LocalCluster with two worker
processes; the client killed with SIGKILL mid-run and resumed; every cloud error a user
meets, each one line with its exit status, and no secret in any of them."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from colorquant import objects

from .conftest import assert_one_line_error
from .test_runners import alive, descendants

SECRET = "s3cr3t-value-that-must-never-show"
COMMAND = [sys.executable, "-m", "colorquant"]


def _moto_server(extra_env: dict | None = None):
    """moto's standalone S3 server in its own process on a free port; returns (process, url)."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return _moto_server_on(port, extra_env)


def _moto_server_on(port: int, extra_env: dict | None = None):
    import socket

    env = dict(os.environ, **(extra_env or {}))
    process = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return process, url
        except OSError:
            time.sleep(0.1)
    process.kill()
    pytest.fail("moto's S3 server did not start")


@pytest.fixture(scope="module")
def s3_endpoint():
    process, url = _moto_server()
    yield url
    process.terminate()
    process.wait(10)


@pytest.fixture
def s3_env(s3_endpoint, monkeypatch):
    """Credentials where AWS tools look for them; the endpoint given on the command line."""
    env = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": SECRET, "AWS_DEFAULT_REGION": "us-east-1",
           "AWS_EC2_METADATA_DISABLED": "true"}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    objects._FILESYSTEMS.clear()
    return dict(os.environ)


@pytest.fixture
def s3(s3_env, s3_endpoint):
    import fsspec

    return fsspec.filesystem("s3", endpoint_url=s3_endpoint, skip_instance_cache=True)


def endpoint_option(endpoint: str) -> list[str]:
    return ["--storage-option", f"endpoint_url={endpoint}"]


@pytest.fixture
def bucket(s3, coffee, astronaut):
    """A new bucket with 20 distinct photographs under in/."""
    name = "photos-" + uuid.uuid4().hex[:10]
    s3.mkdir(name)
    for index in range(20):
        source = coffee if index % 2 else astronaut
        crop = np.ascontiguousarray(source[index * 9 : index * 9 + 240, index * 7 : index * 7 + 320])
        buffer = io.BytesIO()
        Image.fromarray(crop).save(buffer, "PNG")
        s3.pipe_file(f"{name}/in/photo{index:02d}.png", buffer.getvalue())
    return name


def run(*argv, env=None, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([*COMMAND, *map(str, argv)], capture_output=True, text=True, env=env, cwd=cwd,
                          timeout=300)


def palette_pngs(s3, prefix: str) -> dict[str, Image.Image]:
    images = {}
    for key in s3.find(prefix):
        with Image.open(io.BytesIO(s3.cat_file(key))) as image:
            image.load()
            images[key.rsplit("/", 1)[1]] = image
    return images


def test_batch_on_a_dask_cluster_survives_kill_9_of_the_client(s3, s3_env, s3_endpoint, bucket, tmp_path):
    manifest = tmp_path / "manifest.sqlite"
    argv = [*COMMAND, "batch", f"s3://{bucket}/in", "-o", f"s3://{bucket}/small", "-k", "256",
            "--speed", "1", "--manifest", str(manifest), *endpoint_option(s3_endpoint), "-q"]
    client = subprocess.Popen([*argv, "--scheduler", "local", "--jobs", "2"], env=s3_env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and client.poll() is None:
        done = len(s3.find(f"{bucket}/small")) if s3.exists(f"{bucket}/small") else 0
        s3.invalidate_cache()
        if done >= 3:
            break
        time.sleep(0.2)
    assert client.poll() is None, client.communicate()
    cluster = descendants(client.pid)
    assert len(cluster) >= 2  # the Dask worker processes
    os.kill(client.pid, signal.SIGKILL)
    client.wait()
    deadline = time.monotonic() + 10
    while any(alive(pid) for pid in cluster) and time.monotonic() < deadline:
        time.sleep(0.1)
    for pid in cluster:  # the orphans of a killed client are not ours to keep
        if alive(pid):
            os.kill(pid, signal.SIGKILL)

    resumed = run(*argv[3:], "--scheduler", "local", "--jobs", "2", env=s3_env)
    assert resumed.returncode == 0, resumed.stderr
    s3.invalidate_cache()
    outputs = palette_pngs(s3, f"{bucket}/small")
    assert sorted(outputs) == [f"photo{index:02d}-kmeans-k256.png" for index in range(20)]  # each once, nothing else
    for image in outputs.values():
        assert image.mode == "P" and len(image.getcolors(256)) <= 256
    status = run("batch", "--status", f"s3://{bucket}/small", "--manifest", manifest, env=s3_env)
    assert status.returncode == 0 and "done      20" in status.stdout and "outputs   20 files" in status.stdout
    again = run(*argv[3:], env=s3_env)  # nothing left to do; every input known by its ETag
    assert again.returncode == 0 and "already up to date    20" in again.stdout
    for text in (resumed.stdout + resumed.stderr, status.stdout, manifest.read_bytes().decode("latin-1")):
        assert SECRET not in text


def test_changed_and_deleted_inputs_and_outputs_are_reconciled(s3, s3_env, s3_endpoint, bucket, tmp_path):
    argv = ["batch", f"s3://{bucket}/in", "-o", f"s3://{bucket}/small", "--manifest", tmp_path / "m.sqlite",
            *endpoint_option(s3_endpoint), "--jobs", "2", "-q"]
    assert run(*argv, env=s3_env).returncode == 0
    s3.rm_file(f"{bucket}/small/photo03-kmeans-k200.png")         # a lost output: rebuilt
    s3.pipe_file(f"{bucket}/in/photo05.png", s3.cat_file(f"{bucket}/in/photo06.png"))  # a changed input: redone
    s3.rm_file(f"{bucket}/in/photo07.png")                        # a deleted input: reported
    s3.pipe_file(f"{bucket}/small/photo08-kmeans-k200.png", b"someone else's bytes")  # not ours: left alone
    result = run(*argv, env=s3_env)
    assert result.returncode == 4, result.stderr  # the output someone else changed
    assert "already up to date    16" in result.stdout and "done now              2" in result.stdout
    assert "inputs gone           1" in result.stdout
    assert "photo08-kmeans-k200.png: already exists and was not written by this batch, or was changed since" in result.stderr
    assert s3.cat_file(f"{bucket}/small/photo08-kmeans-k200.png") == b"someone else's bytes"  # left as it is
    s3.invalidate_cache()
    assert s3.exists(f"{bucket}/small/photo03-kmeans-k200.png")  # rebuilt
    assert s3.exists(f"{bucket}/small/photo07-kmeans-k200.png")  # its input is gone; the output is kept


def test_an_input_replaced_by_other_bytes_of_the_same_size_is_redone(s3, s3_env, s3_endpoint, bucket, tmp_path,
                                                                     coffee, astronaut):
    # Stored (uncompressed) PNGs of two crops of one size have one length: only the object's
    # ETag tells that the content changed.
    def stored_png(pixels):
        buffer = io.BytesIO()
        Image.fromarray(np.ascontiguousarray(pixels)).save(buffer, "PNG", compress_level=0)
        return buffer.getvalue()

    first, second = stored_png(coffee[:96, :128]), stored_png(astronaut[:96, :128])
    assert len(first) == len(second) and first != second
    s3.pipe_file(f"{bucket}/one/photo.png", first)
    argv = ["batch", f"s3://{bucket}/one", "-o", f"s3://{bucket}/one-small", "--manifest",
            tmp_path / "m.sqlite", *endpoint_option(s3_endpoint)]
    assert run(*argv, env=s3_env).returncode == 0
    output = f"{bucket}/one-small/photo-kmeans-k200.png"
    before = s3.cat_file(output)
    s3.pipe_file(f"{bucket}/one/photo.png", second)
    result = run(*argv, env=s3_env)
    assert result.returncode == 0, result.stderr
    assert "done now              1" in result.stdout, result.stdout
    s3.invalidate_cache()
    after = s3.cat_file(output)
    assert after != before
    with Image.open(io.BytesIO(after)) as written:
        assert np.abs(np.asarray(written.convert("RGB")).astype(int) - astronaut[:96, :128]).mean() < 12


def test_an_object_the_batch_did_not_write_is_left_alone_unless_force(s3, s3_env, s3_endpoint, bucket, tmp_path):
    s3.pipe_file(f"{bucket}/small/photo00-kmeans-k200.png", b"a user's own file")
    argv = ["batch", f"s3://{bucket}/in", "-o", f"s3://{bucket}/small", "--manifest", tmp_path / "m.sqlite",
            *endpoint_option(s3_endpoint), "-q"]
    result = run(*argv, env=s3_env)
    assert result.returncode == 4
    assert "photo00-kmeans-k200.png: already exists and was not written by this batch" in result.stderr
    assert s3.cat_file(f"{bucket}/small/photo00-kmeans-k200.png") == b"a user's own file"
    assert run(*argv, "--force", "--retry-failed", env=s3_env).returncode == 0
    assert s3.cat_file(f"{bucket}/small/photo00-kmeans-k200.png").startswith(b"\x89PNG")


def test_compress_reads_and_writes_objects(s3, s3_env, s3_endpoint, bucket, tmp_path):
    source = f"s3://{bucket}/in/photo01.png"
    first = run("compress", source, "-o", f"s3://{bucket}/one/", *endpoint_option(s3_endpoint), env=s3_env)
    assert first.returncode == 0, first.stderr
    assert f"-> s3://{bucket}/one/photo01-kmeans-k200.png: 200 colours" in first.stdout
    again = run("compress", source, "-o", f"s3://{bucket}/one/", *endpoint_option(s3_endpoint), env=s3_env)
    assert again.returncode == 4 and "already exists (--force replaces it)" in again.stderr
    local = run("compress", source, "--output", tmp_path / "here.png", *endpoint_option(s3_endpoint), env=s3_env)
    assert local.returncode == 0 and (tmp_path / "here.png").read_bytes() == s3.cat_file(f"{bucket}/one/photo01-kmeans-k200.png")
    up = run("compress", tmp_path / "here.png", "--output", f"s3://{bucket}/up/x.webp", *endpoint_option(s3_endpoint),
             env=s3_env)
    assert up.returncode == 0 and Image.open(io.BytesIO(s3.cat_file(f"{bucket}/up/x.webp"))).format == "WEBP"


@pytest.mark.parametrize("case", ["no credentials", "missing bucket", "unreachable endpoint", "missing object"])
def test_cloud_errors_are_one_line_with_the_documented_status(case, s3_env, s3_endpoint, bucket, tmp_path):
    env, endpoint = dict(s3_env), s3_endpoint
    source, status, fragment = f"s3://{bucket}/in", 3, None
    if case == "no credentials":
        for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
            env.pop(name)
        env.update(AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"), AWS_CONFIG_FILE=str(tmp_path / "none"))
        fragment = "no credentials found: set AWS_ACCESS_KEY_ID"
    elif case == "missing bucket":
        source, fragment = "s3://no-such-bucket-here/in", "s3://no-such-bucket-here/in: no such bucket"
    elif case == "unreachable endpoint":
        endpoint, fragment = "http://127.0.0.1:9", "cannot reach the storage endpoint"
    if case == "missing object":
        result = run("compress", f"s3://{bucket}/in/nothere.png", "-o", tmp_path, *endpoint_option(endpoint), env=env)
        fragment = f"s3://{bucket}/in/nothere.png: no such object"
    else:
        result = run("batch", source, "-o", f"s3://{bucket}/small", "--manifest", tmp_path / "m.sqlite",
                     *endpoint_option(endpoint), env=env)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == status and len(lines) == 1, result.stderr
    assert lines[0].startswith("colorquant: ") and fragment in lines[0] and "Traceback" not in result.stderr
    assert SECRET not in result.stderr + result.stdout


def test_access_denied_is_one_line_without_the_secret(s3_env, tmp_path):
    # a second server that checks signatures: our key is not one of its users'
    process, endpoint = _moto_server({"INITIAL_NO_AUTH_ACTION_COUNT": "0"})
    try:
        result = run("batch", "s3://photos/in", "-o", "s3://photos/small", "--manifest", tmp_path / "m.sqlite",
                     "--storage-option", f"endpoint_url={endpoint}", "--storage-option", "key=testing",
                     "--storage-option", f"secret={SECRET}x",
                     env=s3_env)
    finally:
        process.terminate()
        process.wait(10)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 3 and len(lines) == 1, result.stderr
    assert "s3://photos/in: access denied" in lines[0]
    assert SECRET not in result.stderr + result.stdout


def test_a_url_without_the_extra_says_what_to_install(run_cli, tmp_path):
    result = run_cli("compress", "gs://bucket/a.png", "-o", tmp_path)  # gcsfs is not installed here
    assert result.status == 2
    assert "gs:// needs gcsfs: pip install 'colorquant[cloud]' gcsfs" in result.err


def test_object_deleted_after_listing_and_throttled_requests_fail_only_that_input(
        s3, s3_env, s3_endpoint, bucket, tmp_path, monkeypatch):
    from colorquant.objectbatch import run_object_batch
    from colorquant.objects import ObjectFolder, ObjectInfo
    from colorquant.settings import Settings

    real_list, real_read_filesystem = ObjectFolder.list, ObjectFolder.filesystem
    throttled = {"photo03.png": 2, "photo04.png": 10**6}  # throttled twice (then fine), and for good

    def listing_with_a_ghost(self, **kwargs):
        listed = real_list(self, **kwargs)
        if self.url.endswith("/in"):
            listed["ghost.png"] = ObjectInfo(size=10, etag="abc", mtime_ns=1)  # deleted since listed
        return listed

    class Throttling:
        def __init__(self, fs):
            self.fs = fs

        def __getattr__(self, name):
            return getattr(self.fs, name)

        def cat_file(self, path, *args, **kwargs):
            name = path.rsplit("/", 1)[1]
            if throttled.get(name, 0) > 0:
                throttled[name] -= 1
                raise OSError("An error occurred (SlowDown) when calling the GetObject operation: Please reduce your request rate.")
            return self.fs.cat_file(path, *args, **kwargs)

    monkeypatch.setattr(ObjectFolder, "list", listing_with_a_ghost)
    monkeypatch.setattr(ObjectFolder, "filesystem", lambda self: Throttling(real_read_filesystem(self)))
    monkeypatch.setattr(objects, "_FIRST_DELAY", 0.01)
    monkeypatch.chdir(tmp_path)
    outcomes = []
    summary = run_object_batch(f"s3://{bucket}/in", f"s3://{bucket}/small", Settings.from_keywords(n_colors=8),
                               jobs=1, storage_options=(("endpoint_url", s3_endpoint),),
                               on_event=lambda kind, payload: kind == "result" and outcomes.append(payload))
    failed = {outcome.input: outcome.error for outcome in outcomes if outcome.status == "failed"}
    assert sorted(failed) == ["ghost.png", "photo04.png"]
    assert failed["ghost.png"] == f"s3://{bucket}/in/ghost.png: no such object (deleted since it was listed)"
    assert "kept throttling requests, gave up after 5 tries" in failed["photo04.png"]
    assert summary.counts["done"] == 20 - 1 and throttled["photo03.png"] == 0  # retried, then done
    assert (tmp_path / f"colorquant-s3-{bucket}-small.sqlite").is_file()  # the manifest beside the user


def test_a_url_typo_is_a_usage_error_that_creates_nothing(run_cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = run_cli("batch", "s4://bkt/in", "-o", tmp_path / "typo")
    assert_one_line_error(result, 2, "s4://: not a storage protocol colorquant knows")
    assert "pip install" not in result.err
    assert list(tmp_path.iterdir()) == []  # no folder, no manifest: the corrected command runs


def test_a_missing_input_bucket_binds_no_manifest(s3, s3_env, s3_endpoint, tmp_path):
    argv = ["batch", "s3://no-such-bucket-here/in", "-o", tmp_path / "out", *endpoint_option(s3_endpoint)]
    result = run(*argv, env=s3_env)
    assert result.returncode == 3, result.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("argv, fragment", [
    (["compress", "-", "--output", "s3://bkt/x.png"], "not to object storage"),
    (["compress", "-", "-o", "s3://bkt/c2/"], "not to object storage"),
    (["batch", "--status", "out", "--csv", "s3://bkt/rows.csv"], "--csv s3://bkt/rows.csv"),
    (["batch", "in", "-o", "out", "--manifest", "s3://bkt/m.sqlite"], "--manifest s3://bkt/m.sqlite"),
])
def test_urls_where_they_are_not_supported_are_refused_before_any_work(run_cli, tmp_path, monkeypatch, argv, fragment):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "in").mkdir()
    result = run_cli(*argv)
    assert_one_line_error(result, 2, fragment)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in"]  # no folder named s3:


def test_storage_options_take_json_objects(s3, s3_env, s3_endpoint, bucket, tmp_path):
    result = run("compress", f"s3://{bucket}/in/photo00.png", "-o", tmp_path, *endpoint_option(s3_endpoint),
                 "--storage-option", 'client_kwargs={"region_name": "us-east-1"}', env=s3_env)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "photo00-kmeans-k200.png").exists()


def test_an_object_to_standard_output(s3, s3_env, s3_endpoint, bucket, tmp_path):
    result = subprocess.run([*COMMAND, "compress", f"s3://{bucket}/in/photo01.png", "--output", "-",
                             *endpoint_option(s3_endpoint)], capture_output=True, env=s3_env, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout[:8] == b"\x89PNG\r\n\x1a\n"


def test_an_s3_output_that_cannot_be_written_is_exit_4(s3_env, tmp_path, coffee):
    # local input, an endpoint that does not answer: an output-side failure
    from .conftest import save_image

    photo = save_image(tmp_path / "p.png", coffee[:64, :64])
    with __import__("socket").socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = run("compress", photo, "--output", "s3://bkt/p.png", "--storage-option",
                 f"endpoint_url=http://127.0.0.1:{port}", env=s3_env)
    assert result.returncode == 4, result.stderr


def test_an_endpoint_that_dies_stops_the_run_and_its_failures_are_retried(s3_env, tmp_path, coffee):
    # Inputs on a store of their own that goes away mid-run: the run stops with one line
    # (exit 3), not one failure per remaining input; once the store is back (a new server on
    # the same port, the same objects), a plain re-run retries what failed and finishes.
    import fsspec

    def start_store(port=None):
        process, url = _moto_server() if port is None else _moto_server_on(port)
        store = fsspec.filesystem("s3", endpoint_url=url, skip_instance_cache=True)
        store.mkdir("gone")
        for index in range(16):
            buffer = io.BytesIO()
            Image.fromarray(np.ascontiguousarray(coffee[index * 9 : index * 9 + 200, :300])).save(buffer, "PNG")
            store.pipe_file(f"gone/in/p{index:02d}.png", buffer.getvalue())
        return process, url

    process, url = start_store()
    output = tmp_path / "out"
    argv = ["batch", "s3://gone/in", "-o", output, "--storage-option", f"endpoint_url={url}", "--jobs", "2",
            "-k", "256", "--speed", "1"]
    run_batch = subprocess.Popen([*COMMAND, *map(str, argv)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 env=s3_env, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and len(list(output.glob("*.png"))) < 2:
        time.sleep(0.02)
    process.kill()
    process.wait()
    out, err = run_batch.communicate(timeout=120)
    try:
        assert run_batch.returncode == 3, err
        lines = [line for line in err.splitlines() if line.startswith("colorquant:")]
        assert "the run stopped: cannot reach the storage endpoint" in lines[-1]
        assert "running the same command again retries it" in lines[-1]
        done_before = len(list(output.glob("*.png")))
        assert len(lines) <= 3, lines  # the inputs in flight at most, not every one left
        assert 2 <= done_before < 16
        process, _ = start_store(int(url.rsplit(":", 1)[1]))
        again = run(*argv, env=s3_env)
        assert again.returncode == 0, again.stderr
        assert len(list(output.glob("*.png"))) == 16
        assert f"already up to date    {done_before}" in again.stdout, again.stdout
    finally:
        process.kill()
        process.wait()


def test_an_animation_in_a_bucket_keeps_every_frame(s3, s3_env, s3_endpoint, tmp_path, coffee, astronaut):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from animation_set import sprite_frames

    from colorquant.imageio import read_image

    name = "clips-" + uuid.uuid4().hex[:10]
    s3.mkdir(name)
    frames = [Image.fromarray(frame) for frame in sprite_frames(astronaut, coffee, n_frames=5, size=(64, 48))]
    buffer = io.BytesIO()
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:], duration=90, loop=0)
    s3.pipe_file(f"{name}/in/clip.gif", buffer.getvalue())
    one = run("compress", f"s3://{name}/in/clip.gif", "-k", "16", "-o", f"s3://{name}/one/",
              *endpoint_option(s3_endpoint), env=s3_env)
    assert one.returncode == 0, one.stderr
    written = read_image(s3.cat_file(f"{name}/one/clip-kmeans-k16.gif"))
    assert written.animation.n_frames == 5 and written.animation.durations == (90,) * 5
    batch = run("batch", f"s3://{name}/in", "-o", f"s3://{name}/all", "-k", "16", "--manifest", tmp_path / "m.sqlite",
                *endpoint_option(s3_endpoint), env=s3_env)
    assert batch.returncode == 0, batch.stderr
    assert read_image(s3.cat_file(f"{name}/all/clip-kmeans-k16.gif")).animation.n_frames == 5

"""Atomic writes: all or nothing, no temporary left behind, never over an input."""

from __future__ import annotations

import pytest

from colorquant.errors import ImageWriteError
from colorquant.storage import write_atomic


def test_write_atomic_refuses_existing_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "out.png"
    write_atomic(b"first", target)
    with pytest.raises(ImageWriteError, match="already exists"):
        write_atomic(b"second", target)
    assert target.read_bytes() == b"first"
    write_atomic(b"third", target, overwrite=True)
    assert target.read_bytes() == b"third"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.png"]


def test_write_atomic_failure_keeps_old_file_and_cleans_up(tmp_path, monkeypatch):
    target = tmp_path / "out.png"
    write_atomic(b"old", target)

    def broken_replace(*args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("colorquant.storage.os.replace", broken_replace)
    with pytest.raises(ImageWriteError, match="No space left on device"):
        write_atomic(b"new", target, overwrite=True)
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.png"]


def test_write_atomic_protects_input_through_hard_link(tmp_path):
    source = tmp_path / "in.png"
    source.write_bytes(b"precious")
    alias = tmp_path / "alias.png"
    alias.hardlink_to(source)
    with pytest.raises(ImageWriteError, match="refusing to overwrite the input"):
        write_atomic(b"x", alias, overwrite=True, protect=(source,))
    assert source.read_bytes() == b"precious"


def test_a_write_cut_short_by_the_system_keeps_the_old_file(tmp_path, coffee):
    # A real short write, not a mocked one: the process may write files of at most 4 KiB
    # (RLIMIT_FSIZE, as a full disk or a quota would stop it), so the new output breaks off
    # part-way. The file it was to replace keeps every byte, and no temporary is left.
    import resource
    import signal
    import subprocess
    import sys

    from PIL import Image

    source = tmp_path / "coffee.png"
    Image.fromarray(coffee).save(source)
    old = tmp_path / "old.png"
    old.write_bytes(b"the earlier output " * 1000)

    def limit_file_size():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG from write(), not death
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))

    result = subprocess.run([sys.executable, "-B", "-m", "colorquant", "compress", str(source),
                             "--output", str(old), "--force"], capture_output=True, text=True,
                            preexec_fn=limit_file_size, timeout=120)
    assert result.returncode == 4, result.stderr
    assert "old.png: cannot write" in result.stderr and "Traceback" not in result.stderr
    assert old.read_bytes() == b"the earlier output " * 1000
    assert sorted(p.name for p in tmp_path.iterdir()) == ["coffee.png", "old.png"]

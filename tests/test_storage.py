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

"""Where outputs go: atomic writes that never replace an input, and no-clobber unless asked.

Every output (images, figures, CSV exports) is written to a temporary file in its destination
folder and renamed into place, so a reader sees the old file or the new one, never a part.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from .errors import ImageWriteError

__all__ = ["write_atomic", "check_destination"]


def write_atomic(data: bytes, path, *, overwrite: bool = False, protect=()) -> Path:
    """Write ``data`` to ``path`` all at once or not at all.

    The bytes go to a temporary file in the destination folder, which is then renamed over
    ``path``. An existing ``path`` is refused unless ``overwrite``; a path that is one of
    ``protect`` (an input, also through a link) is always refused.
    """
    path = check_destination(path, overwrite=overwrite, protect=protect)
    folder = path.parent
    try:
        handle, temporary = tempfile.mkstemp(prefix=f".{path.name[:64]}.", suffix=".part", dir=folder)
    except OSError as error:
        raise ImageWriteError(f"{path}: cannot write ({error.strerror or error})") from None
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(temporary, 0o644)
        if overwrite:
            os.replace(temporary, path)
        else:
            _move_no_clobber(temporary, path)
    except FileExistsError:
        _remove_quietly(temporary)
        raise ImageWriteError(f"{path}: already exists (use --force / overwrite=True to replace it)") from None
    except OSError as error:
        _remove_quietly(temporary)
        raise ImageWriteError(f"{path}: cannot write ({error.strerror or error})") from None
    except BaseException:
        _remove_quietly(temporary)
        raise
    return path


def check_destination(path, *, overwrite: bool = False, protect=()) -> Path:
    """Refuse ``path`` if it is one of ``protect`` (also through a link), if it exists and
    ``overwrite`` is false, or if its folder does not exist. Returns it as a Path."""
    path = Path(path)
    for protected in protect:
        if protected is not None and _same_file(path, Path(protected)):
            raise ImageWriteError(f"{path}: refusing to overwrite the input file")
    if path.is_dir():
        raise ImageWriteError(f"{path}: is a directory")
    if path.exists() and not overwrite:
        raise ImageWriteError(f"{path}: already exists (use --force / overwrite=True to replace it)")
    if not path.parent.is_dir():
        raise ImageWriteError(f"{path}: output folder {path.parent} does not exist")
    return path


def _move_no_clobber(temporary: str, path: Path) -> None:
    # link() fails if path appeared meanwhile: no-clobber without a race. Filesystems
    # without hard links fall back to a checked rename.
    try:
        os.link(temporary, path)
    except FileExistsError:
        raise
    except OSError:
        if path.exists():
            raise FileExistsError(path) from None
        os.replace(temporary, path)
    else:
        os.unlink(temporary)


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _remove_quietly(path) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass

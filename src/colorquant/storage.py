"""Files on disk: atomic writes that never replace an input, no-clobber unless asked, and
reads that touch only regular files.

Every output (images, figures, CSV exports) is written to a temporary file in its destination
folder and renamed into place, so a reader sees the old file or the new one, never a part. A
temporary's name carries a tag (``.NAME.TAG.RANDOM.part``; the batch uses a token of its own
output folder), so that leftovers of a killed run can be told from anyone else's files.

Inputs are opened without blocking and checked to be regular files before a byte is read: a
named pipe, socket or device given as an image is refused at once instead of hanging.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
import tempfile
from pathlib import Path

from .errors import BatchLockedError, ImageReadError, ImageWriteError

__all__ = ["write_atomic", "check_destination", "read_regular_file", "content_hash",
           "file_hash", "remove_temporaries", "discard_live_temporaries", "same_file",
           "not_regular_reason", "FolderLock", "DEFAULT_TEMP_TAG"]

DEFAULT_TEMP_TAG = "colorquant"
# Temporary files this process is writing now: a process told to stop at once (a worker
# whose run was interrupted or killed) removes them before it exits, without unwinding.
_LIVE_TEMPORARIES: set[str] = set()
_KINDS = ((stat.S_ISFIFO, "a named pipe"), (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a device"),
          (stat.S_ISBLK, "a device"), (stat.S_ISDIR, "a directory"))


def not_regular_reason(mode: int) -> str | None:
    """Why a file of ``mode`` is not read as an image (None for a regular file)."""
    if stat.S_ISREG(mode):
        return None
    for test, kind in _KINDS:
        if test(mode):
            return f"is {kind}, not a regular file"
    return "is not a regular file"


def read_regular_file(path, *, head_problem=None) -> tuple[bytes, os.stat_result]:
    """The bytes of ``path`` and its stat, refusing anything but a regular file before
    reading (opened with O_NONBLOCK, so a named pipe cannot block the open either).

    head_problem : callable(first 64 bytes) -> reason or None; a reason refuses the file
        before the rest is read (a sparse 1 GB file that is no image costs one small read)
    """
    name = str(path)
    try:
        descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise ImageReadError(f"{name}: no such file") from None
    except IsADirectoryError:
        raise ImageReadError(f"{name}: is a directory, not an image file") from None
    except PermissionError:
        raise ImageReadError(f"{name}: permission denied") from None
    except OSError as error:
        raise ImageReadError(f"{name}: cannot read ({error.strerror or error})") from None
    info = os.fstat(descriptor)
    reason = not_regular_reason(info.st_mode)
    if reason is not None:
        os.close(descriptor)
        raise ImageReadError(f"{name}: {reason}")
    with os.fdopen(descriptor, "rb") as handle:
        if info.st_size == 0:
            raise ImageReadError(f"{name}: empty file")
        try:
            head = handle.read(64)
            if head_problem is not None and (reason := head_problem(head)) is not None:
                raise ImageReadError(f"{name}: {reason}")
            return head + handle.read(), info
        except OSError as error:
            raise ImageReadError(f"{name}: cannot read ({error.strerror or error})") from None


def content_hash(data: bytes) -> str:
    """BLAKE2b-128 of ``data``, as the manifest stores it."""
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def file_hash(path) -> str:
    """:func:`content_hash` of a file's bytes, read in blocks."""
    digest = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def remove_temporaries(root, tag: str) -> int:
    """Remove the temporary files carrying ``tag`` under ``root`` (a killed run's leftovers);
    nothing else is touched. Returns how many were removed."""
    pattern = re.compile(rf"^\..+\.{re.escape(tag)}\.[A-Za-z0-9_]+\.part$")
    removed = 0
    for folder, _, names in os.walk(root):
        for name in names:
            if pattern.match(name):
                _remove_quietly(os.path.join(folder, name))
                removed += 1
    return removed


def write_atomic(data: bytes, path, *, overwrite: bool = False, protect=(), protect_ids=frozenset(),
                 temp_tag: str = DEFAULT_TEMP_TAG) -> Path:
    """Write ``data`` to ``path`` all at once or not at all.

    The bytes go to a temporary file in the destination folder (named with ``temp_tag``),
    which is then renamed over ``path``. An existing ``path`` is refused unless
    ``overwrite``; a path that is one of ``protect`` (an input, also through a link), or a
    file of ``protect_ids`` (:func:`file_identities` of every input of a run), is always
    refused.
    """
    path = check_destination(path, overwrite=overwrite, protect=protect, protect_ids=protect_ids)
    folder = path.parent
    try:
        handle, temporary = tempfile.mkstemp(prefix=f".{path.name[:64]}.{temp_tag}.", suffix=".part", dir=folder)
    except OSError as error:
        raise ImageWriteError(f"{path}: cannot write ({error.strerror or error})") from None
    _LIVE_TEMPORARIES.add(temporary)
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
        raise ImageWriteError(f"{path}: already exists", remedy="overwrite") from None
    except OSError as error:
        _remove_quietly(temporary)
        raise ImageWriteError(f"{path}: cannot write ({error.strerror or error})") from None
    except BaseException:
        _remove_quietly(temporary)
        raise
    finally:
        _LIVE_TEMPORARIES.discard(temporary)
    return path


def discard_live_temporaries() -> None:
    """Remove the temporary files this process is writing now; for a process about to exit
    without unwinding (``os._exit``). A rename already done leaves a whole output."""
    for temporary in list(_LIVE_TEMPORARIES):
        _remove_quietly(temporary)


def file_identities(paths) -> frozenset:
    """(device, inode) of each of ``paths`` that exists: what :func:`check_destination`
    protects in one look-up per output, however many inputs a run has."""
    identities = set()
    for path in paths:
        try:
            info = os.stat(path)
        except (OSError, ValueError):
            continue
        identities.add((info.st_dev, info.st_ino))
    return frozenset(identities)


def check_destination(path, *, overwrite: bool = False, protect=(), protect_ids=frozenset()) -> Path:
    """Refuse ``path`` if it is one of ``protect`` (also through a link) or a file of
    ``protect_ids``, if it exists and ``overwrite`` is false, or if its folder does not
    exist. Returns it as a Path."""
    path = Path(path)
    for protected in protect:
        if protected is not None and same_file(path, Path(protected)):
            raise ImageWriteError(f"{path}: refusing to overwrite the input file")
    if protect_ids:
        try:
            info = os.stat(path)
        except (OSError, ValueError):
            info = None
        if info is not None and (info.st_dev, info.st_ino) in protect_ids:
            raise ImageWriteError(f"{path}: is an input of this run; refusing to overwrite it "
                                  "(--force never replaces an input)")
    if path.is_dir():
        raise ImageWriteError(f"{path}: is a directory")
    if path.exists() and not overwrite:
        raise ImageWriteError(f"{path}: already exists", remedy="overwrite")
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


def same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _remove_quietly(path) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


class FolderLock:
    """Creates ``folder``, then holds an exclusive, non-blocking lock on it (a file named
    ``name`` in it), released when the process ends, however it ends."""

    def __init__(self, folder: Path, name: str):
        self.folder = Path(folder)
        self.path = self.folder / name

    def __enter__(self):
        import fcntl

        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            self.handle = open(self.path, "a+")
        except OSError as error:
            raise ImageWriteError(
                f"{self.folder}: cannot create output folder ({error.strerror or error})") from None
        try:
            fcntl.flock(self.handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.handle.seek(0)
            holder = self.handle.read().strip() or "another process"
            self.handle.close()
            raise BatchLockedError(
                f"{self.folder}: another colorquant batch ({holder}) is writing here; "
                "wait for it to finish or choose another output folder"
            ) from None
        self.handle.seek(0)
        self.handle.truncate()
        self.handle.write(f"pid {os.getpid()}")
        self.handle.flush()
        return self

    def __exit__(self, *exc):
        self.handle.close()

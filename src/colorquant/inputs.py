"""Which files of a folder are inputs: regular image files, found in a stable order.

Never read: the output folder, any folder holding a colorquant manifest (an earlier output
folder), links to folders, links leading out of the input folder (refused, with a reason),
named pipes, sockets and devices (refused from their stat), and, unless asked, hidden files
and folders (``.name``; macOS ``._name`` files never). A file whose suffix is not an image's
is an input when its first bytes are those of a format colorquant reads.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from .errors import ImageReadError
from .manifest import MANIFEST_NAME
from .storage import not_regular_reason

__all__ = ["Found", "Discovery", "discover", "IMAGE_SUFFIXES", "inside"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp", ".tif", ".tiff")


@dataclass(frozen=True)
class Found:
    """A candidate input: ``refusal`` says why it must not be read (None: read it)."""

    relpath: str
    refusal: str | None = None


@dataclass
class Discovery:
    inputs: list = field(default_factory=list)
    hidden: int = 0
    not_images: int = 0
    pruned: list = field(default_factory=list)  # folders left out, relative to the input root
    unreadable: list = field(default_factory=list)  # (folder relative to the input root, reason)


def _is_image_by_content(path: Path) -> bool:
    try:
        with open(path, "rb", opener=lambda p, flags: os.open(p, flags | os.O_NONBLOCK)) as handle:
            if not_regular_reason(os.fstat(handle.fileno()).st_mode) is not None:
                return False
            start = handle.read(16)
    except OSError:
        return False
    from .imageio import has_image_signature

    return has_image_signature(start)


def discover(input_dir: Path, output_dir: Path, *, recursive: bool, include_hidden: bool = False) -> Discovery:
    """The candidate inputs under ``input_dir``, in a stable order, and what was left out.

    Never searched: the output folder, any folder holding a colorquant manifest (an earlier
    output folder), links to folders, and (unless ``include_hidden``) hidden names.
    """
    found = Discovery()
    input_real, output_real = input_dir.resolve(), output_dir.resolve()

    def unreadable(error: OSError) -> None:  # os.walk's report of a folder it cannot list
        where = Path(error.filename) if error.filename else input_dir
        reason = f"cannot read this folder ({error.strerror or error}); its images were not looked at"
        if where == input_dir:
            raise ImageReadError(f"{input_dir}: {reason}")
        found.unreadable.append((str(where.relative_to(input_dir)), reason))

    for folder, subfolders, names in os.walk(input_dir, followlinks=False, onerror=unreadable):
        folder_path = Path(folder)
        kept = []
        for name in sorted(subfolders):
            path = folder_path / name
            if name.startswith(".") and not include_hidden:
                found.hidden += 1
                continue
            try:
                pruned = path.resolve() == output_real or os.path.lexists(path / MANIFEST_NAME)
            except OSError as error:  # cannot even look inside (mode 000)
                if recursive:
                    found.unreadable.append((str(path.relative_to(input_dir)),
                                             f"cannot read this folder ({error.strerror or error}); "
                                             "its images were not looked at"))
                continue  # without --recursive it would not be read anyway
            if pruned:
                found.pruned.append(str(path.relative_to(input_dir)))
            elif recursive:
                kept.append(name)
        subfolders[:] = kept
        for name in sorted(names):
            path = folder_path / name
            if name.startswith("._") or (name.startswith(".") and not include_hidden):
                found.hidden += 1
                continue
            relpath = str(path.relative_to(input_dir))
            if path.is_symlink() and not inside(path.resolve(), input_real):
                found.inputs.append(Found(relpath, "link leads outside the input folder; refused"))
                continue
            try:
                mode = os.stat(path).st_mode
            except OSError:
                continue  # vanished, or a dangling link
            reason = not_regular_reason(mode)
            known_suffix = path.suffix.lower() in IMAGE_SUFFIXES
            if reason is not None:
                if known_suffix:
                    found.inputs.append(Found(relpath, f"{reason}; refused"))
                continue
            if known_suffix or _is_image_by_content(path):
                found.inputs.append(Found(relpath))
            else:
                found.not_images += 1
        if not recursive:
            break
    return found


def inside(path: Path, folder: Path) -> bool:
    try:
        path.relative_to(folder)
        return True
    except ValueError:
        return False

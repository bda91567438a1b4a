"""Files and folders given as URLs (``s3://bucket/photos``, ``gs://...``, ``az://...``):
object storage through fsspec and its filesystems, the optional ``cloud`` extra.

Whoever compresses an image reads and writes its objects: a batch's workers, on whatever
machine they run, so image bytes never pass through the client or the Dask scheduler. Each
output is written with one PUT (S3, Google Cloud Storage and Azure make an object visible
only once it is complete), so an output is whole or absent and there are no temporary
objects to leave behind. Local folders reached this way (``file://``, or a local side of a
batch whose other side is a URL) are written atomically as everywhere else.

Credentials, region and endpoint come from the standard places of each filesystem (for S3:
the ``AWS_*`` environment variables, ``~/.aws/config`` and ``~/.aws/credentials``,
``AWS_ENDPOINT_URL`` for another endpoint), plus ``--storage-option KEY=VALUE``. Errors
name the object and the reason; secrets never appear in them.
"""

from __future__ import annotations

import json
import os
import posixpath
import re
import time
from dataclasses import dataclass
from pathlib import Path

from .errors import ColorquantError, ImageReadError, ImageWriteError, InvalidParameterError, MissingDependencyError

__all__ = ["is_url", "ObjectFolder", "ObjectInfo", "parse_storage_options", "cloud_error", "split_url"]

_URL = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://(.*)$")
# fsspec's packages per protocol, for the line that says what to install
_PACKAGES = {"s3": "s3fs", "s3a": "s3fs", "gs": "gcsfs", "gcs": "gcsfs", "az": "adlfs", "abfs": "adlfs",
             "abfss": "adlfs"}
_ATTEMPTS = 5          # a throttled request is tried this many times in all
_FIRST_DELAY = 0.2     # seconds, doubled after each throttled try
_THROTTLED = ("SlowDown", "Throttl", "TooManyRequests", "RequestLimitExceeded", "reduce your request rate",
              "503 Service Unavailable", "429")
_SECRET_OPTIONS = ("key", "secret", "token", "password", "account_key", "sas_token", "client_secret",
                   "aws_secret_access_key", "aws_session_token", "connection_string")
_SECRET_VARIABLES = ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AZURE_STORAGE_KEY",
                     "AZURE_STORAGE_SAS_TOKEN", "AZURE_STORAGE_CONNECTION_STRING")


def is_url(text) -> bool:
    """Whether ``text`` names an object store location (``file://`` is a local path)."""
    match = _URL.match(str(text)) if isinstance(text, str) else None
    return bool(match) and match.group(1).lower() != "file"


def local_path(text: str) -> str:
    """``file:///x/y`` as ``/x/y``; anything else as it is."""
    return text[len("file://"):] if isinstance(text, str) and text.lower().startswith("file://") else text


def split_url(url: str) -> tuple[str, str]:
    """``(protocol, path)`` of a URL, the path without trailing slashes."""
    match = _URL.match(url)
    if not match:
        raise InvalidParameterError(f"{url}: not a URL")
    return match.group(1).lower(), match.group(2).rstrip("/")


def parse_storage_options(pairs) -> tuple:
    """``KEY=VALUE`` strings as sorted ``(key, value)`` pairs; a value that reads as JSON
    (true, 3, {"a": 1}) is that, else the string."""
    options = {}
    for pair in pairs or ():
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise InvalidParameterError(f"--storage-option takes KEY=VALUE; got {pair.split('=')[0]!r}")
        try:
            options[key.strip()] = json.loads(value)
        except ValueError:
            options[key.strip()] = value
    return tuple(sorted(options.items()))


@dataclass(frozen=True)
class ObjectInfo:
    """What a listing says about an object: enough to tell whether it changed."""

    size: int
    etag: str | None
    mtime_ns: int | None

    @property
    def identity(self) -> str | None:
        """The manifest's record of the content: the store's ETag (or checksum)."""
        return f"etag:{self.etag}" if self.etag else None


_FILESYSTEMS: dict = {}


@dataclass(frozen=True)
class ObjectFolder:
    """A folder (a key prefix) in an object store or on a local disk, and how to reach it."""

    url: str
    options: tuple = ()

    @classmethod
    def of(cls, location, options=()) -> "ObjectFolder":
        location = str(location)
        if not is_url(location):
            location = "file://" + os.path.abspath(local_path(location))
        return cls(location.rstrip("/"), tuple(options))

    @property
    def protocol(self) -> str:
        return split_url(self.url)[0]

    @property
    def root(self) -> str:
        path = split_url(self.url)[1]
        return "/" + path.lstrip("/") if self.protocol == "file" else path

    @property
    def is_local(self) -> bool:
        return self.protocol == "file"

    def url_of(self, relpath: str) -> str:
        return self.url + "/" + relpath if relpath else self.url

    def _path(self, relpath: str) -> str:
        return posixpath.join(self.root, relpath) if relpath else self.root

    def filesystem(self):
        # option values may be JSON objects (client_kwargs={...}): keyed by their JSON text
        key = (self.protocol, json.dumps(self.options, sort_keys=True, default=str))
        if key not in _FILESYSTEMS:
            _FILESYSTEMS[key] = _open_filesystem(self.protocol, dict(self.options))
        return _FILESYSTEMS[key]

    def list(self, *, recursive: bool = True, writing: bool = False) -> dict[str, ObjectInfo]:
        """Every object under the folder (one level without ``recursive``), by relative path.
        ``writing``: the folder is a destination, so errors are write errors, and a local
        folder that does not exist yet is empty."""
        fs = self.filesystem()
        try:
            fs.invalidate_cache(self.root)  # a listing cached before our own writes is stale
            found = _with_retries(lambda: fs.find(self.root, maxdepth=None if recursive else 1, detail=True))
        except FileNotFoundError as error:
            if (self.is_local and not writing) or "bucket" in str(error).lower():
                raise cloud_error(error, self.url, reading=not writing, options=self.options) from None
            return {}  # an empty prefix: no objects yet
        except Exception as error:  # noqa: BLE001 - the store's errors, each made one line
            raise cloud_error(error, self.url, reading=not writing, options=self.options) from None
        if not found and not self.is_local:
            # an empty listing of a bucket that does not exist is not "no images"
            # (a listing may swallow the store's refusal too: ask for the bucket itself)
            bucket = self.root.split("/")[0]
            try:
                _with_retries(lambda: fs.info(bucket))
            except FileNotFoundError:
                raise cloud_error(FileNotFoundError(f"bucket {bucket} does not exist"), self.url,
                                  reading=not writing, options=self.options) from None
            except Exception as error:  # noqa: BLE001
                raise cloud_error(error, self.url, reading=not writing, options=self.options) from None
        listed = {}
        prefix = self.root.rstrip("/") + "/"  # s3: "bucket/in/"; a local folder: "/abs/in/"
        for name, detail in found.items():
            if detail.get("type", "file") == "file" and name.startswith(prefix) and len(name) > len(prefix):
                listed[name[len(prefix):]] = _info_of(detail)
        return listed

    def info(self, relpath: str, *, writing: bool = False) -> ObjectInfo | None:
        """What the store says of one object (None: there is none). ``writing``: asked of a
        destination, so errors are write errors."""
        fs = self.filesystem()
        try:
            return _info_of(_with_retries(lambda: fs.info(self._path(relpath))))
        except FileNotFoundError:
            return None
        except Exception as error:  # noqa: BLE001
            raise cloud_error(error, self.url_of(relpath), reading=not writing, options=self.options) from None

    def read(self, relpath: str, *, listed: bool = True) -> bytes:
        """The object's bytes; a missing one is an ImageReadError saying so (and, when it was
        ``listed``, that it went after the listing)."""
        data = self.read_if_exists(relpath)
        if data is None:
            raise ImageReadError(f"{self.url_of(relpath)}: no such object"
                                 + (" (deleted since it was listed)" if listed else ""))
        return data

    def read_if_exists(self, relpath: str) -> bytes | None:
        """The object's bytes, or None if there is no such object."""
        if self.is_local:
            from .storage import read_regular_file

            path = self._path(relpath)
            return read_regular_file(path)[0] if os.path.lexists(path) else None
        fs = self.filesystem()
        try:
            return _with_retries(lambda: fs.cat_file(self._path(relpath)))
        except FileNotFoundError:
            return None
        except Exception as error:  # noqa: BLE001 - the store's errors, each made one line
            raise cloud_error(error, self.url_of(relpath), reading=True, options=self.options) from None

    def write(self, relpath: str, data: bytes) -> None:
        """Write ``data`` whole: one PUT, or an atomic rename on a local disk."""
        if self.is_local:
            from .storage import write_atomic

            path = Path(self._path(relpath))
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as error:
                raise ImageWriteError(f"{path}: cannot create its folder ({error.strerror or error})") from None
            write_atomic(data, path, overwrite=True)
            return
        fs = self.filesystem()
        try:
            _with_retries(lambda: fs.pipe_file(self._path(relpath), data))
        except Exception as error:  # noqa: BLE001
            raise cloud_error(error, self.url_of(relpath), reading=False, options=self.options) from None

    def remove(self, relpath: str) -> None:
        fs = self.filesystem()
        try:
            _with_retries(lambda: fs.rm_file(self._path(relpath)))
        except FileNotFoundError:
            pass
        except Exception as error:  # noqa: BLE001
            raise cloud_error(error, self.url_of(relpath), reading=False, options=self.options) from None


def _info_of(detail: dict) -> ObjectInfo:
    etag = detail.get("ETag") or detail.get("etag") or detail.get("md5Hash") or detail.get("content_md5")
    if isinstance(etag, (bytes, bytearray)):
        etag = etag.hex()
    modified = detail.get("LastModified") or detail.get("last_modified") or detail.get("mtime") or detail.get("updated")
    if hasattr(modified, "timestamp"):
        mtime_ns = int(modified.timestamp() * 1e9)
    elif isinstance(modified, (int, float)):
        mtime_ns = int(modified * 1e9)
    else:
        mtime_ns = None
    return ObjectInfo(size=int(detail.get("size") or detail.get("Size") or 0),
                      etag=str(etag).strip('"') if etag else None, mtime_ns=mtime_ns)


def _open_filesystem(protocol: str, options: dict):
    try:
        import fsspec
    except ImportError:
        raise MissingDependencyError(
            f"{protocol}:// needs the cloud extra: pip install 'colorquant[cloud]'") from None
    from fsspec.registry import known_implementations

    if protocol not in known_implementations and protocol not in fsspec.available_protocols():
        raise InvalidParameterError(
            f"{protocol}://: not a storage protocol colorquant knows (s3://, gs://, az://, "
            "and the others of fsspec); is the URL spelt right?")
    try:
        fsspec.get_filesystem_class(protocol)
    except (ImportError, ValueError) as error:
        if protocol in ("s3", "s3a"):
            advice = f"{protocol}:// needs s3fs: pip install 'colorquant[cloud]'"
        elif protocol in _PACKAGES:
            advice = f"{protocol}:// needs {_PACKAGES[protocol]}: pip install 'colorquant[cloud]' {_PACKAGES[protocol]}"
        else:
            advice = f"{protocol}:// needs a package that is not installed"
        raise MissingDependencyError(f"{advice} ({_first_line(error)})") from None
    if protocol in ("s3", "s3a"):
        # fail fast on an endpoint that does not answer; botocore's default waits a minute
        config = dict(options.pop("config_kwargs", {}) or {})
        config.setdefault("connect_timeout", 5)
        config.setdefault("read_timeout", 60)
        config.setdefault("retries", {"max_attempts": 2, "mode": "standard"})
        options["config_kwargs"] = config
    try:
        return fsspec.filesystem(protocol, **options)
    except Exception as error:  # noqa: BLE001 - a bad option: say so, without its value
        raise InvalidParameterError(f"{protocol}:// storage options rejected: {_redact(_first_line(error), tuple(options.items()))}") from None


def _throttled(error: BaseException) -> bool:
    text = f"{type(error).__name__} {error}"
    return any(marker in text for marker in _THROTTLED)


def _with_retries(action):
    """``action()``, tried again with exponential backoff while the store says it is
    throttling (S3's SlowDown, HTTP 429/503); other errors at once."""
    delay = _FIRST_DELAY
    for attempt in range(_ATTEMPTS):
        try:
            return action()
        except Exception as error:  # noqa: BLE001 - judged below, re-raised unless throttling
            if not _throttled(error) or attempt == _ATTEMPTS - 1:
                raise
        time.sleep(delay)
        delay *= 2
    raise AssertionError("unreachable")


def cloud_error(error: BaseException, url: str, *, reading: bool, options=()) -> ColorquantError:
    """One line for a store's error: what failed and why, in words, with no secret in it."""
    kind = ImageReadError if reading else ImageWriteError
    if isinstance(error, ColorquantError):
        return error
    name = type(error).__name__
    text = _redact(_first_line(error), options)
    if name in ("NoCredentialsError", "PartialCredentialsError", "CredentialRetrievalError") or \
            "Unable to locate credentials" in text:
        reason = ("no credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE, "
                  "or a credentials file)")
    elif isinstance(error, PermissionError) or "AccessDenied" in text or "Forbidden" in text \
            or "InvalidAccessKeyId" in text or "SignatureDoesNotMatch" in text:
        reason = f"access denied ({text})"
    elif isinstance(error, FileNotFoundError):
        reason = "no such bucket" if "bucket" in text.lower() else "no such object or folder"
    elif unreachable(error):
        return kind(f"{_redact(url, options)}: {UNREACHABLE} ({text})", remedy="retry")
    elif _throttled(error):
        return kind(f"{_redact(url, options)}: the store kept throttling requests, gave up after "
                    f"{_ATTEMPTS} tries ({text})", remedy="retry")
    else:
        reason = f"{'cannot read' if reading else 'cannot write'} ({name}: {text})"
    return kind(f"{_redact(url, options)}: {reason}")


# What a failure says when the store did not answer (batch stops the run on it).
UNREACHABLE = "cannot reach the storage endpoint"


def unreachable(error: BaseException) -> bool:
    """Whether ``error`` says the store's endpoint did not answer (connection refused, reset,
    timed out): a condition of the run, not of one object."""
    name = type(error).__name__
    return name in ("EndpointConnectionError", "ConnectTimeoutError", "ConnectionClosedError",
                    "ClientConnectorError", "ServerDisconnectedError") or isinstance(error, ConnectionError)


def _first_line(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0][:300]


def _redact(text: str, options=()) -> str:
    """``text`` with every secret we know of replaced: option values named like secrets,
    the secret environment variables, and passwords inside URLs."""
    secrets = [str(value) for key, value in options if key.lower() in _SECRET_OPTIONS and value]
    secrets += [os.environ[name] for name in _SECRET_VARIABLES if os.environ.get(name)]
    for secret in sorted(set(secrets), key=len, reverse=True):
        if len(secret) >= 4:
            text = text.replace(secret, "***")
    return re.sub(r"(://[^/:@\s]+):[^@/\s]+@", r"\1:***@", text)

"""The ``colorquant`` command: parses arguments, calls the library, prints, maps errors to
exit statuses. It is the only part of colorquant that prints or exits.

Laid out the HTTPie way: :mod:`.parser` (the grammar and the Settings it builds),
:mod:`.argtypes` (checked argument types), :mod:`.commands` (one function per command),
:mod:`.report` (what is printed) and :mod:`.status` (exit statuses and the one function
that maps errors to them).
"""

from __future__ import annotations

import os
import sys

from .argtypes import UsageError
from .status import ExitStatus, exit_status_for

__all__ = ["main", "ExitStatus", "exit_status_for"]


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the main thread is, so that a run stops as for Ctrl-C: queued
    work dropped, workers stopped, temporary files removed, the manifest left true."""


def _on_sigterm(number, frame):
    raise Terminated()


def main(argv=None) -> int:
    """Run the command line; returns the exit status."""
    import signal

    try:
        previous = signal.signal(signal.SIGTERM, _on_sigterm)
    except ValueError:  # not the main thread: signals are its business
        return _run(argv)
    try:
        return _run(argv)
    finally:
        signal.signal(signal.SIGTERM, previous)  # main() may be called from a longer-lived program


def _run(argv) -> int:
    import signal

    _escape_undecodable_names()

    from .commands import COMMANDS
    from .parser import build_parser
    from .report import error

    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help(sys.stderr)
            return ExitStatus.USAGE
        return int(COMMANDS[args.command](args))
    except UsageError as problem:
        error(str(problem))
        return ExitStatus.USAGE
    except SystemExit as exit_request:  # --help and --version
        return int(exit_request.code or 0)
    except KeyboardInterrupt as stop:  # Ctrl-C, or SIGTERM (Terminated)
        if not getattr(stop, "reported", False):
            error("interrupted; no partial file left")
        return 128 + (signal.SIGTERM if isinstance(stop, Terminated) else signal.SIGINT)
    except BrokenPipeError:
        # The reader went away (| head): not a bug. Stop quietly as other Unix tools do, with
        # the status a shell shows for a process ended by SIGPIPE; stdout goes to /dev/null
        # so that Python's final flush does not complain about the pipe again.
        _silence_stdout()
        return 128 + signal.SIGPIPE
    except Exception as problem:  # noqa: BLE001 - the one place every error becomes a status
        status = exit_status_for(problem)
        if status is ExitStatus.ERROR and os.environ.get("COLORQUANT_DEBUG"):
            raise
        message = problem.describe("cli") if status is not ExitStatus.ERROR else (
            f"internal error: {type(problem).__name__}: {problem} "
            "(set COLORQUANT_DEBUG=1 for a traceback, and please report it)"
        )
        error(message)
        return status


def _escape_undecodable_names() -> None:
    """A file name's undecodable bytes (kept by Python as surrogates) are written escaped
    (\\udcff), whatever the locale, rather than failing the run that names them."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.reconfigure(errors="backslashreplace")
        except (AttributeError, ValueError, OSError):
            pass  # closed (>&-), or not a text stream of ours


def _silence_stdout() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass

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


def main(argv=None) -> int:
    """Run the command line; returns the exit status."""
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
    except KeyboardInterrupt:
        error("interrupted")
        return 130
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

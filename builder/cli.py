"""Command line: argv -> subcommand. The only place errors become exit codes."""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import threading
from collections.abc import Iterator, Sequence

from rich.console import Console
from rich.markup import escape

from builder import __version__
from builder.commands import (
    alpine_cmd,
    build_cmd,
    detect_cmd,
    install_cmd,
    matrix_cmd,
    release_cmd,
    verify_cmd,
)
from builder.errors import MuslPbsError
from builder.lowlevel.outdir import WRITE_ERRNOS, unwritable

_COMMANDS = (build_cmd, verify_cmd, matrix_cmd, detect_cmd, install_cmd, alpine_cmd, release_cmd)


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="musl-pbs",
        description="Relocatable, dynamically linked musl CPython from Alpine's python3.",
    )
    parser.add_argument("--version", action="version", version=f"musl-pbs {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in _COMMANDS:
        module.add_parser(sub)
    return parser


@contextlib.contextmanager
def _error_boundary(err: Console) -> Iterator[list[int]]:
    """Map our errors (and Ctrl-C) to a message, a hint and an exit code."""
    code = [0]
    try:
        yield code
    except MuslPbsError as e:
        err.print(f"[bold red]error:[/] {escape(e.message)}", highlight=False)
        if e.hint:
            err.print(f"[yellow]hint:[/] {escape(e.hint)}", highlight=False)
        code[0] = e.exit_code
    except KeyboardInterrupt:
        received = _signals.pop() if _signals else signal.SIGINT
        err.print(f"[bold red]interrupted[/] ({signal.Signals(received).name}): "
                  "stopped and cleaned up; nothing half-written is kept", highlight=False)
        code[0] = 128 + received
    except OSError as e:
        # Out of space, a read-only or forbidden output met half-way: name the file.
        if e.errno not in WRITE_ERRNOS:
            raise
        failure = unwritable(e, "an output")
        err.print(f"[bold red]error:[/] {escape(failure.message)}", highlight=False)
        err.print(f"[yellow]hint:[/] {escape(failure.hint)}", highlight=False)
        code[0] = failure.exit_code


_signals: list[int] = []


def _terminate(signum: int, _frame: object) -> None:
    """SIGTERM (and SIGHUP) unwind like Ctrl-C: every ``finally`` runs, containers are
    removed and temporary files deleted (Python's default would just exit)."""
    _signals.append(signum)
    raise KeyboardInterrupt


@contextlib.contextmanager
def _terminate_like_interrupt() -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.signal(s, _terminate) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def main(argv: Sequence[str] | None = None) -> int:
    parser = make_parser()
    args = parser.parse_args(argv)
    err = Console(stderr=True, soft_wrap=True)
    _signals.clear()
    with _terminate_like_interrupt(), _error_boundary(err) as code:
        code[0] = int(args.run(args))
    return code[0]


def entry() -> None:
    sys.exit(main())

"""The ``cnnlab`` command: a thin map of subcommands over the library API.

Each module of this package registers a group of subcommands (``register(subparsers)``) and
does its rendering; the library below never prints.  A user mistake (any
:class:`~cnnlab.errors.CnnlabError`) becomes one ``error: ...`` line on stderr and exit status 2;
an error in the user's own code (:class:`~cnnlab.errors.UserCodeError`) says where, and
``--traceback`` (anywhere on the line) shows all of it; Ctrl-C ends with one line and status
130; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import sys
import traceback

from cnnlab import __version__
from cnnlab.errors import CnnlabError, UserCodeError

# Modules of this package that add subcommands, in the order `cnnlab --help` lists them.  Each
# must exist and define register(subparsers): a missing one is an ImportError, never skipped.
_COMMAND_MODULES = ("models", "analysis", "data", "train", "runs", "viz")

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report it


class _Parser(argparse.ArgumentParser):
    """argparse, with its usage errors as one ``error:`` line (and the --help to read)."""

    def error(self, message: str):  # type: ignore[override]
        print(f"error: {self.prog}: {message} (see {self.prog} --help)", file=sys.stderr)
        raise SystemExit(EXIT_USAGE)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="cnnlab",
        description="Understand, build, train and look inside convolutional neural networks.",
    )
    parser.add_argument("--version", action="version", version=f"cnnlab {__version__}")
    parser.add_argument(
        "--traceback",
        action="store_true",
        help="on an error in your own code (a factory, a forward), show the whole traceback "
        "(may stand anywhere on the line)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _COMMAND_MODULES:
        importlib.import_module(f"cnnlab.cli.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command ``argv`` (default: this process's arguments); its exit status.

    Run as the program (``argv`` None), it then freezes the objects it made
    (:func:`gc.freeze`): the process ends next, and the interpreter's exit would otherwise
    walk them all again for reference cycles (torch's thousand modules: 0.4-0.5 s on a 2-core
    CPU); ``atexit`` handlers and every file's close still run.  A caller that goes on (a
    test, a script) passes ``argv`` and keeps its collector as it was."""
    code = _run(sys.argv[1:] if argv is None else argv)
    if argv is None:
        gc.freeze()
    return code


def _run(argv: list[str]) -> int:
    argv = list(argv)
    show_traceback = "--traceback" in argv
    argv = [a for a in argv if a != "--traceback"]
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        if not getattr(args, "func", None):
            parser.print_help()
            return EXIT_USAGE
        return int(args.func(args) or 0)
    except CnnlabError as exc:
        # the user's own code failed (a factory, a forward): --traceback shows where
        cause = exc.cause if isinstance(exc, UserCodeError) else exc.__cause__
        if show_traceback and cause is not None:
            print("".join(traceback.format_exception(cause)), file=sys.stderr, end="")
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # `cnnlab models | head`
        return 0

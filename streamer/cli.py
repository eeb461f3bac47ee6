"""The `streamer` console command: dispatch to a command's module, and the error policy.

Each command is a module (streamer/commands/__init__.py's table) with `add_arguments` and
`run`; this file only finds it, parses its options and turns what goes wrong into one line.
Nothing heavy is imported here: `streamer --help` must answer at once.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Callable, Sequence

import streamer
from streamer.commands import COMMANDS

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

# Exceptions whose message is meant for the user: printed as one line, no traceback. Looked up
# in sys.modules at error time, so that checking them never imports anything.
_USER_ERRORS = (
    ("streamer.model.params", "ModelError"),
    ("streamer.backends.base", "BackendError"),
    ("streamer.audio", "AudioError"),
    ("streamer.replay", "ReplayError"),
    ("streamer.metrics", "MetricError"),
    ("streamer.live.processor", "LiveError"),
    ("streamer.target", "TargetError"),
    ("streamer.pipeline", "PipelineError"),
    ("streamer.options", "OptionError"),
    ("streamer.quant.compiled", "KernelError"),
)

_FORMATTER = argparse.RawDescriptionHelpFormatter

_TOP_DESCRIPTION = """\
Real-time speech enhancement with TinyDenoiser networks, on the host or on an MCU.

Every command streams audio the way the device does it: 16 kHz mono, one 100-sample hop
(6.25 ms, the real-time deadline) at a time, 400-sample Hann window, 512-point FFT; the
network turns each frame's magnitudes into a mask.
"""

_TOP_EPILOG = """\
quick start:
  streamer replay                       enhance the bundled demo and score it
  streamer replay noisy.wav --clean clean.wav --report report.json
  streamer eval --noisy data/noisy --clean data/clean --csv scores.csv
  streamer info model.tdn
  streamer quantize model.onnx --quant mixed --calib calib/ -o model_mixed.tdn

Run 'streamer COMMAND --help' for a command's options. Errors are one line,
'streamer: error: ...', with exit status 2; Ctrl-C exits with 130
(set STREAMER_DEBUG=1 to see the traceback behind an error).
"""


class CliError(Exception):
    """A command-line mistake found after parsing; printed as one line."""


class _Parser(argparse.ArgumentParser):
    """argparse with the same one-line error format as every other streamer error."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_USAGE, f"streamer: error: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser: --version, --help and the list of commands (from the table)."""
    parser = _Parser(prog="streamer", description=_TOP_DESCRIPTION, epilog=_TOP_EPILOG,
                     formatter_class=_FORMATTER)
    parser.add_argument("--version", action="version", version=f"streamer {streamer.__version__}")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")
    for name, command in COMMANDS.items():
        commands.add_parser(name, add_help=False, help=command.help)
    return parser


def command_parser(name: str):
    """(the module of command `name`, its parser with every option)."""
    command = COMMANDS[name]
    try:
        module = importlib.import_module(command.module)
    except ModuleNotFoundError as exc:
        missing = exc.name or "?"
        if missing == command.module or command.module.startswith(missing + "."):
            raise CliError(f"'streamer {name}' is not available in this install ({command.module} "
                           f"is missing); it needs: {command.install}") from exc
        if missing.split(".")[0] == "streamer":
            raise  # a broken install or a bug, not a missing extra: keep the traceback
        raise CliError(f"'streamer {name}' needs the Python package {missing.split('.')[0]!r}: "
                       f"{command.install}") from exc
    parser = _Parser(prog=f"streamer {name}", formatter_class=_FORMATTER,
                     description=getattr(module, "DESCRIPTION", command.help),
                     epilog=getattr(module, "EPILOG", None))
    module.add_arguments(parser)
    return module, parser


def _run_command(name: str, argv: list[str]) -> int:
    module, parser = command_parser(name)
    args = parser.parse_args(argv)
    return int(module.run(args) or 0)


def _is_user_error(exc: BaseException) -> bool:
    if isinstance(exc, CliError | OSError):
        return True
    if isinstance(exc, ModuleNotFoundError) and not (exc.name or "streamer").startswith("streamer"):
        return True  # a third-party package missing from this install: say which
    for module_name, class_name in _USER_ERRORS:
        module = sys.modules.get(module_name)
        error_class = getattr(module, class_name, None) if module is not None else None
        if error_class is not None and isinstance(exc, error_class):
            return True
    return False


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        message = f"{exc.strerror}: {exc.filename}" if exc.filename else exc.strerror
    else:
        message = str(exc) or type(exc).__name__
    return " ".join(message.split())


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _guarded(command: Callable[[], int]) -> int:
    try:
        return command()
    except KeyboardInterrupt:
        _say("streamer: interrupted")
        return EXIT_INTERRUPTED
    except Exception as exc:
        if not _is_user_error(exc) or os.environ.get("STREAMER_DEBUG"):
            raise
        _say(f"streamer: error: {_one_line(exc)}")
        return EXIT_USAGE


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `streamer` console command; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] and argv[0] in COMMANDS:
        return _guarded(lambda: _run_command(argv[0], argv[1:]))
    parser = build_parser()
    parser.parse_args(argv)  # --help, --version, or a one-line error for an unknown command
    parser.print_help()
    return EXIT_USAGE


if __name__ == "__main__":
    raise SystemExit(main())

"""One way to write a file: whole or not at all.

The content goes to a hidden temporary file beside the target (`.NAME.partial`, same folder,
so the final rename stays on one file system), which then replaces the target in one step. On
every error path the temporary file is removed and the error names the file the user asked
for, not the temporary one; a crash or Ctrl-C never leaves a half-written target.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path


def partial_path(path: Path) -> Path:
    """The temporary file `write_atomically` writes `path` through."""
    return path.with_name(f".{path.name}.partial")


def write_atomically(path: str | Path, content: bytes | str | Callable[[Path], None]) -> Path:
    """Write `content` (bytes, UTF-8 text, or a function that writes the file it is given) to
    `path` atomically. Raises OSError naming `path`."""
    path = Path(path)
    tmp = partial_path(path)
    try:
        if callable(content):
            content(tmp)
        elif isinstance(content, str):
            tmp.write_text(content, encoding="utf-8", newline="")
        else:
            tmp.write_bytes(content)
        os.replace(tmp, path)
    except OSError as exc:
        raise OSError(exc.errno, exc.strerror, str(path)) from exc
    finally:
        if tmp.exists():
            tmp.unlink()
    return path

"""Atomic file writes: model.save, model.to_onnx, model.save_weights.

The bytes go to a temporary file in the target's directory, are flushed to disk (fsync),
then renamed over the target (os.replace): the path always holds either the old file or the
complete new one, even if the process dies mid-write. A symbolic link is written through (it
stays a link), an existing file keeps its permission bits, and a path that is a directory,
device or FIFO is refused. Temporary files that a killed writer left behind are removed by
the next write to that directory, but only those whose writing process is gone.
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
from collections.abc import Callable
from typing import BinaryIO

_TMP = re.compile(r"^\.backprop-save\.(\d+)\.[0-9a-f]{8}\.tmp$")


def write_file(
    path: str | os.PathLike[str], write: Callable[[BinaryIO], object], where: str
) -> None:
    """Write `path` atomically with write(f) on the temporary file f; `where` names the
    caller in error messages."""
    name = os.fspath(path)
    target = os.path.realpath(name) if os.path.islink(name) else name
    mode = None
    with contextlib.suppress(FileNotFoundError):
        mode = os.stat(target).st_mode
    if mode is not None and not stat.S_ISREG(mode):
        kind = "a directory" if stat.S_ISDIR(mode) else "not a regular file"
        raise IsADirectoryError(f"{where}: {name!r} is {kind}; give the path of a file")
    directory = os.path.dirname(os.path.abspath(target))
    _remove_stale_temporaries(directory)
    tmp = os.path.join(directory, f".backprop-save.{os.getpid()}.{os.urandom(4).hex()}.tmp")
    # os.open with mode 0o666 lets the umask set the permissions, as for an ordinary file
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            if mode is not None:
                with contextlib.suppress(NotImplementedError):  # no fchmod on Windows
                    os.chmod(f.fileno(), stat.S_IMODE(mode))
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    # make the rename itself durable; not possible on every platform (e.g. Windows)
    with contextlib.suppress(OSError, AttributeError):
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def write_bytes(path: str | os.PathLike[str], data: bytes, where: str) -> None:
    """Write `data` to `path` atomically (see write_file)."""
    write_file(path, lambda f: f.write(data), where)


def _remove_stale_temporaries(directory: str) -> None:
    """Delete temporary files that writes killed mid-way left in `directory`: only those
    whose writing process no longer exists (a live process's file is never touched)."""
    with contextlib.suppress(OSError):
        for entry in os.scandir(directory):
            match = _TMP.match(entry.name)
            if match is None or int(match.group(1)) == os.getpid():
                continue
            if not _process_exists(int(match.group(1))):
                with contextlib.suppress(OSError):
                    os.unlink(entry.path)


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, OSError, ValueError):
        return True  # exists but not ours, or cannot tell: leave its file alone
    return True

"""Atomic file writes for the exporters (model.to_onnx, model.save_weights).

The bytes go to a temporary file in the target's directory, are flushed to disk (fsync),
then renamed over the target (os.replace): the path always holds either the old file or the
complete new one, even if the process dies mid-write. As for model.save: a symbolic link is
written through (it stays a link), an existing file keeps its permission bits, and a path
that is a directory, device or FIFO is refused. Temporary files are named as model.save
names its own, so a later save cleans up those a killed writer left behind.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat


def write_bytes(path: str | os.PathLike[str], data: bytes, where: str) -> None:
    """Write `data` to `path` atomically; `where` names the caller in error messages."""
    name = os.fspath(path)
    target = os.path.realpath(name) if os.path.islink(name) else name
    mode = None
    try:
        mode = os.stat(target).st_mode
    except FileNotFoundError:
        pass
    if mode is not None and not stat.S_ISREG(mode):
        kind = "a directory" if stat.S_ISDIR(mode) else "not a regular file"
        raise IsADirectoryError(f"{where}: {name!r} is {kind}; give the path of a file")
    directory = os.path.dirname(os.path.abspath(target))
    tmp = os.path.join(directory, f".backprop-save.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    # os.open with mode 0o666 lets the umask set the permissions, as for an ordinary file
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
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

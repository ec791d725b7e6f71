"""The model file: one .npz archive per model, no pickle (model.save, backprop.load).

The file is an ordinary NumPy .npz (zip) archive of plain arrays:

  __backprop__      uint8, the bytes b"backprop-model": marks the file as ours
  format_version    int64 scalar (FORMAT_VERSION)
  config            uint8, UTF-8 JSON: the model's get_config() (dtype, seed, layers, loss,
                    metrics, optimizer), the optimizer's steps and buffer names, and the
                    state's training mode, shuffling RNG state and dropout stream
  theta             the flat parameters (the model's dtype)
  opt_<name>        the optimizer's buffers over theta (velocity; Adam's m and v)

This module knows the layout, not the model: write_model takes a model's config and state
(Sequential.get_config / get_state) and read_model gives them back; Sequential.from_config
and set_state rebuild and check the model. Arrays are read with allow_pickle=False and
objects are built only from the registries of layers, losses and optimizers, so a file can
never make load() run code.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
from typing import Any

import numpy as np
from numpy.typing import NDArray

MAGIC = b"backprop-model"
FORMAT_VERSION = 1


class ModelFileError(ValueError):
    """A file that load() cannot read as a backprop model: not ours, truncated, corrupted,
    or of an unknown format version. The message names the file and the problem."""


# -- write ---------------------------------------------------------------------------------------


def _arrays(config: dict[str, Any], state: dict[str, Any]) -> dict[str, NDArray[Any]]:
    """The archive's members for a model's config and state."""
    described = dict(config)
    optimizer = state["optimizer"]
    if config["optimizer"] is not None:
        described["optimizer"] = {
            **config["optimizer"],
            "steps": optimizer["steps"],
            "state": sorted(optimizer["buffers"]),
        }
    described |= {
        "training": state["training"],
        "rng": state["rng"],
        "dropout_rng": state["dropout_rng"],
    }
    arrays: dict[str, NDArray[Any]] = {
        "__backprop__": np.frombuffer(MAGIC, dtype=np.uint8),
        "format_version": np.array(FORMAT_VERSION, dtype=np.int64),
        "theta": state["weights"],
        "config": np.frombuffer(json.dumps(described).encode(), dtype=np.uint8),
    }
    if optimizer is not None:
        arrays.update({f"opt_{key}": value for key, value in optimizer["buffers"].items()})
    return arrays


def write_model(
    path: str | os.PathLike[str], config: dict[str, Any], state: dict[str, Any]
) -> None:
    """Write a model's config and state to `path` (exactly that name; ".npz" is the
    natural suffix).

    Atomic: the archive goes to a temporary file in the same directory, is flushed to disk
    (fsync), then renamed over `path` (os.replace), so `path` always holds either the old
    file or the complete new one, even if the process dies mid-write.
    """
    path = os.fspath(path)
    arrays = _arrays(config, state)
    directory = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(
        directory, f".{os.path.basename(path)}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    )
    # os.open with mode 0o666 lets the umask set the permissions, as for an ordinary file
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            # (numpy's stub types **kwds as if it could carry allow_pickle: bool)
            np.savez(f, **arrays)  # type: ignore[arg-type]
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
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


# -- read ----------------------------------------------------------------------------------------


def read_model(path: str | os.PathLike[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(config, state) of the model file at `path`, as Sequential.get_config / get_state
    give them (their values are checked by Sequential.from_config / set_state).

    Raises ModelFileError for a file that is not a backprop model, truncated or corrupted,
    or of an unknown format version (FileNotFoundError etc. for a file that cannot be opened).
    """
    name = os.fspath(path)
    with open(name, "rb") as f:
        head = f.read(4)
    if not head:
        raise ModelFileError(f"{name}: the file is empty, not a backprop model")
    if head != b"PK\x03\x04":
        raise ModelFileError(
            f"{name}: not a backprop model file (not an .npz archive: it starts with {head!r})"
        )
    try:
        with np.load(name, allow_pickle=False) as npz:
            arrays = _read_arrays(npz, name)
    except ModelFileError:
        raise
    except Exception as e:  # zipfile, zlib, struct, numpy header errors: the bytes are bad
        raise ModelFileError(
            f"{name}: truncated or corrupted model file ({type(e).__name__}: {e})"
        ) from e
    return _split(arrays, name)


def _read_arrays(npz: Any, name: str) -> dict[str, NDArray[Any]]:
    """Marker and version first (nothing else is read from a file that is not ours), then
    the arrays the format defines."""
    files = list(npz.files)
    if "__backprop__" not in files:
        raise ModelFileError(
            f"{name}: not a backprop model file: an .npz archive without the '__backprop__' "
            f"marker (it holds {files[:10]})"
        )

    def read(key: str) -> NDArray[Any]:
        try:
            return npz[key]  # type: ignore[no-any-return]
        except ValueError as e:  # e.g. an object array, refused because it needs pickle
            raise ModelFileError(f"{name}: array {key!r} cannot be read safely: {e}") from e

    magic = read("__backprop__")
    if magic.dtype != np.uint8 or magic.tobytes() != MAGIC:
        raise ModelFileError(f"{name}: not a backprop model file (wrong '__backprop__' marker)")
    version = read("format_version") if "format_version" in files else None
    if version is None or version.shape != () or version.dtype.kind not in "iu":
        raise ModelFileError(f"{name}: corrupted model file (no valid 'format_version')")
    if int(version) != FORMAT_VERSION:
        hint = " (saved by a newer backprop?)" if int(version) > FORMAT_VERSION else ""
        raise ModelFileError(
            f"{name}: model file format version {int(version)} is not supported; this "
            f"backprop reads version {FORMAT_VERSION}{hint}"
        )
    wanted = [k for k in files if k in ("config", "theta") or k.startswith("opt_")]
    arrays = {key: read(key) for key in wanted}
    if "config" not in arrays:
        raise ModelFileError(f"{name}: corrupted model file (no 'config')")
    return arrays


def _split(arrays: dict[str, NDArray[Any]], name: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The config and state stored in the archive's arrays."""
    try:
        described = json.loads(arrays["config"].tobytes().decode("utf-8"))
        if not isinstance(described, dict):
            raise ValueError(f"config must be a JSON object, got {type(described).__name__}")
        config = {k: described[k] for k in ("dtype", "seed", "layers", "loss", "metrics")}
        state: dict[str, Any] = {
            "weights": _member(arrays, "theta"),
            "optimizer": None,
            "training": described["training"],
            "rng": described["rng"],
            "dropout_rng": described["dropout_rng"],
        }
        opt = described["optimizer"]
        config["optimizer"] = opt
        if opt is not None:
            if not isinstance(opt, dict):
                raise ValueError(f"'optimizer' must be an object, got {opt!r}")
            opt = dict(opt)
            steps, names = opt.pop("steps"), opt.pop("state")
            if not isinstance(names, list) or not all(isinstance(k, str) for k in names):
                raise ValueError(f"optimizer 'state' must be a list of names, got {names!r}")
            buffers = {k: _member(arrays, f"opt_{k}") for k in names}
            state["optimizer"] = {"steps": steps, "buffers": buffers}
            config["optimizer"] = opt
    except (KeyError, TypeError, ValueError, UnicodeDecodeError) as e:
        detail = f"missing entry {e}" if isinstance(e, KeyError) else str(e)
        raise ModelFileError(f"{name}: invalid model description: {detail}") from e
    return config, state


def _member(arrays: dict[str, NDArray[Any]], key: str) -> NDArray[Any]:
    if key not in arrays:
        raise ValueError(f"the file has no array {key!r}")
    return arrays[key]

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
and set_state rebuild and check the model.

Reading is bounded by what the description implies: the marker, version and config are
read first (each under a size cap), the caller says which arrays that config needs
(dtype and shape), and each array's declared size in the zip directory and its .npy header
are checked against that before a byte of it is inflated. A member the format does not
define is refused unread. Arrays are read without pickle, and objects are built only from
the registries of layers, losses and optimizers, so a file can never make load() run code.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import stat
from collections.abc import Callable
from typing import IO, TYPE_CHECKING, Any

import numpy as np
from numpy.lib import format as npy
from numpy.typing import NDArray

from ._atomic import write_file

if TYPE_CHECKING:
    import zipfile

MAGIC = b"backprop-model"
FORMAT_VERSION = 1
#: largest JSON description read (a model of thousands of layers takes well under 1 MiB)
MAX_CONFIG_BYTES = 16 << 20
#: largest .npy header read (numpy writes ~128 bytes)
MAX_HEADER_BYTES = 1 << 12

#: member name -> (dtype, shape) of the arrays a config needs besides marker/version/config
Expected = dict[str, tuple[np.dtype[Any], tuple[int, ...]]]


class ModelFileError(ValueError):
    """A file that load() cannot read as a backprop model: not ours, truncated, corrupted,
    of an unknown format version, or describing an invalid model. The message names the
    file and the problem."""


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
        "config": np.frombuffer(json.dumps(described).encode(), dtype=np.uint8),
        "theta": state["weights"],
    }
    if optimizer is not None:
        arrays.update({f"opt_{key}": value for key, value in optimizer["buffers"].items()})
    return arrays


def write_model(
    path: str | os.PathLike[str], config: dict[str, Any], state: dict[str, Any]
) -> None:
    """Write a model's config and state to `path` (exactly that name; ".npz" is the
    natural suffix).

    Atomic: the archive goes to a temporary file in the target's directory, is flushed to
    disk (fsync), then renamed over the target (os.replace), so it always holds either the
    old file or the complete new one, even if the process dies mid-write. A symbolic link is
    written through (it stays a link); an existing file keeps its permission bits; a path
    that is a directory, device or FIFO is refused.
    """
    arrays = _arrays(config, state)
    # (numpy's stub types **kwds as if it could carry allow_pickle: bool)
    write_file(path, lambda f: np.savez(f, **arrays), "save")  # type: ignore[arg-type]


# -- read ----------------------------------------------------------------------------------------


def read_model(
    path: str | os.PathLike[str], expected: Callable[[dict[str, Any]], Expected]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(config, state) of the model file at `path`, as Sequential.get_config / get_state
    give them. expected(config) names the arrays that config needs, with dtype and shape
    (it raises ValueError/TypeError for a config it cannot size); their values are checked
    by Sequential.from_config / set_state.

    Raises ModelFileError for a file that is not a backprop model, truncated or corrupted,
    of an unknown format version, or whose arrays do not fit its description; OSError for a
    file that cannot be opened (a FIFO or device is refused, not waited on).
    """
    name = os.fspath(path)
    with _open_regular(name) as f:
        head = f.read(4)
        if not head:
            raise ModelFileError(f"{name}: the file is empty, not a backprop model")
        if head != b"PK\x03\x04":
            raise ModelFileError(
                f"{name}: not a backprop model file (not an .npz archive: it starts with {head!r})"
            )
        f.seek(0)
        # imported here, when a file is read: zipfile brings pathlib, shutil and urllib,
        # ~9 ms of `import backprop` (np.savez imports it for itself when saving)
        import zipfile

        try:
            with zipfile.ZipFile(f) as zf:
                return _read(zf, name, expected)
        except ModelFileError:
            raise
        except (ValueError, TypeError, KeyError, OverflowError, RecursionError) as e:
            detail = f"missing entry {e}" if isinstance(e, KeyError) else str(e)
            raise ModelFileError(f"{name}: invalid model description: {detail}") from e
        except Exception as e:  # zipfile, zlib, struct errors: the bytes are bad
            raise ModelFileError(
                f"{name}: truncated or corrupted model file ({type(e).__name__}: {e})"
            ) from e


@contextlib.contextmanager
def _open_regular(name: str) -> Any:
    """The file at `name` opened for reading, refused unless it is a regular file: opening
    a FIFO to read would otherwise wait for a writer."""
    fd = os.open(name, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ModelFileError(f"{name}: not a regular file (a directory, device or FIFO)")
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        f = os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
    with f:
        yield f


def _read(
    zf: zipfile.ZipFile, name: str, expected: Callable[[dict[str, Any]], Expected]
) -> tuple[dict[str, Any], dict[str, Any]]:
    members = {info.filename: info for info in zf.infolist()}
    if len(members) != len(zf.infolist()):
        raise ModelFileError(f"{name}: corrupted model file (a member is stored twice)")
    if "__backprop__.npy" not in members:
        raise ModelFileError(
            f"{name}: not a backprop model file: an .npz archive without the '__backprop__' "
            f"marker (it holds {sorted(members)[:10]})"
        )
    magic = _array(zf, members, "__backprop__", np.dtype(np.uint8), None, name, 64)
    if magic.tobytes() != MAGIC:
        raise ModelFileError(f"{name}: not a backprop model file (wrong '__backprop__' marker)")
    if "format_version.npy" not in members:
        raise ModelFileError(f"{name}: corrupted model file (no 'format_version')")
    version = int(_array(zf, members, "format_version", np.dtype(np.int64), (), name))
    if version != FORMAT_VERSION:
        hint = " (saved by a newer backprop?)" if version > FORMAT_VERSION else ""
        raise ModelFileError(
            f"{name}: model file format version {version} is not supported; this "
            f"backprop reads version {FORMAT_VERSION}{hint}"
        )
    if "config.npy" not in members:
        raise ModelFileError(f"{name}: corrupted model file (no 'config')")
    raw = _array(zf, members, "config", np.dtype(np.uint8), None, name, MAX_CONFIG_BYTES)
    described = json.loads(raw.tobytes().decode("utf-8"))
    config, extra = _split(described)
    arrays = expected(config)
    if extra["buffers"] is not None and sorted(extra["buffers"]) != sorted(
        k.removeprefix("opt_") for k in arrays if k.startswith("opt_")
    ):
        raise ValueError(
            f"optimizer state {extra['buffers']} does not match the buffers its optimizer "
            f"keeps {sorted(k.removeprefix('opt_') for k in arrays if k.startswith('opt_'))}"
        )
    known = {"__backprop__.npy", "format_version.npy", "config.npy"} | {f"{k}.npy" for k in arrays}
    unknown = sorted(set(members) - known)
    if unknown:
        raise ModelFileError(
            f"{name}: the archive holds members this model's description does not define: "
            f"{unknown[:10]}"
        )
    read = {k: _array(zf, members, k, dtype, shape, name) for k, (dtype, shape) in arrays.items()}
    state: dict[str, Any] = {
        "weights": read["theta"],
        "optimizer": None,
        "training": extra["training"],
        "rng": extra["rng"],
        "dropout_rng": extra["dropout_rng"],
    }
    if extra["buffers"] is not None:
        buffers = {k.removeprefix("opt_"): v for k, v in read.items() if k.startswith("opt_")}
        state["optimizer"] = {"steps": extra["steps"], "buffers": buffers}
    return config, state


def _split(described: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """The stored JSON as (the model's config, the state entries it carries)."""
    if not isinstance(described, dict):
        raise ValueError(f"config must be a JSON object, got {type(described).__name__}")
    config = {k: described[k] for k in ("dtype", "seed", "layers", "loss", "metrics")}
    config["l2"] = described.get("l2", 0.0)  # format 1 files before the penalty: none
    extra = {k: described[k] for k in ("training", "rng", "dropout_rng")}
    extra |= {"steps": None, "buffers": None}
    opt = described["optimizer"]
    if opt is not None:
        if not isinstance(opt, dict):
            raise ValueError(f"'optimizer' must be an object, got {opt!r:.100}")
        opt = dict(opt)
        extra["steps"], names = opt.pop("steps"), opt.pop("state")
        if not isinstance(names, list) or not all(isinstance(k, str) for k in names):
            raise ValueError(f"optimizer 'state' must be a list of names, got {names!r:.100}")
        extra["buffers"] = names
    config["optimizer"] = opt
    return config, extra


def _array(
    zf: zipfile.ZipFile,
    members: dict[str, zipfile.ZipInfo],
    key: str,
    dtype: np.dtype[Any],
    shape: tuple[int, ...] | None,
    name: str,
    limit: int | None = None,
) -> NDArray[Any]:
    """Member `key` as an array of exactly `dtype` and `shape` (any 1-D shape if None, up to
    `limit` bytes), refused before inflating when its declared size cannot be that."""
    info = members.get(f"{key}.npy")
    if info is None:
        raise ModelFileError(f"{name}: corrupted model file (no array {key!r})")
    nbytes = limit if shape is None else math.prod(shape) * dtype.itemsize
    if info.file_size > MAX_HEADER_BYTES + (nbytes or 0):
        raise ModelFileError(
            f"{name}: array {key!r} declares {info.file_size} bytes; its description allows "
            f"at most {nbytes} (+ header)"
        )
    with zf.open(info) as f:
        found_dtype, found_shape, fortran = _npy_header(f, name, key)
        if found_dtype != dtype or (shape is not None and found_shape != shape):
            raise ModelFileError(
                f"{name}: array {key!r}: expected {dtype} of shape "
                f"{shape if shape is not None else '(n,)'}, found {found_dtype} {found_shape}"
            )
        if shape is None and len(found_shape) != 1:
            raise ModelFileError(f"{name}: array {key!r} must be 1-D, found {found_shape}")
        size = math.prod(found_shape) * dtype.itemsize
        data = f.read(size)
    if len(data) != size:
        raise ModelFileError(f"{name}: truncated model file (array {key!r} is cut short)")
    flat: NDArray[Any] = np.frombuffer(data, dtype=dtype)
    out: NDArray[Any] = flat.reshape(found_shape, order="F" if fortran else "C").copy()
    return out


def _npy_header(f: IO[bytes], name: str, key: str) -> tuple[np.dtype[Any], tuple[int, ...], bool]:
    version = npy.read_magic(f)
    if version == (1, 0):
        shape, fortran, dtype = npy.read_array_header_1_0(f, max_header_size=MAX_HEADER_BYTES)
    elif version == (2, 0):
        shape, fortran, dtype = npy.read_array_header_2_0(f, max_header_size=MAX_HEADER_BYTES)
    else:
        raise ModelFileError(f"{name}: array {key!r} has .npy format version {version}")
    if dtype.hasobject:
        raise ModelFileError(f"{name}: array {key!r} holds Python objects (needs pickle)")
    return dtype, tuple(shape), bool(fortran)

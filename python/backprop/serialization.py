"""model.save(path) and backprop.load(path): one .npz file per model, no pickle.

The file is an ordinary NumPy .npz (zip) archive of plain arrays:

  __backprop__      uint8, the bytes b"backprop-model": marks the file as ours
  format_version    int64 scalar (FORMAT_VERSION)
  config            uint8, UTF-8 JSON: dtype, seed, layers, loss, metrics, optimizer
                    (class names and constructor arguments, steps taken), train/eval mode,
                    the shuffling RNG state and the dropout masks' stream
  theta             the flat parameters (the model's dtype)
  opt_<name>        the optimizer's buffers over theta (velocity; Adam's m and v)

Loading reads arrays with allow_pickle=False and rebuilds objects only through the explicit
registries below (class name -> class, called with the JSON keyword arguments), so a file
can never make load() run code. Anything unreadable raises ModelFileError.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ._validation import resolve_dtype
from .layers import Dense, Dropout, Identity, Layer, LeakyReLU, ReLU, Sigmoid, Softmax, Tanh
from .losses import MAE, MSE, BinaryCrossEntropy, Huber, Loss, SoftmaxCrossEntropy
from .model import Sequential
from .optimizers import SGD, Adam, Optimizer

MAGIC = b"backprop-model"
FORMAT_VERSION = 1

LAYERS: dict[str, type[Layer]] = {
    cls.__name__: cls for cls in (Dense, Dropout, Identity, LeakyReLU, ReLU, Sigmoid, Softmax, Tanh)
}
LOSSES: dict[str, type[Loss]] = {
    cls.__name__: cls for cls in (MSE, MAE, Huber, SoftmaxCrossEntropy, BinaryCrossEntropy)
}
OPTIMIZERS: dict[str, type[Optimizer]] = {cls.__name__: cls for cls in (SGD, Adam)}


class ModelFileError(ValueError):
    """A file that load() cannot read as a backprop model: not ours, truncated, corrupted,
    or of an unknown format version. The message names the file and the problem."""


# -- save ----------------------------------------------------------------------------------------


def _spec(obj: Layer | Loss | Optimizer, registry: dict[str, Any], what: str) -> dict[str, Any]:
    name = type(obj).__name__
    if registry.get(name) is not type(obj):
        raise TypeError(
            f"save: cannot save {what} of type {name}: only the built-in classes "
            f"{sorted(registry)} are saved (a file never holds code)"
        )
    return {"class": name, "config": obj.get_config()}


def _model_arrays(model: Sequential) -> dict[str, NDArray[Any]]:
    """Everything save() writes, as named arrays."""
    config: dict[str, Any] = {
        "dtype": model.dtype.name,
        "seed": None if model.seed is None else int(model.seed),
        "layers": [_spec(layer, LAYERS, f"layers[{i}]") for i, layer in enumerate(model.layers)],
        "loss": None if model.loss is None else _spec(model.loss, LOSSES, "the loss"),
        "metrics": list(model.metrics),
        "optimizer": None,
        "training": model.training,
        "rng": model._rng.bit_generator.state,
        "dropout_rng": model._executor.rng_state,
    }
    arrays: dict[str, NDArray[Any]] = {
        "__backprop__": np.frombuffer(MAGIC, dtype=np.uint8),
        "format_version": np.array(FORMAT_VERSION, dtype=np.int64),
        "theta": model._theta,
    }
    if model.optimizer is not None:
        state = model.optimizer.state
        config["optimizer"] = {
            **_spec(model.optimizer, OPTIMIZERS, "the optimizer"),
            "steps": model.optimizer.steps,
            "state": sorted(state),
        }
        arrays.update({f"opt_{key}": value for key, value in state.items()})
    arrays["config"] = np.frombuffer(json.dumps(config).encode(), dtype=np.uint8)
    return arrays


def save_model(model: Sequential, path: str | os.PathLike[str]) -> None:
    """Write the model to `path` (exactly that name; ".npz" is the natural suffix).

    Atomic: the archive goes to a temporary file in the same directory, is flushed to disk
    (fsync), then renamed over `path` (os.replace), so `path` always holds either the old
    file or the complete new one, even if the process dies mid-write.
    """
    path = os.fspath(path)
    arrays = _model_arrays(model)
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


# -- load ----------------------------------------------------------------------------------------


def load_model(path: str | os.PathLike[str]) -> Sequential:
    """The model saved at `path`, with its loss, metrics, optimizer and optimizer state:
    it predicts bit for bit as the saved one and continues training identically.

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
    return _build(arrays, name)


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


def _make(spec: Any, registry: dict[str, Any], what: str) -> Any:
    if not isinstance(spec, dict) or not isinstance(spec.get("config"), dict):
        raise ValueError(f"{what} must be {{'class': ..., 'config': {{...}}}}, got {spec!r}")
    cls = registry.get(spec.get("class"))  # type: ignore[arg-type]
    if cls is None:
        raise ValueError(f"{what}: unknown class {spec.get('class')!r}; known: {sorted(registry)}")
    return cls(**spec["config"])


def _array(arrays: dict[str, NDArray[Any]], key: str, dtype: np.dtype[Any], n: int) -> Any:
    a = arrays.get(key)
    if a is None or a.dtype != dtype or a.shape != (n,):
        found = "nothing" if a is None else f"{a.dtype} {a.shape}"
        raise ModelFileError(f"array {key!r}: expected {dtype} of shape ({n},), found {found}")
    return a


def _build(arrays: dict[str, NDArray[Any]], name: str) -> Sequential:
    try:
        config = json.loads(arrays["config"].tobytes().decode("utf-8"))
        if not isinstance(config, dict):
            raise ValueError(f"config must be a JSON object, got {type(config).__name__}")
        layers = config["layers"]
        if not isinstance(layers, list):
            raise ValueError("'layers' must be a list")
        built = [_make(s, LAYERS, f"layers[{i}]") for i, s in enumerate(layers)]
        dtype = resolve_dtype(config["dtype"])
        # check the weights' size before Sequential allocates: a crafted description must
        # not make load() reserve more memory than the file holds
        n_params = sum(layer.n_params for layer in built if isinstance(layer, Dense))
        theta = _array(arrays, "theta", dtype, n_params)
        model = Sequential(built, dtype=dtype, seed=config["seed"])
        model._theta[...] = theta
        opt_spec = config["optimizer"]
        optimizer = None if opt_spec is None else _make(opt_spec, OPTIMIZERS, "optimizer")
        if config["loss"] is not None:
            loss = _make(config["loss"], LOSSES, "loss")
            model.compile(loss, optimizer, metrics=config["metrics"])
        elif optimizer is not None:
            raise ValueError("an optimizer without a loss")
        if optimizer is not None:
            steps = opt_spec["steps"]
            if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
                raise ValueError(f"optimizer steps must be an integer >= 0, got {steps!r}")
            state = optimizer.state
            if sorted(state) != opt_spec["state"]:
                raise ValueError(
                    f"optimizer state {opt_spec['state']} does not match {sorted(state)}"
                )
            saved = {k: _array(arrays, f"opt_{k}", model.dtype, model.n_params) for k in state}
            model._executor.step_count = steps  # Adam's bias correction reads it
            for key, value in saved.items():
                state[key][...] = value
        model._rng.bit_generator.state = config["rng"]
        if config["training"] is not True and config["training"] is not False:
            raise ValueError(f"'training' must be true or false, got {config['training']!r}")
        if not config["training"]:
            model.eval()
        dropout_rng = config["dropout_rng"]
        if isinstance(dropout_rng, bool) or not isinstance(dropout_rng, int):
            raise ValueError(f"dropout_rng must be an integer, got {dropout_rng!r}")
        if not 0 <= dropout_rng < 2**64:
            raise ValueError(f"dropout_rng must be in [0, 2**64), got {dropout_rng}")
        model._executor.seed(dropout_rng)
    except ModelFileError as e:
        raise ModelFileError(f"{name}: {e}") from None
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        detail = f"missing entry {e}" if isinstance(e, KeyError) else str(e)
        raise ModelFileError(f"{name}: invalid model description: {detail}") from e
    return model

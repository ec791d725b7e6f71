"""Data-parallel training over MPI: each rank (process) holds a replica of the model and a
shard of the data; every step, one sum over the ranks (an Allreduce, or a shared-memory sum
on one machine) adds the ranks' weighted gradients and every rank takes the same optimizer
step, so the replicas stay identical.

    from mpi4py import MPI
    import backprop as bp
    from backprop.distributed import DataParallel

    model = bp.Sequential([...], seed=0).compile(bp.SoftmaxCrossEntropy(), bp.Adam(lr=1e-3))
    history = DataParallel(model, MPI.COMM_WORLD).fit(X_shard, y_shard, epochs=5,
                                                      batch_size=64, seed=0)

Run it as `mpiexec -n 4 python -m mpi4py train.py` (mpi4py then aborts the whole job on an
uncaught exception). Needs the `mpi` extra (mpi4py and an MPI library: the mpich wheel).
mpi4py is imported when a DataParallel is made, never by `import backprop`.

The rules (docs/distributed.md explains them with the cost model):
- Start: rank 0's get_state() (weights, optimizer buffers and steps, shuffling stream,
  train/eval mode) is broadcast and set on every rank; the models' configs (except their
  seeds) must agree.
- A step: each rank takes its next local batch, computes loss_and_gradient on it and scales
  the gradient by the batch's weight w_r (its row count, or its sample weights' sum); one
  sum over the ranks (DataParallel's `reduction`: an in-place Allreduce, or on one machine a
  shared-memory window) of [gradient * w_r, w_r, loss * w_r, failures, stop requests] in the
  model's dtype gives every rank the same sums; the step's gradient is the sum over the
  total weight, which every rank hands to apply_gradient. The global step is the step
  single-process training takes on the concatenation of the ranks' batches (in rank order).
- Unequal shards: an epoch has as many steps as the largest shard needs
  (ceil(rows / batch_size)); a rank whose shard is exhausted (or whose batch weighs 0) takes
  part with weight 0, as PyTorch DDP's Join does. Every row is used once per epoch and no
  rank waits for a collective the others skip. A step whose total weight is 0 is no step.
- Seeds: rank r shuffles with numpy.random.default_rng([seed, r]) (one permutation of its
  rows per epoch) and draws its dropout masks from the stream
  default_rng([seed, r, 0xD5]).integers(2**63) (set_state's "dropout_rng"); with seed=None,
  rank 0 draws `seed` from its model's shuffling stream (as fit does) and broadcasts it.
- l2 (compile(l2=alpha)): each rank's gradient carries alpha*W / w_r; the rank subtracts
  alpha*W after scaling by w_r and it is added once after the sum, so the step carries
  alpha*W / (total weight) exactly once, as in single-process training; the loss likewise.
- Faults: an exception on a rank (bad input, a non-finite loss or gradient, a callback's
  error, Ctrl-C) is sent as a failure count in the next collective instead of leaving the
  others waiting; then every rank raises: RuntimeError naming the failed rank(s) and their
  errors (FloatingPointError when all were non-finite results; KeyboardInterrupt when all
  were interrupts), with the weights of the last completed step, identical everywhere. A
  summed gradient that is not finite (or would overflow) is refused by apply_gradient on
  every rank alike. A rank that dies outright (killed) is mpiexec's to handle: it ends the job.
- Callbacks run on every rank with identical logs (the epoch loss and validation scores are
  global weighted means from reduced sums; epoch_time is the slowest rank's), and a stop
  request from any rank stops all. Callbacks that write files, ModelCheckpoint and CSVLogger
  and any wrapped in on_root(...), run on rank 0 only (with a copy of the logs).
"""

from __future__ import annotations

import math
import signal
import threading
import time
import warnings
import zlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from ._validation import check_int, check_range, check_seed
from .callbacks import CSVLogger, ModelCheckpoint
from .reduction import METHODS, StepSum, step_sum
from .training import Callback, History, Logs, Progress, as_callbacks, compute_metrics

if TYPE_CHECKING:
    from .model import Sequential

Array = NDArray[Any]

__all__ = ["DataParallel", "dropout_seed", "on_root", "shuffle_rng"]

#: callbacks that write files: run on rank 0 only (wrap your own in on_root)
ROOT_ONLY: tuple[type[Callback], ...] = (ModelCheckpoint, CSVLogger)


def shuffle_rng(seed: int, rank: int) -> np.random.Generator:
    """The generator rank `rank` shuffles its shard with in a fit with `seed`: one
    permutation of its rows per epoch, drawn in epoch order."""
    return np.random.default_rng([seed, rank])


def dropout_seed(seed: int, rank: int) -> int:
    """Rank `rank`'s dropout stream in a fit with `seed` (set_state's "dropout_rng")."""
    return int(np.random.default_rng([seed, rank, 0xD5]).integers(2**63))


class _OnRoot(Callback):
    """A callback run on rank 0 only (see on_root)."""

    def __init__(self, inner: Callback) -> None:
        super().__init__()
        self.inner = inner

    def set_model(self, model: Any) -> None:
        super().set_model(model)
        self.inner.set_model(model)

    def on_train_begin(self, logs: Logs | None = None) -> None:
        self.inner.on_train_begin(dict(logs or {}))

    def on_train_end(self, logs: Logs | None = None) -> None:
        self.inner.on_train_end(dict(logs or {}))

    def on_epoch_begin(self, epoch: int, logs: Logs | None = None) -> None:
        self.inner.on_epoch_begin(epoch, dict(logs or {}))

    def on_epoch_end(self, epoch: int, logs: Logs | None = None) -> None:
        self.inner.on_epoch_end(epoch, dict(logs or {}))

    def on_batch_end(self, batch: int, logs: Logs | None = None) -> None:
        self.inner.on_batch_end(batch, dict(logs or {}))

    def __repr__(self) -> str:
        return f"on_root({self.inner!r})"


def on_root(callback: Callback) -> Callback:
    """Mark a callback to run on rank 0 only in DataParallel.fit (for one that writes files
    or prints); it gets a copy of the logs, so entries it adds are not kept. ModelCheckpoint
    and CSVLogger are treated so without it."""
    if not isinstance(callback, Callback):
        raise TypeError(f"on_root: expected a Callback, got {type(callback).__name__}")
    return callback if isinstance(callback, _OnRoot) else _OnRoot(callback)


def _root_only(callback: Callback) -> bool:
    return isinstance(callback, (_OnRoot, *ROOT_ONLY))


def _per_batch(callback: Callback) -> bool:
    inner = callback.inner if isinstance(callback, _OnRoot) else callback
    return type(inner).on_batch_end is not Callback.on_batch_end


class _Failure:
    """An exception a rank caught in its local work, waiting to be told to the others."""

    def __init__(self, error: BaseException, where: str) -> None:
        self.error = error
        self.where = where
        if isinstance(error, KeyboardInterrupt):
            self.kind = "interrupt"
        elif isinstance(error, FloatingPointError):
            self.kind = "nonfinite"
        else:
            self.kind = "error"

    def report(self, rank: int) -> tuple[int, str, str]:
        text = type(self.error).__name__
        if str(self.error):
            text += f": {self.error}"
        return rank, self.kind, f"rank {rank} in {self.where}: {text}"


class _Interrupts:
    """While active (main thread, default SIGINT handler only): the first Ctrl-C is recorded
    and acted on at the next collective, so every rank stops at the same step; a second one
    raises KeyboardInterrupt at once."""

    def __init__(self) -> None:
        self.pending = False  # a Ctrl-C came
        self.told = False  # and was sent to the other ranks
        self._previous: Any = None

    def __enter__(self) -> _Interrupts:
        if (
            threading.current_thread() is threading.main_thread()
            and signal.getsignal(signal.SIGINT) is signal.default_int_handler
        ):
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.pending:
            raise KeyboardInterrupt
        self.pending = True

    def __exit__(self, *exc: object) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None


class DataParallel:
    """Data-parallel training of `model` over the MPI communicator `comm` (an mpi4py
    Intracomm, e.g. MPI.COMM_WORLD): each rank calls fit() with its own shard of the data.
    See the module's docstring for the rules.

    reduction: how a step sums the ranks' buffers: "shared" (the ranks share one machine:
    an MPI-3 shared-memory window; 0.03 ms for 0.4 MB on 2 ranks here, an Allreduce 0.25),
    "allreduce" (one in-place MPI Allreduce, any ranks) or "auto" (shared when every rank of
    comm is on this machine and the buffer is not tiny, else allreduce; reduction.step_sum).
    The first fit makes the sum (collective); close() frees it.

    stats: after fit, {"steps", "seconds", "allreduce_seconds"}: the steps taken, the wall
    time of the step loop and the time spent in the steps' sums (waiting for the slowest
    rank included).
    """

    def __init__(self, model: Sequential, comm: Any, *, reduction: str = "auto") -> None:
        from mpi4py import MPI  # the `mpi` extra; imported only when used

        from .model import Sequential

        if not isinstance(model, Sequential):
            raise TypeError(f"DataParallel: model must be a Sequential, got {type(model).__name__}")
        if not isinstance(comm, MPI.Intracomm):
            raise TypeError(
                f"DataParallel: comm must be an mpi4py intracommunicator (MPI.COMM_WORLD), "
                f"got {type(comm).__name__}"
            )
        if reduction not in METHODS:
            raise ValueError(
                f"DataParallel: reduction must be one of {', '.join(map(repr, METHODS))}, "
                f"got {reduction!r:.100}"
            )
        self.model = model
        self.comm = comm
        self.reduction = reduction
        self._sum: StepSum | None = None
        self.rank = int(comm.Get_rank())
        self.size = int(comm.Get_size())
        self._mpi: Any = MPI
        self._pending: _Failure | None = None
        self._interrupts = _Interrupts()
        self._where = "setup"
        self.stats: dict[str, float] = {}

    def __repr__(self) -> str:
        return f"DataParallel(rank={self.rank}, size={self.size}, model={self.model!r})"

    @property
    def reduction_method(self) -> str | None:
        """The sum the fits use, "shared" or "allreduce" (None before the first fit)."""
        return None if self._sum is None else self._sum.method

    def close(self) -> None:
        """Free the step sum's shared memory. Collective: every rank calls it, outside fit;
        a later fit makes a new sum."""
        if self._sum is not None:
            self._sum.free()
            self._sum = None

    def __enter__(self) -> DataParallel:
        return self

    def __exit__(self, kind: object, *exc: object) -> None:
        # after an exception the ranks may not all be here: a collective could hang
        if kind is None:
            self.close()

    # -- failures ----------------------------------------------------------------------------

    def _catch(self, error: BaseException) -> None:
        if self._pending is None:
            self._pending = _Failure(error, self._where)

    def _failing(self) -> float:
        """1.0 when this rank has a failure (or a Ctrl-C) to tell, else 0.0."""
        if self._interrupts.pending and not self._interrupts.told:
            self._interrupts.told = True
            if self._pending is None:
                self._pending = _Failure(KeyboardInterrupt("Ctrl-C"), self._where)
        return 1.0 if self._pending is not None else 0.0

    def _agree(self, values: Sequence[float] | Array, op: str = "sum") -> Array:
        """A float64 Allreduce of [failure flag, *values] (SUM or MAX): the reduced values,
        or, when a rank failed, the same exception on every rank."""
        buf = np.array([self._failing(), *values], dtype=np.float64)
        mpi_op = self._mpi.SUM if op == "sum" else self._mpi.MAX
        self.comm.Allreduce(self._mpi.IN_PLACE, buf, op=mpi_op)
        if buf[0] > 0:
            self._raise_failures()
        return buf[1:]

    def _raise_failures(self) -> None:
        """Every rank, after a collective showed a failure: gather the reports and raise the
        same exception everywhere (chained to the original on the rank that had it)."""
        mine = self._pending
        self._pending = None
        reports = [
            r for r in self.comm.allgather(None if mine is None else mine.report(self.rank)) if r
        ]
        kinds = {kind for _, kind, _ in reports}
        ranks = [rank for rank, _, _ in reports]
        detail = "; ".join(text for _, _, text in reports)
        keeps = "every rank keeps the weights of the last completed step"
        error: BaseException
        if kinds == {"interrupt"}:
            who = f"rank {ranks[0]}" if len(ranks) == 1 else f"ranks {ranks}"
            error = KeyboardInterrupt(f"DataParallel.fit: interrupted on {who}; {keeps}")
        elif kinds == {"nonfinite"}:
            error = FloatingPointError(
                f"DataParallel.fit: a non-finite result on {detail}; {keeps}"
            )
        else:
            error = RuntimeError(f"DataParallel.fit failed on {detail}; {keeps}")
        raise error from (None if mine is None else mine.error)

    # -- fit -------------------------------------------------------------------------------

    def fit(
        self,
        X: Any,
        y: Any,
        *,
        epochs: int = 1,
        batch_size: int = 32,
        shuffle: bool = True,
        seed: int | None = None,
        sample_weight: Any = None,
        validation_data: tuple[Any, ...] | None = None,
        validation_split: float = 0.0,
        callbacks: Sequence[Callback] | None = None,
        on_nonfinite: str = "raise",
        verbose: int = 0,
    ) -> History:
        """Train on this rank's shard (X, y) together with the other ranks; every rank calls
        it with the same epochs, batch_size, shuffle, seed and on_nonfinite (checked).
        Returns the History (the same on every rank; also kept as model.history).

        batch_size is per rank: a step's global batch holds up to size * batch_size rows.
        sample_weight: (rows,) >= 0 for this shard; the weights of all shards together
        must have a positive sum. validation_data ((X_val, y_val) or with sample weights)
        or validation_split (the last fraction of this shard's rows, taken before
        shuffling): this rank's validation shard; val_loss and val_<metric> are over all
        ranks' validation shards (a rank may have none). verbose prints on rank 0 only.
        Otherwise as Sequential.fit; see the module docstring for the distributed rules.
        """
        self.stats = {"steps": 0, "seconds": 0.0, "allreduce_seconds": 0.0}
        self._pending = None
        self._where = "setup"
        self._interrupts.pending = self._interrupts.told = False
        with self._interrupts:
            history = self._fit(
                X, y, epochs, batch_size, shuffle, seed, sample_weight, validation_data,
                validation_split, callbacks, on_nonfinite, verbose,
            )  # fmt: skip
        if self._interrupts.pending and not self._interrupts.told:
            # after the last collective: this rank's alone, as a plain Ctrl-C would be
            raise KeyboardInterrupt
        return history

    def _fit(
        self,
        X: Any,
        y: Any,
        epochs: int,
        batch_size: int,
        shuffle: bool,
        seed: int | None,
        sample_weight: Any,
        validation_data: tuple[Any, ...] | None,
        validation_split: float,
        callbacks: Sequence[Callback] | None,
        on_nonfinite: str,
        verbose: int,
    ) -> History:
        model = self.model
        data: dict[str, Any] = {}
        meta: dict[str, Any] = {}
        try:
            data = self._prepare(
                X, y, epochs, batch_size, seed, sample_weight, validation_data,
                validation_split, callbacks, on_nonfinite, verbose,
            )  # fmt: skip
            # what must agree: the model (but its seed: rank 0's weights are broadcast) and
            # the arguments that decide the steps
            config = {k: v for k, v in model.get_config().items() if k != "seed"}
            args = {"epochs": epochs, "batch_size": batch_size, "shuffle": bool(shuffle),
                    "seed": seed, "on_nonfinite": on_nonfinite}  # fmt: skip
            meta = {"config": config, "args": args}
        except Exception as e:
            self._catch(e)
        local = {k: data[k] for k in ("rows", "weight")} if data else {}
        local["validates"] = bool(data) and data["val"] is not None
        self._failing()
        reports = self.comm.allgather(
            (None if self._pending is None else self._pending.report(self.rank), meta, local)
        )
        if any(r[0] for r in reports):
            self._raise_failures()
        self._check_agreement([r[1] for r in reports])
        rows = [r[2]["rows"] for r in reports]
        total_weight = sum(r[2]["weight"] for r in reports)
        if not total_weight > 0:
            raise ValueError("DataParallel.fit: the sample weights of all shards sum to 0")
        validates = any(r[2]["validates"] for r in reports)

        # rank 0's state (and seed) on every rank; each rank its own dropout stream
        state = None
        if self.rank == 0:
            state = model.get_state()
            if seed is None:
                stream = np.random.default_rng()
                stream.bit_generator.state = state["rng"]
                seed = int(stream.integers(2**63))
                state["rng"] = stream.bit_generator.state
        state, seed = self.comm.bcast((state, seed), root=0)
        assert state is not None and seed is not None
        state["dropout_rng"] = dropout_seed(seed, self.rank)
        model.set_state(state)
        if self._sum is None:
            self._sum = step_sum(self._mpi, self.comm, model.n_params + 4, model.dtype,
                                 self.reduction)  # fmt: skip

        steps = max(math.ceil(n / batch_size) for n in rows)
        hooks: list[Callback] = data["hooks"]
        mine = [h for h in hooks if self.rank == 0 or not _root_only(h)]
        history = model.history = History()
        progress = Progress(verbose if self.rank == 0 else 0, epochs, sum(rows))
        rng = shuffle_rng(seed, self.rank)
        model.stop_training = False
        try:
            self._train(
                data, epochs, batch_size, shuffle, steps, rng, mine, history, progress,
                on_nonfinite, validates,
            )  # fmt: skip
        except KeyboardInterrupt:
            history.stop_reason = "interrupted"
            raise
        finally:
            progress.close()
        self._where = "on_train_end"
        for hook in mine:
            try:
                hook.on_train_end({})
            except Exception as e:
                self._catch(e)
        self._agree([])
        return history

    def _prepare(
        self,
        X: Any,
        y: Any,
        epochs: int,
        batch_size: int,
        seed: int | None,
        sample_weight: Any,
        validation_data: tuple[Any, ...] | None,
        validation_split: float,
        callbacks: Sequence[Callback] | None,
        on_nonfinite: str,
        verbose: int,
    ) -> dict[str, Any]:
        """This rank's checked arguments and data (raises what is wrong with them)."""
        model = self.model
        if model.optimizer is None or model.loss is None:
            raise RuntimeError(
                "DataParallel.fit: the model has no optimizer; call model.compile(loss=..., "
                "optimizer=...)"
            )
        check_int(epochs, "DataParallel.fit: epochs", 0)
        check_int(batch_size, "DataParallel.fit: batch_size", 1)
        check_int(verbose, "DataParallel.fit: verbose", 0)
        check_seed(seed, "DataParallel.fit: seed")
        if on_nonfinite not in ("raise", "stop"):
            raise ValueError(
                f"DataParallel.fit: on_nonfinite must be 'raise' or 'stop', got {on_nonfinite!r}"
            )
        split = check_range(validation_split, "DataParallel.fit: validation_split", 0.0, 1.0)
        hooks = as_callbacks(callbacks, model)
        where = "DataParallel.fit"
        if _rows(X) == 0:  # an empty shard: this rank only ever contributes weight 0
            shape = getattr(X, "shape", (0, model.n_features_in))
            if len(shape) != 2 or shape[1] != model.n_features_in:
                raise ValueError(f"{where}: X must be (0, {model.n_features_in}) for an empty "
                                 f"shard, got shape {shape}")  # fmt: skip
            Xc = np.empty((0, model.n_features_in), dtype=model.dtype)
            yc: Array = np.empty(0)
            w = None
        else:
            Xc, yc = model.validate(X, y, where)
            w = _sample_weight(sample_weight, Xc.shape[0], model.dtype, where)
        val = None
        if validation_data is not None:
            if split:
                raise ValueError(f"{where}: give validation_data or validation_split, not both")
            if not isinstance(validation_data, (tuple, list)) or len(validation_data) not in (2, 3):
                raise TypeError(
                    f"{where}: validation_data must be a pair (X_val, y_val) or a triple "
                    "(X_val, y_val, sample_weight_val)"
                )
            if _rows(validation_data[0]) > 0:
                vwhere = f"{where} (validation_data)"
                Xv, yv = model.validate(validation_data[0], validation_data[1], vwhere)
                wv = validation_data[2] if len(validation_data) == 3 else None
                val = (Xv, yv, _sample_weight(wv, Xv.shape[0], model.dtype, vwhere))
        elif split and Xc.shape[0] > 0:
            n_train = math.floor(Xc.shape[0] * (1.0 - split))
            val = (Xc[n_train:], yc[n_train:], None if w is None else w[n_train:])
            Xc, yc = Xc[:n_train], yc[:n_train]
            w = None if w is None else w[:n_train]
        weight = float(Xc.shape[0]) if w is None else float(np.sum(w, dtype=np.float64))
        return {"X": Xc, "y": yc, "w": w, "val": val, "rows": int(Xc.shape[0]),
                "weight": weight, "hooks": hooks}  # fmt: skip

    def _check_agreement(self, metas: list[dict[str, Any]]) -> None:
        for key, what in (("config", "the model's config"), ("args", "fit's arguments")):
            first = metas[0][key]
            for rank, meta in enumerate(metas):
                keys = [
                    k for k in first.keys() | meta[key].keys() if first.get(k) != meta[key].get(k)
                ]
                if keys:
                    mine = ", ".join(f"{k}={meta[key].get(k)!r:.200}" for k in sorted(keys))
                    root = ", ".join(f"{k}={first.get(k)!r:.200}" for k in sorted(keys))
                    raise ValueError(
                        f"DataParallel.fit: {what} must be the same on every rank; rank {rank} "
                        f"has {mine}, rank 0 has {root}"
                    )

    # -- the epochs ---------------------------------------------------------------------------

    def _hook(self, call: Any, *args: Any) -> None:
        """Run one callback hook; an exception waits for the next collective."""
        try:
            call(*args)
        except Exception as e:
            self._catch(e)

    def _train(
        self,
        data: dict[str, Any],
        epochs: int,
        batch_size: int,
        shuffle: bool,
        steps: int,
        rng: np.random.Generator,
        hooks: list[Callback],
        history: History,
        progress: Progress,
        on_nonfinite: str,
        validates: bool,
    ) -> None:
        model = self.model
        assert model.optimizer is not None
        self._where = "on_train_begin"
        for hook in hooks:
            self._hook(hook.on_train_begin, {})
        per_batch = [h for h in hooks if _per_batch(h)]
        n = model.n_params
        # [gradient * w, w, loss * w, failures, stop requests]: one sum per step
        assert self._sum is not None
        summing, buf = self._sum, self._sum.buf
        params = model.parameters()
        weights = params[0::2]  # W0, W1, ...: the views the l2 penalty is on
        spans, offset = [], 0
        for p in params:
            spans.append((offset, offset + p.size))
            offset += p.size
        w_spans = spans[0::2]
        l2 = float(model.l2)
        for epoch in range(epochs):
            self._where = f"on_epoch_begin, epoch {epoch + 1}"
            for hook in hooks:
                self._hook(hook.on_epoch_begin, epoch, {})
            lr = model.optimizer.lr
            start = time.perf_counter()
            perm = rng.permutation(data["rows"]) if shuffle else None
            loss_sum = weight_sum = 0.0
            taken = 0
            for step in range(steps):
                self._where = f"epoch {epoch + 1}, step {step + 1}"
                penalty = 0.5 * l2 * sum(float(np.vdot(W, W)) for W in weights) if l2 else 0.0
                if model.stop_training:
                    buf[:] = 0
                    buf[n + 3] = 1
                else:
                    self._local_step(data, perm, step, batch_size, buf, l2, weights, w_spans,
                                     penalty)  # fmt: skip
                buf[n + 2] = self._failing()
                t0 = time.perf_counter()
                sums = summing.reduce()
                self.stats["allreduce_seconds"] += time.perf_counter() - t0
                if sums[n + 2] > 0:
                    try:
                        self._raise_failures()
                    except FloatingPointError as e:
                        if on_nonfinite == "raise":
                            raise
                        warnings.warn(str(e), RuntimeWarning, stacklevel=4)
                        history.stop_reason = "non-finite"
                        return
                if sums[n + 3] > 0:  # a stop request: no step, on every rank
                    model.stop_training = True
                    break
                total = float(sums[n])
                if not total > 0:
                    continue
                grad = sums[:n]
                if l2:  # the sums may be read-only (shared): the penalty on a copy
                    grad = grad.copy()
                    for (a, b), W in zip(w_spans, weights, strict=True):
                        grad[a:b] += l2 * W.reshape(-1)
                try:
                    model.apply_gradient(grad, scale=1.0 / total)
                except FloatingPointError as e:  # the same sums: refused on every rank alike
                    message = (
                        f"DataParallel.fit: training diverged in epoch {epoch + 1}, step "
                        f"{step + 1} ({e}); every rank keeps the weights of the last finite "
                        f"step (try a learning rate below {lr})"
                    )
                    if on_nonfinite == "raise":
                        raise FloatingPointError(message) from e
                    warnings.warn(message, RuntimeWarning, stacklevel=4)
                    history.stop_reason = "non-finite"
                    return
                batch_loss = float(sums[n + 1]) + penalty
                loss_sum += batch_loss
                weight_sum += total
                taken += 1
                self.stats["steps"] += 1
                if per_batch:
                    self._where = f"on_batch_end, epoch {epoch + 1}, step {step + 1}"
                    logs = {"loss": batch_loss / total}
                    for hook in per_batch:
                        self._hook(
                            hook.on_batch_end, step, dict(logs) if _root_only(hook) else logs
                        )
            if taken == 0 and model.stop_training:  # stopped by on_epoch_begin: no epoch
                history.stop_reason = "callback"
                break
            self.stats["seconds"] += time.perf_counter() - start
            logs = {"loss": loss_sum / weight_sum if weight_sum > 0 else math.nan}
            if not math.isfinite(logs["loss"]):
                message = (
                    f"DataParallel.fit: training diverged in epoch {epoch + 1} (the epoch's "
                    f"mean loss is {logs['loss']})"
                )
                if on_nonfinite == "raise":
                    raise FloatingPointError(message)
                warnings.warn(message, RuntimeWarning, stacklevel=4)
                history.stop_reason = "non-finite"
                return
            if validates:
                self._where = f"validation, epoch {epoch + 1}"
                logs |= self._validate(data["val"])
            logs["lr"] = lr
            self._where = f"end of epoch {epoch + 1}"
            check = _checksum(params)
            elapsed, high, low = self._agree([time.perf_counter() - start, check, -check], op="max")
            if high != -low:
                raise RuntimeError(
                    f"DataParallel.fit: the ranks' weights differ after epoch {epoch + 1} (the "
                    f"MPI library's Allreduce gave the ranks different sums?)"
                )
            logs["epoch_time"] = float(elapsed)
            history.records.append(logs)
            self._where = f"on_epoch_end, epoch {epoch + 1}"
            self._hook(progress.epoch_end, epoch + 1, logs)
            for hook in hooks:  # one dict: a hook may add entries that later ones read
                if _root_only(hook):
                    self._hook(hook.on_epoch_end, epoch, dict(logs))
                else:
                    self._hook(hook.on_epoch_end, epoch, logs)
            (stop,) = self._agree([float(model.stop_training)], op="max")
            if stop > 0:
                model.stop_training = True
                history.stop_reason = "callback"
                break

    def _local_step(
        self,
        data: dict[str, Any],
        perm: Array | None,
        step: int,
        batch_size: int,
        buf: Array,
        l2: float,
        weights: list[Array],
        w_spans: list[tuple[int, int]],
        penalty: float,
    ) -> None:
        """Write this rank's [gradient * w, w, loss * w] into buf (zeros when its shard is
        exhausted or the batch weighs 0); an exception is kept for the collective."""
        n = self.model.n_params
        lo, hi = step * batch_size, min((step + 1) * batch_size, data["rows"])
        buf[n:] = 0
        if lo >= hi or self._pending is not None:
            buf[:n] = 0
            return
        try:
            rows = slice(lo, hi) if perm is None else perm[lo:hi]
            Xb, yb = data["X"][rows], data["y"][rows]
            wb = None if data["w"] is None else data["w"][rows]
            weight = float(hi - lo) if wb is None else float(np.sum(wb, dtype=np.float64))
            if not weight > 0:
                buf[:n] = 0
                return
            grad = buf[:n]
            loss, _ = self.model.loss_and_gradient(Xb, yb, wb, out=grad, where="DataParallel.fit")
            if not math.isfinite(loss):
                raise FloatingPointError(f"the batch's loss is {loss}")
            grad *= buf.dtype.type(weight)
            if l2:  # the penalty goes in once, after the sum
                for (a, b), W in zip(w_spans, weights, strict=True):
                    buf[a:b] -= l2 * W.reshape(-1)
            buf[n] = weight
            buf[n + 1] = loss * weight - penalty
        except Exception as e:
            buf[: n + 2] = 0
            self._catch(e)

    def _validate(self, val: tuple[Array, Array, Array | None] | None) -> dict[str, float]:
        """val_loss and val_<metric> over every rank's validation shard."""
        model = self.model
        assert model.loss is not None
        metrics = [m for m in model.metrics if m != "r2"]
        m = model.n_outputs
        r2 = "r2" in model.metrics
        local = np.zeros(2 + len(metrics) + 2 * m)
        outputs = y = w = None
        if val is not None and self._pending is None:
            try:
                Xv, yv, wv = val
                weight = float(Xv.shape[0]) if wv is None else float(np.sum(wv, dtype=np.float64))
                local[0] = weight
                local[1] = model.evaluate(Xv, yv, wv) * weight
                if model.metrics:
                    outputs = model.predict(Xv)
                    if model.loss.name == "poisson":  # the metrics are of the means, exp(z)
                        outputs = model.loss.link(outputs)
                    scores = compute_metrics(metrics, outputs, yv, model.loss.name, wv)
                    for i, name in enumerate(metrics):
                        local[2 + i] = scores[name] * weight
                    if r2:
                        y = np.asarray(yv, dtype=np.float64).reshape(len(yv), -1)
                        w = np.ones(len(y)) if wv is None else np.asarray(wv, dtype=np.float64)
                        pred = outputs.astype(np.float64)
                        local[2 + len(metrics) : 2 + len(metrics) + m] = w @ y
                        local[2 + len(metrics) + m :] = w @ (y - pred) ** 2
            except Exception as e:
                self._catch(e)
        total = self._agree(local)
        if not total[0] > 0:
            raise ValueError("DataParallel.fit: the validation shards' weights sum to 0")
        scores = {"val_loss": float(total[1] / total[0])}
        for i, name in enumerate(metrics):
            scores[f"val_{name}"] = float(total[2 + i] / total[0])
        if r2:  # a second pass: the total sum of squares about the global mean
            mean = total[2 + len(metrics) : 2 + len(metrics) + m] / total[0]
            ss_res = total[2 + len(metrics) + m :]
            mine = np.zeros(m)
            if y is not None and w is not None:
                mine = w @ (y - mean) ** 2
            ss_tot = self._agree(mine)
            out = np.where(ss_res == 0, 1.0, 0.0)
            varies = ss_tot != 0
            out[varies] = 1.0 - ss_res[varies] / ss_tot[varies]
            scores["val_r2"] = float(np.mean(out))
        # in the order the model's own fit reports them
        return {k: scores[k] for k in ["val_loss", *(f"val_{m}" for m in model.metrics)]}


def _rows(X: Any) -> int:
    shape = getattr(X, "shape", None)
    if shape is not None and len(shape) >= 1:
        return int(shape[0])
    try:
        return len(X)
    except TypeError:
        return -1  # not an array: the validation names it


def _sample_weight(w: Any, n: int, dtype: np.dtype[Any], where: str) -> Array | None:
    """A shard's sample weights: (n,) finite and >= 0; unlike a whole data set's, a shard's
    may sum to 0 (the sum over all shards is checked)."""
    if w is None:
        return None
    a = np.asarray(w)
    if a.ndim != 1 or a.shape[0] != n or a.dtype.kind not in "biuf":
        raise ValueError(
            f"{where}: sample_weight must be numbers of shape ({n},), got {a.dtype} {a.shape}"
        )
    a = np.ascontiguousarray(a, dtype=dtype)
    if not np.isfinite(a).all() or (a < 0).any():
        raise ValueError(f"{where}: sample_weight must be finite and >= 0")
    return a


def _checksum(params: list[Array]) -> float:
    """CRC-32 of the parameters' bytes (exact in a float64)."""
    crc = 0
    for p in params:
        crc = zlib.crc32(np.ascontiguousarray(p).reshape(-1).data.cast("B"), crc)
    return float(crc)

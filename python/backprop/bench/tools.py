"""The tools the runner times, each building a Step that runs the same training step (or,
with --inference, the same forward pass) from the same initial weights (data.init, set by
build_ours), in the dtype of the case's data (float32 or float64).

TOOLS and TOOL_TITLES: the tools and their titles in the report. BUILDERS: one step builder per
tool (ours_step, ours_fit, numpy_step, torch_step, sklearn_step, gemm_floor).
INFERENCE_TOOLS and INFERENCE_BUILDERS: the predict tools of --inference (ours_predict,
onnxruntime_predict, torch_predict), each built for a thread count. NEEDS and available(): the
optional packages a tool needs, and whether they are installed. POOLS and settle(): the thread
pool each tool runs on, and the pause when the next tool uses another.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

import backprop as bp
from backprop_core._blas import _gemm_floor

from .cases import Array, Case, Data

LR = 1e-3

TOOLS = ("ours", "ours_fit", "numpy", "torch1", "torch2", "sklearn", "gemm")
TOOL_TITLES = {
    "ours": "backprop train_step",
    "ours_fit": "backprop fit (per step)",
    "numpy": "plain NumPy",
    "torch1": "PyTorch eager, 1 thread",
    "torch2": "PyTorch eager, 2 threads",
    "sklearn": "scikit-learn partial_fit",
    "gemm": "GEMM floor",
}
INFERENCE_TOOLS = ("predict", "onnxruntime", "torch_infer")
TOOL_TITLES |= {
    "predict": "backprop predict",
    "onnxruntime": "onnxruntime",
    "torch_infer": "PyTorch inference_mode",
}


@dataclass
class Step:
    """call() runs `steps` training steps (one, a fit epoch, or a batch of GEMM-floor steps),
    or one forward pass; before(), if given, runs before each timing (not timed), to set the
    tool's thread count."""

    call: Callable[[], object]
    steps: int = 1
    before: Callable[[], object] | None = None


def build_ours(case: Case, data: Data) -> bp.Sequential:
    """This library's model for the case; records its initial weights in data.init."""
    act = {"relu": bp.ReLU, "sigmoid": bp.Sigmoid}[case.hidden]
    layers: list[bp.Layer] = []
    n = len(case.widths) - 1
    for k in range(n):
        init = "he" if case.hidden == "relu" else "glorot"
        layers.append(bp.Dense(case.widths[k], case.widths[k + 1], weight_init=init))
        if k < n - 1:
            layers.append(act())
    model = bp.Sequential(layers, seed=0, dtype=data.X.dtype)
    loss = bp.MSE() if case.loss == "mse" else bp.SoftmaxCrossEntropy()
    model.compile(loss, bp.SGD(lr=LR))
    data.init = [
        (layer.W.copy(), layer.b.copy()) for layer in model.layers if isinstance(layer, bp.Dense)
    ]
    return model


def ours_step(case: Case, data: Data) -> Step:
    model = build_ours(case, data)
    Xb, yb = data.Xb, data.yb
    return Step(lambda: model.train_step(Xb, yb))


def ours_fit(case: Case, data: Data) -> Step:
    model = build_ours(case, data)
    X, y, batch = data.X, data.y, case.batch
    return Step(lambda: model.fit(X, y, batch_size=batch), data.n_batches)


def numpy_step(case: Case, data: Data) -> Step:
    """The naive baseline: plain NumPy, new arrays for every intermediate."""
    params = [(W.copy(), b.copy()) for W, b in data.init]
    Xb, yb, sigmoid = data.Xb, data.yb, case.hidden == "sigmoid"

    def step() -> float:
        acts = [Xb]
        for k, (W, b) in enumerate(params):
            z = acts[-1] @ W + b
            if k < len(params) - 1:
                z = 1 / (1 + np.exp(-z)) if sigmoid else np.maximum(z, 0)
            acts.append(z)
        out = acts[-1]
        n = out.shape[0]
        if case.loss == "mse":
            diff = out - yb
            loss = float(np.mean(diff**2))
            delta = 2 * diff / diff.size
        else:
            shifted = out - out.max(axis=1, keepdims=True)
            e = np.exp(shifted)
            s = e.sum(axis=1, keepdims=True)
            loss = float(np.mean(np.log(s[:, 0]) - shifted[np.arange(n), yb]))
            delta = e / s
            delta[np.arange(n), yb] -= 1
            delta /= n
        for k in range(len(params) - 1, -1, -1):
            W, b = params[k]
            dW = acts[k].T @ delta
            db = delta.sum(axis=0)
            if k > 0:
                a = acts[k]
                delta = (delta @ W.T) * (a * (1 - a) if sigmoid else (a > 0))
            W -= LR * dW
            b -= LR * db
        return loss

    return Step(step)


def torch_net(case: Case, data: Data) -> Any:
    """The case's network as a plain torch.nn.Sequential from data.init, in data's dtype."""
    import torch  # optional (the bench extra): imported only when a PyTorch tool runs

    mods: list[Any] = []
    for k, (W, b) in enumerate(data.init):
        lin = torch.nn.Linear(W.shape[0], W.shape[1], dtype=torch.from_numpy(W).dtype)
        with torch.no_grad():
            lin.weight.copy_(torch.from_numpy(W.T.copy()))
            lin.bias.copy_(torch.from_numpy(b))
        mods.append(lin)
        if k < len(data.init) - 1:
            mods.append(torch.nn.Sigmoid() if case.hidden == "sigmoid" else torch.nn.ReLU())
    return torch.nn.Sequential(*mods)


def torch_step(threads: int) -> Callable[[Case, Data], Step]:
    """The builder of PyTorch's eager step at `threads` threads."""

    def build(case: Case, data: Data) -> Step:
        import torch  # optional (the bench extra): imported only when this tool runs

        torch.set_num_threads(threads)
        net = torch_net(case, data)
        loss_fn = torch.nn.MSELoss() if case.loss == "mse" else torch.nn.CrossEntropyLoss()
        opt = torch.optim.SGD(net.parameters(), lr=LR)
        Xb, yb = torch.from_numpy(data.Xb), torch.from_numpy(data.yb)

        def step() -> float:
            torch.set_num_threads(threads)  # the other torch tool may have changed it
            opt.zero_grad()
            loss = loss_fn(net(Xb), yb)
            loss.backward()
            opt.step()
            return loss.item()  # type: ignore[no-any-return]

        return Step(step)

    return build


def sklearn_step(case: Case, data: Data) -> Step:
    # optional (the bench extra): imported only when this tool runs
    from sklearn.neural_network import MLPClassifier, MLPRegressor

    kwargs: dict[str, Any] = dict(
        hidden_layer_sizes=case.widths[1:-1],
        activation="logistic" if case.hidden == "sigmoid" else "relu",
        solver="sgd",
        momentum=0.0,
        nesterovs_momentum=False,
        alpha=0.0,
        learning_rate_init=LR,
        batch_size=case.batch,
        shuffle=False,
        random_state=0,
    )
    Xb, yb = data.Xb, data.yb
    if case.loss == "mse":
        if yb.shape[1] == 1:  # scikit-learn wants a single target as (n,): no warning per call
            yb = np.ascontiguousarray(yb[:, 0])
        reg = MLPRegressor(**kwargs)
        reg.partial_fit(Xb, yb)
        return Step(lambda: reg.partial_fit(Xb, yb))
    clf = MLPClassifier(**kwargs)
    clf.partial_fit(Xb, yb, classes=np.arange(case.widths[-1]))
    return Step(lambda: clf.partial_fit(Xb, yb))


def gemm_floor(case: Case, data: Data) -> Step:
    """The step's matrix products alone, through the library's own gemm path (the same BLAS,
    transposes and direct loop for tiny products), one compiled call."""
    rng = np.random.default_rng(1)
    n = case.batch
    products: list[tuple[object, ...]] = []

    def buf(size: int) -> Array:  # in the case's dtype (float32 or float64)
        return rng.standard_normal(size).astype(data.X.dtype)

    for k, (n_in, n_out) in enumerate(zip(case.widths[:-1], case.widths[1:], strict=True)):
        X, W, Y = buf(n * n_in), buf(n_in * n_out), buf(n * n_out)
        dY, dW, dX = buf(n * n_out), buf(n_in * n_out), buf(n * n_in)
        products.append((False, False, n, n_out, n_in, X, W, Y))  # Y = X W
        products.append((True, False, n_in, n_out, n, X, dY, dW))  # dW = X^T dY
        if k > 0:
            products.append((False, True, n, n_in, n_out, dY, W, dX))  # dX = dY W^T
    # one compiled call runs the products many times: a Python call per step would cost
    # more than the products themselves on the small cases
    inner = max(1, int(2e7 // case.flops))
    return Step(lambda: _gemm_floor(products, inner), inner)


BUILDERS: dict[str, Callable[[Case, Data], Step]] = {
    "ours": ours_step,
    "ours_fit": ours_fit,
    "numpy": numpy_step,
    "torch1": torch_step(1),
    "torch2": torch_step(2),
    "sklearn": sklearn_step,
    "gemm": gemm_floor,
}


# -- predict (--inference) ---------------------------------------------------------------------


def ours_predict(case: Case, data: Data, threads: int) -> Step:
    """model.predict on the batch, with the library's BLAS at `threads` threads."""
    model = build_ours(case, data)
    Xb = data.Xb
    return Step(lambda: model.predict(Xb), before=lambda: bp.set_num_threads(threads))


def onnxruntime_predict(case: Case, data: Data, threads: int) -> Step:
    """onnxruntime's CPU session on the model model.to_onnx writes, intra_op_num_threads =
    `threads` (its defaults otherwise: all graph optimizations, spinning workers)."""
    # optional (the onnx extra): imported only when this tool runs
    import onnxruntime as ort

    model = build_ours(case, data)
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "model.onnx")
        model.to_onnx(path)
        session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    feed = {"X": data.Xb}
    return Step(lambda: session.run(["Y"], feed)[0])


def torch_predict(case: Case, data: Data, threads: int) -> Step:
    """The network in PyTorch (eval, torch.inference_mode), NumPy in and out (both without
    a copy), at `threads` threads."""
    import torch  # optional (the bench extra): imported only when this tool runs

    net = torch_net(case, data).eval()
    Xb = data.Xb

    def call() -> Array:
        with torch.inference_mode():
            return net(torch.from_numpy(Xb)).numpy()  # type: ignore[no-any-return]

    return Step(call, before=lambda: torch.set_num_threads(threads))


INFERENCE_BUILDERS: dict[str, Callable[[Case, Data, int], Step]] = {
    "predict": ours_predict,
    "onnxruntime": onnxruntime_predict,
    "torch_infer": torch_predict,
}

# the optional packages each tool imports, and the extra that brings them
NEEDS = {
    "torch1": ("torch",),
    "torch2": ("torch",),
    "sklearn": ("sklearn",),
    "onnxruntime": ("onnx", "onnxruntime"),
    "torch_infer": ("torch",),
}
_EXTRA = {"onnx": "onnx", "onnxruntime": "onnx"}


def available(tool: str) -> str | None:
    """None if the tool can run, else why not."""
    for module in NEEDS.get(tool, ()):
        try:
            __import__(module)
        except ImportError:
            pkg = "scikit-learn" if module == "sklearn" else module
            extra = _EXTRA.get(module, "bench")
            return f"{pkg} is not installed (pip install 'backprop-core[{extra}]')"
    return None


# The thread pool each tool's products run on. An idle OpenBLAS worker keeps polling for
# work (yielding) for about 2**28 cycles (~0.1 s) before it sleeps, so right after one pool
# worked, another pool's threads share the cores with those pollers: with more than one
# BLAS thread the runner pauses when the next tool uses another pool (bench/NOTES.md).
POOLS = {
    "ours": 0,
    "ours_fit": 0,
    "gemm": 0,  # backprop_core's BLAS (see blas_source())
    "numpy": 1,
    "sklearn": 1,  # numpy's OpenBLAS
    "torch1": 2,
    "torch2": 2,  # torch's OpenMP + MKL
    "predict": 0,
    "torch_infer": 2,
    "onnxruntime": 3,  # its own intra-op pool (its workers spin a while after a run, too)
}
_last_pool: list[int] = [-1]


def settle(tool: str, seconds: float) -> None:
    """Pause `seconds` if `tool` runs on another thread pool than the tool before it."""
    if seconds > 0 and POOLS[tool] != _last_pool[0] and _last_pool[0] >= 0:
        time.sleep(seconds)
    _last_pool[0] = POOLS[tool]


def split_runnable(tools: list[str]) -> tuple[list[str], list[dict[str, Any]]]:
    """(the tools whose packages are installed, a skip record for each of the others)."""
    skipped: list[dict[str, Any]] = []
    for t in tools:
        why = available(t)
        if why is not None:
            skipped.append({"tool": t, "case": "*", "reason": why})
    return [t for t in tools if not any(s["tool"] == t for s in skipped)], skipped

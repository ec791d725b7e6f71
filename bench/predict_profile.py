"""Where predict's time goes, beside onnxruntime's, for one predict case at one thread count:
the parts of `model.predict` and of an onnxruntime session on the same network, timed in
turns in one process (float32).

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/predict_profile.py \
        [--cases "M b64,L b256"] [--threads 1,2] [--rounds 7]

Rows (median µs per call over the rounds, each round timing every row once):
  predict            model.predict(X): validation, np.empty, the compiled pass, the result scan
  executor           the compiled pass alone (model's private executor, for profiling only)
  gemm floor         the forward products alone through the library's BLAS path (_gemm_floor)
  numpy              X @ W + b, np.maximum, ... in plain NumPy (the same BLAS)
  onnxruntime        session.run on model.to_onnx's file (intra_op_num_threads = threads)
  ort matmul only    a session on the same products with no bias and no activation
  ort nodes          per node, from onnxruntime's own profiler (a separate session)
The comparison runner (python -m backprop.bench --inference) has the goal figures; this
splits them.
"""

import argparse
import json
import os
import statistics
import tempfile
import time

import numpy as np
import onnx
import onnxruntime as ort
from onnx import helper, numpy_helper

import backprop as bp
from backprop.bench import build_ours, inference_case, make_data
from backprop_core._blas import _gemm_floor


def per_call(fn, min_seconds=0.1):
    fn()
    start = time.perf_counter()
    fn()
    one = max(time.perf_counter() - start, 1e-9)
    calls = max(1, int(min_seconds / one))

    def timing():
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        return (time.perf_counter() - start) / calls

    return timing


def session(path, threads, profile_dir=None):
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    if profile_dir is not None:
        options.enable_profiling = True
        options.profile_file_prefix = os.path.join(profile_dir, "ort")
    return ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])


def matmul_only(model, path):
    """The network's products alone as an ONNX graph: X @ W1 @ W2 ... (MatMul nodes)."""
    weights = model.get_weights()[::2]
    nodes, inits, h = [], [], "X"
    for k, W in enumerate(weights):
        inits.append(numpy_helper.from_array(np.ascontiguousarray(W), name=f"W{k}"))
        nodes.append(helper.make_node("MatMul", [h, f"W{k}"], [f"h{k}"]))
        h = f"h{k}"
    nodes[-1].output[0] = "Y"
    graph = helper.make_graph(
        nodes,
        "matmul",
        [
            helper.make_tensor_value_info(
                "X", onnx.TensorProto.FLOAT, ["batch", model.n_features_in]
            )
        ],
        [helper.make_tensor_value_info("Y", onnx.TensorProto.FLOAT, ["batch", model.n_outputs])],
        initializer=inits,
    )
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    proto.ir_version = 8
    onnx.save(proto, path)


def ort_nodes(path, X, threads, runs=200):
    """Per-node median µs from onnxruntime's profiler, and the optimized graph's op types."""
    with tempfile.TemporaryDirectory() as tmp:
        s = session(path, threads, tmp)
        for _ in range(runs):
            s.run(["Y"], {"X": X})
        events = json.load(open(s.end_profiling()))
    nodes = {}
    for e in events:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
            key = f"{e['args'].get('op_name', '?')} {e['name'][: -len('_kernel_time')]}"
            nodes.setdefault(key, []).append(e["dur"])
    return {k: statistics.median(v) for k, v in nodes.items()}


def profile(label, threads, rounds):
    case = inference_case(label)
    data = make_data(case, 1)
    model = build_ours(case, data)
    X = data.Xb
    bp.set_num_threads(threads)
    tmp = tempfile.mkdtemp()
    full, mm = os.path.join(tmp, "model.onnx"), os.path.join(tmp, "matmul.onnx")
    model.to_onnx(full)
    matmul_only(model, mm)
    s_full, s_mm = session(full, threads), session(mm, threads)
    out = np.empty((case.batch, case.widths[-1]), np.float32)
    executor = model._executor  # private: the compiled pass alone, for this profile only
    rng = np.random.default_rng(1)
    products = []
    for n_in, n_out in zip(case.widths[:-1], case.widths[1:], strict=True):
        A = rng.standard_normal(case.batch * n_in, dtype=np.float32)
        B = rng.standard_normal(n_in * n_out, dtype=np.float32)
        C = np.empty(case.batch * n_out, np.float32)
        products.append((False, False, case.batch, n_out, n_in, A, B, C))
    params = model.get_weights()

    def numpy_forward():
        h = X
        for k in range(0, len(params), 2):
            h = h @ params[k] + params[k + 1]
            if k < len(params) - 2:
                h = np.maximum(h, 0)
        return h

    rows = {
        "predict": per_call(lambda: model.predict(X)),
        "executor": per_call(lambda: executor.predict(X, out)),
        "gemm floor": per_call(lambda: _gemm_floor(products, 1)),
        "numpy": per_call(numpy_forward),
        "onnxruntime": per_call(lambda: s_full.run(["Y"], {"X": X})),
        "ort matmul only": per_call(lambda: s_mm.run(["Y"], {"X": X})),
    }
    times = {k: [] for k in rows}
    for _ in range(rounds):
        for k, timing in rows.items():
            if threads > 1:
                time.sleep(0.2)  # idle workers of the last pool (see tools.POOLS)
            times[k].append(timing())
    print(f"\n{label} ({case.label}), {threads} thread(s), median of {rounds} rounds (µs):")
    ours = statistics.median(times["predict"])
    for k, v in times.items():
        m = statistics.median(v)
        print(f"  {k:<18} {m * 1e6:10.1f}   ({m / ours:.2f}x predict)")
    for k, v in ort_nodes(full, X, threads).items():
        print(f"  ort node {k:<30} {v:10.1f}")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--cases", default="M b64,L b256")
    p.add_argument("--threads", default="1,2")
    p.add_argument("--rounds", type=int, default=7)
    args = p.parse_args()
    print(f"load average before: {open('/proc/loadavg').read().split()[:3]}")
    for label in args.cases.split(","):
        for threads in map(int, args.threads.split(",")):
            profile(label.strip(), threads, args.rounds)
    print(f"\nload average after: {open('/proc/loadavg').read().split()[:3]}")


if __name__ == "__main__":
    main()

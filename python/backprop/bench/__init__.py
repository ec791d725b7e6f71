"""Side-by-side timing of one training step: this library, plain NumPy, PyTorch, scikit-learn.

    python -m backprop.bench [--cases T,S,M,L,XL] [--tools ...] [--repeat 7] [--quick]
                             [--threads N] [--dtype float32,float64] [--json PATH]
                             [--plot PATH.png]
    python -m backprop.bench --inference [--cases "S b1,S b32,M b1,M b64,L b256"]
                             [--tools predict,onnxruntime,torch_infer] [--threads N]
                             [--repeat 7] [--quick] [--json PATH]
    python -m backprop.bench --mpi N [--cases M,L] [--runs 5] [--quick] [--json PATH]

Every tool runs the same step (forward, loss, backward, in-place SGD update of all weights,
one mini-batch; float32, and with --dtype float32,float64 float64 too) in this one process.
Each figure is the median over repeated timings after a warm-up, with its ratio to this
library's `train_step` from the same run and dtype; the tools of a case take turns, so a
change in the machine's load hits them alike. The GEMM floor is the time of the step's
matrix products alone, through the same BLAS path the library uses: each layer's forward
product, input-gradient product (not for the first layer) and weight-gradient product.
Needs the `bench` extra (torch, scikit-learn, threadpoolctl, matplotlib; --inference also
the `onnx` extra); a tool whose package is missing is skipped with a note.

OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE, when set, make OpenBLAS pick another kernel or
blocking than it would for this CPU: the report then says so at its top, with the kernel
that runs. `env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python -m backprop.bench` measures
without them.

`--inference` times predict instead (module inference): this library's `model.predict`,
onnxruntime on the file `model.to_onnx` writes, and PyTorch under `torch.inference_mode()`,
at 1 and 2 threads, each tool's ratio to predict the median of its paired rounds' ratios.

`--mpi N` measures something else: data-parallel training's throughput over MPI, 1 rank
against N ranks with one BLAS thread each and against one process with N BLAS threads,
each configuration in its own processes (module mpi; the `mpi` extra; mpi4py is imported
only by its workers).

Modules: cases (the cases, their data, the project's performance goals), tools (one step
builder per tool), timing (the timing loop, the machine, the BLAS libraries), report (the
report dict, tables, chart), runner (the command line), inference (--inference) and mpi
(--mpi, run by the runner).
"""

from .cases import (
    CASES,
    DTYPES,
    INFERENCE_CASES,
    Case,
    Data,
    fit_batches,
    inference_case,
    inference_targets,
    make_data,
    targets,
)
from .inference import run_inference
from .report import fmt_time, inference_table, plot, print_report, table, targets_table
from .runner import main, parse_args, run
from .tools import (
    BUILDERS,
    INFERENCE_BUILDERS,
    INFERENCE_TOOLS,
    NEEDS,
    POOLS,
    TOOL_TITLES,
    TOOLS,
    Step,
    available,
    build_ours,
    gemm_floor,
    numpy_step,
    onnxruntime_predict,
    ours_fit,
    ours_predict,
    ours_step,
    sklearn_step,
    torch_net,
    torch_predict,
    torch_step,
)

__all__ = [
    "BUILDERS",
    "CASES",
    "DTYPES",
    "INFERENCE_BUILDERS",
    "INFERENCE_CASES",
    "INFERENCE_TOOLS",
    "NEEDS",
    "POOLS",
    "TOOLS",
    "TOOL_TITLES",
    "Case",
    "Data",
    "Step",
    "available",
    "build_ours",
    "fit_batches",
    "fmt_time",
    "gemm_floor",
    "inference_case",
    "inference_table",
    "inference_targets",
    "main",
    "make_data",
    "numpy_step",
    "onnxruntime_predict",
    "ours_fit",
    "ours_predict",
    "ours_step",
    "parse_args",
    "plot",
    "print_report",
    "run",
    "run_inference",
    "sklearn_step",
    "table",
    "targets",
    "targets_table",
    "torch_net",
    "torch_predict",
    "torch_step",
]

"""Side-by-side timing of one training step: this library, plain NumPy, PyTorch, scikit-learn.

    python -m backprop.bench [--cases T,S,M,L,XL] [--tools ...] [--repeat 7] [--quick]
                             [--threads N] [--json PATH] [--plot PATH.png]

Every tool runs the same step (forward, loss, backward, in-place SGD update of all weights,
one float32 mini-batch) in this one process. Each figure is the median over repeated
timings after a warm-up, with its ratio to this library's `train_step` from the same run;
the tools of a case take turns, so a change in the machine's load hits them alike. The
GEMM floor is the time of the step's matrix products alone, through the same BLAS path the
library uses: each layer's forward product, input-gradient product (not for the first
layer) and weight-gradient product. Needs the `bench` extra (torch, scikit-learn,
threadpoolctl, matplotlib); a tool whose package is missing is skipped with a note.

OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE, when set, make OpenBLAS pick another kernel or
blocking than it would for this CPU: the report then says so at its top, with the kernel
that runs. `env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python -m backprop.bench` measures
without them.

Modules: cases (the cases, their data, the project's performance goals), tools (one step
builder per tool), timing (the timing loop, the machine, the BLAS libraries), report (the
report dict, tables, chart) and runner (the command line).
"""

from .cases import CASES, Case, Data, fit_batches, make_data, targets
from .report import fmt_time, plot, print_report, table, targets_table
from .runner import main, parse_args, run
from .tools import (
    BUILDERS,
    NEEDS,
    POOLS,
    TOOL_TITLES,
    TOOLS,
    Step,
    available,
    build_ours,
    gemm_floor,
    numpy_step,
    ours_fit,
    ours_step,
    sklearn_step,
    torch_step,
)

__all__ = [
    "BUILDERS",
    "CASES",
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
    "main",
    "make_data",
    "numpy_step",
    "ours_fit",
    "ours_step",
    "parse_args",
    "plot",
    "print_report",
    "run",
    "sklearn_step",
    "table",
    "targets",
    "targets_table",
    "torch_step",
]

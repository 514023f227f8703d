"""How close the loss + gradient evaluation comes to this machine's limits.

For one evaluation of the objective (``sklearn_cosmoe._model.objective``,
i.e. the numba kernel ``loss_and_gradient`` plus its small Python wrapper)
at ``n = 1e5``, ``d = 10``, ``k = 8`` (perturbed cosine router, linear
experts, dense gates):

* bytes it must read: ``X``, ``y``, the sample weights and the row norms,
  ``8 n (d + 3)`` (the parameters and the gradient are a few KiB);
* floating-point work it must do, counted per row and expert: the gate
  product ``beta1_i . x`` and the expert product ``a_i . x`` (``2 d`` each)
  and the two gradient accumulations ``dS_i x`` and ``dH_i x`` (``2 d``
  each), so ``8 d k`` flops per row, plus ``12 k`` for the softmax, the
  mixture, the residual and the scalar gradient terms (one ``exp`` counted
  as one flop): ``n k (8 d + 12)`` in all, a lower bound;
* the time those take at this machine's rates, measured in the same run with
  the same numba thread count: a STREAM-like copy (a ``prange`` loop ``b[i] =
  a[i]``; bandwidth = bytes read + bytes written per second) on arrays far
  larger than the caches and on arrays of the kernel's own input size, and a
  peak-FLOP loop (independent fused multiply-adds on registers, ``prange``
  over the threads) next to a large ``dgemm`` (``X @ X``) for comparison.

Every timing is the median of repeated calls filling about ``--min-time``
seconds (:func:`_common.time_samples`), one rule for all.

    python benchmarks/bench_roofline.py [--out DIR]

Results: ``roofline.md`` / ``roofline.json`` in a new temporary folder or in
``--out``; ``--out benchmarks/results`` is refused from a dirty tree.
"""

import argparse
import json
import os
import sys
from pathlib import Path

import numba
import numpy as np
from numba import njit, prange

from sklearn_cosmoe import CosineMoERegressor
from sklearn_cosmoe._model import MoESpec, objective

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (fmt_time, git_describe, make_model_data, output_folder,  # noqa: E402
                     time_samples)

LANES = 64          # independent FMA chains per thread: enough to hide the latency


@njit(parallel=True, cache=False)
def stream_copy(a, b):
    for i in prange(a.shape[0]):
        b[i] = a[i]


@njit(parallel=True, fastmath=True, cache=False)
def fma_loop(acc, reps):
    """``acc[t, j] = acc[t, j] * c + e``, ``reps`` times: 2 flops per element and rep."""
    for t in prange(acc.shape[0]):
        local = acc[t].copy()
        for _ in range(reps):
            for j in range(LANES):
                local[j] = local[j] * 0.9999999 + 1e-9
        acc[t] = local


def median_time(fn, min_time):
    return float(np.median(time_samples(fn, min_time=min_time)))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--d", type=int, default=10)
    parser.add_argument("--k", type=int, default=8)
    parser.add_argument("--min-time", type=float, default=1.0)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    out = output_folder(args.out, prefix="bench_roofline_")
    n, d, k = args.n, args.d, args.k
    threads = numba.get_num_threads()
    revision = git_describe()     # at the start: the tree the numbers come from
    load_before = os.getloadavg()[0]

    X, y, _, params, _ = make_model_data(n, d, k)
    w = np.ones(n)
    x_norms = np.linalg.norm(X, axis=1)
    spec = MoESpec(router="perturbed_cosine", tau1=1.0, tau2=1.0, temperature=1.0,
                   alpha=CosineMoERegressor().alpha)
    theta = np.random.default_rng(0).uniform(-1, 1, 2 * k * d + 2 * k) / np.sqrt(d)
    objective(theta, X, y, w, (k, d), spec, x_norms)
    t_kernel = median_time(lambda: objective(theta, X, y, w, (k, d), spec, x_norms),
                           args.min_time)
    bytes_read = 8 * n * (d + 3)
    flops = n * k * (8 * d + 12)

    rows = {}
    for name, size in (("DRAM (512 MiB arrays)", 2 ** 26), ("kernel's input size",
                                                           bytes_read // 8)):
        a = np.random.default_rng(1).standard_normal(size)
        b = np.empty_like(a)
        stream_copy(a, b)
        t = median_time(lambda: stream_copy(a, b), args.min_time)
        rows[name] = 2 * a.nbytes / t
        del a, b
    acc = np.ones((threads, LANES))
    reps = 200_000
    fma_loop(acc, 10)
    t_fma = median_time(lambda: fma_loop(acc, reps), args.min_time)
    peak_loop = 2 * threads * LANES * reps / t_fma
    M = np.random.default_rng(2).standard_normal((2000, 2000))
    M @ M
    t_gemm = median_time(lambda: M @ M, args.min_time)
    peak_gemm = 2 * 2000 ** 3 / t_gemm
    peak = max(peak_loop, peak_gemm)
    bw_dram = rows["DRAM (512 MiB arrays)"]
    bw_cache = rows["kernel's input size"]

    t_mem_dram = bytes_read / bw_dram
    t_mem_cache = bytes_read / bw_cache
    t_flop = flops / peak
    bound = max(t_mem_dram, t_flop)
    report = {"command": "python benchmarks/bench_roofline.py " + " ".join(
                  sys.argv[1:] if argv is None else argv),
              "git": revision, "n": n, "d": d, "k": k, "numba_threads": threads,
              "kernel_time": t_kernel, "bytes_read": bytes_read, "flops": flops,
              "copy_bandwidth": rows, "peak_flops_loop": peak_loop,
              "peak_flops_dgemm": peak_gemm, "time_memory_dram": t_mem_dram,
              "time_memory_cache": t_mem_cache, "time_flops": t_flop, "bound": bound,
              "fraction": bound / t_kernel,
              "load_average": [load_before, os.getloadavg()[0]]}
    (out / "roofline.json").write_text(json.dumps(report, indent=1))
    G = 1e9
    L = ["# Roofline of the loss + gradient evaluation", "",
         f"`{report['command']}`; git describe --dirty: `{report['git']}`; "
         f"n = {n}, d = {d}, k = {k}; numba threads: {threads}; numba {numba.__version__}, "
         f"numpy {np.__version__}; load average {load_before:.1f} at the start, "
         f"{report['load_average'][1]:.1f} at the end (2 cores shared).", "",
         "| quantity | value |", "|---|---|",
         f"| one evaluation (`_model.objective`), median | {fmt_time(t_kernel)} |",
         f"| bytes it must read, 8 n (d + 3) | {bytes_read / 2 ** 20:.1f} MiB |",
         f"| flops it must do, n k (8 d + 12) | {flops / 1e6:.1f} Mflop |",
         f"| copy bandwidth, DRAM (512 MiB arrays) | {bw_dram / G:.1f} GB/s |",
         f"| copy bandwidth, arrays of the kernel's input size | {bw_cache / G:.1f} GB/s |",
         f"| peak FLOP rate, FMA loop ({threads} threads) | {peak_loop / G:.1f} Gflop/s |",
         f"| peak FLOP rate, dgemm 2000 x 2000 | {peak_gemm / G:.1f} Gflop/s |",
         f"| time to read the inputs from DRAM | {fmt_time(t_mem_dram)} |",
         f"| time to read them at the in-cache rate | {fmt_time(t_mem_cache)} |",
         f"| time for the flops at the peak rate | {fmt_time(t_flop)} |",
         f"| achieved: bandwidth / flop rate | {bytes_read / t_kernel / G:.2f} GB/s, "
         f"{flops / t_kernel / G:.2f} Gflop/s |",
         f"| **fraction of the limit reached** (max of the DRAM and flop times / "
         f"measured time) | **{bound / t_kernel:.0%}** |", ""]
    (out / "roofline.md").write_text("\n".join(L))
    print("\n".join(L))
    print(f"wrote {out / 'roofline.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

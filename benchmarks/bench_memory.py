"""Peak resident memory of ``CosineMoERegressor.fit``, everything counted.

tracemalloc sees only Python's allocator, not numba's or BLAS's buffers, and a
high-water mark read inside a process that already compiled or fitted
something shows earlier peaks.  So every measurement runs in a fresh child
process and reads the child's own peak resident set size
(``resource.getrusage(RUSAGE_SELF).ru_maxrss``, which counts every page the
process touched, whoever allocated it), twice per cell:

* *baseline*: interpreter, imports, a small fit that loads the package's
  cached numba kernels, then ``X`` and ``y`` drawn;
* *fit*: exactly the same, then ``CosineMoERegressor(n_experts=k).fit(X, y)``.

The fit's own peak memory is the difference, reported against
``X.nbytes``.  ``k = 10``, ``d = 10`` and ``d = 200``; ``--max-iter``
(default 30) bounds the L-BFGS iterations, which does not change the memory
a fit holds (every iteration uses the same buffers) but keeps the run short.

    python benchmarks/bench_memory.py [--out DIR]

Results go to ``memory.md`` / ``memory.json`` in a new temporary folder or in
``--out``; ``--out benchmarks/results`` is refused from a dirty tree.
"""

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import git_describe, output_folder  # noqa: E402

HERE = Path(__file__).resolve().parent

CHILD = r"""
import resource, sys, warnings
sys.path.insert(0, {here!r})
import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn_cosmoe import CosineMoERegressor
warnings.simplefilter("ignore", ConvergenceWarning)
n, d, k, max_iter, do_fit = {n}, {d}, {k}, {max_iter}, {do_fit}
rng = np.random.default_rng(0)
Xs = rng.standard_normal((300, d))
CosineMoERegressor(n_experts=k, max_iter=max_iter, random_state=0).fit(Xs, np.tanh(Xs[:, 0]) + Xs[:, 1])
del Xs
X = rng.standard_normal((n, d))
y = np.tanh(X[:, 0]) + X[:, 1] + 0.3 * rng.standard_normal(n)
if do_fit:
    CosineMoERegressor(n_experts=k, max_iter=max_iter, random_state=0).fit(X, y)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
"""


def child_peak(n, d, k, max_iter, do_fit):
    """Peak resident bytes of a fresh child process (Linux: ru_maxrss is in KiB)."""
    code = CHILD.format(here=str(HERE), n=n, d=d, k=k, max_iter=max_iter, do_fit=do_fit)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    return int(out.stdout.split()[-1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cells", nargs="+", default=["1e4x10", "1e5x10", "1e6x10",
                                                       "1e4x200", "1e5x200"],
                        help="n x d pairs")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--max-iter", type=int, default=30)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    out = output_folder(args.out, prefix="bench_memory_")
    revision = git_describe()     # at the start: the tree the numbers come from
    rows = []
    for cell in args.cells:
        n, d = (int(float(v)) for v in cell.split("x"))
        base = child_peak(n, d, args.k, args.max_iter, False)
        fit = child_peak(n, d, args.k, args.max_iter, True)
        x_bytes = n * d * 8
        rows.append({"n": n, "d": d, "k": args.k, "X_bytes": x_bytes, "baseline": base,
                     "fit_peak": fit, "extra": fit - base})
        print(f"n={n:.0e} d={d}: baseline {base / 2**20:.1f} MiB, fit {fit / 2**20:.1f} MiB, "
              f"extra {(fit - base) / 2**20:.1f} MiB = {(fit - base) / x_bytes:.2f} x X",
              flush=True)
    command = "python benchmarks/bench_memory.py " + " ".join(
        sys.argv[1:] if argv is None else argv)
    report = {"command": command, "git": revision, "k": args.k,
              "max_iter": args.max_iter, "rows": rows}
    (out / "memory.json").write_text(json.dumps(report, indent=1))
    mib = 2 ** 20
    L = ["# Peak resident memory of CosineMoERegressor.fit", "",
         f"`{command}`; git describe --dirty: `{report['git']}`; k = {args.k}, "
         f"max_iter = {args.max_iter}, numpy {np.__version__}.", "",
         "Each number is a fresh child process's own peak resident set (ru_maxrss): "
         "*baseline* = interpreter + imports + cached kernels loaded + X, y drawn; "
         "*fit* = the same + the fit. The fit's extra memory is the difference.", "",
         "| n | d | X | baseline peak | fit peak | fit's extra | extra / size of X |",
         "|---|---|---|---|---|---|---|"]
    for r in rows:
        n = f"{r['n']:.0e}".replace("e+0", "e")
        L.append(f"| {n} | {r['d']} | {r['X_bytes'] / mib:.1f} MiB | "
                 f"{r['baseline'] / mib:.1f} MiB | {r['fit_peak'] / mib:.1f} MiB | "
                 f"{r['extra'] / mib:.1f} MiB | {r['extra'] / r['X_bytes']:.2f} |")
    (out / "memory.md").write_text("\n".join(L) + "\n")
    print(f"wrote {out / 'memory.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

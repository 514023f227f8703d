"""Does the default fit find the optimum?

For random truths drawn by ``make_cosine_moe`` the default
``CosineMoERegressor`` fit is compared with a fit started at the truth::

    python benchmarks/bench_fit_quality.py --quick          # about 2 min
    python benchmarks/bench_fit_quality.py                  # the full grid
    python benchmarks/bench_fit_quality.py --out benchmarks/results/fit_quality

Protocol
--------
* Grid: router (perturbed cosine, cosine, linear) x expert (linear, tanh,
  sigmoid, gelu) x fitted ``n_experts`` (exact, ``k* = 3``, or over-specified
  by one, 4) x ``d`` in {2, 5, 10} x ``n`` in {1e3, 1e4}; ``--truths`` random
  truths per cell (``make_cosine_moe(..., temperature=0.3, inputs="normal",
  noise=0.1, random_state=seed)``), the same truths in every cell of a given
  ``d``.  The estimator gets the truth's router, expert and temperature.
* Reference: the same estimator warm-started at the truth (an over-specified
  fit starts from the truth with its first expert split in two equal halves);
  its ``loss_`` is the optimum to reach.
* Success: the default fit's ``loss_`` is at most the reference's plus 1% of
  the noise term :math:`\\tfrac12 \\sigma^2 / \\mathrm{Var}(y)` (the objective is
  on the standardized target).  The same test is applied to the baseline: the
  fit of commit d55a4fc (``_baseline_fit.py``), run in the same process.
* Time: every fit is timed once with ``time.perf_counter`` around the call
  (the default fit, the baseline); the ratio is total default time over
  total baseline time, per cell and overall.

Writing into ``benchmarks/results/`` needs a clean git tree: the results
record ``git describe --dirty``.  Without ``--out`` the results go to a
temporary directory.
"""

import argparse
import itertools
import sys
import time
import warnings
from pathlib import Path

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_random_state

from sklearn_cosmoe import CosineMoERegressor
from sklearn_cosmoe._fitted import FITTED_HYPERPARAMETERS, fitted_hyperparameters
from sklearn_cosmoe._model import MoESpec
from sklearn_cosmoe.datasets import make_cosine_moe
from sklearn_cosmoe.rates import near_truth_start

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _baseline_fit import baseline_fit  # noqa: E402
from _output import git_describe, output_folder  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
ROUTERS = ("perturbed_cosine", "cosine", "linear")
EXPERTS = ("linear", "tanh", "sigmoid", "gelu")
K_TRUE, TEMPERATURE, NOISE = 3, 0.3, 0.1
TOLERANCE = 0.01  # share of the noise term


def truth_loss(X, y, G, k, settings):
    """``loss_`` of the estimator warm-started at the truth ``G`` (split to ``k``)."""
    reg = CosineMoERegressor(n_experts=k, warm_start=True, **settings)
    start = near_truth_start(G, k, 0.0, np.random.default_rng(0))
    reg.gate_coef_, reg.gate_intercept_ = start.gate_coef, start.gate_intercept
    reg.expert_coef_, reg.expert_intercept_ = start.expert_coef, start.expert_intercept
    reg.output_scale_, reg.output_intercept_ = start.output_scale, start.output_intercept
    # a warm start continues from a fitted model: its fitted hyperparameters too
    vars(reg).update(fitted_hyperparameters(reg, FITTED_HYPERPARAMETERS))
    return reg.fit(X, y).loss_


def run_truth(router, expert, k, d, n, seed):
    X, y, G = make_cosine_moe(n, d, K_TRUE, router=router, expert=expert,
                              temperature=TEMPERATURE, inputs="normal", noise=NOISE,
                              random_state=seed)
    settings = {"router": router, "expert": expert, "temperature": TEMPERATURE}
    noise_term = 0.5 * NOISE ** 2 / np.var(y)
    reference = truth_loss(X, y, G, k, settings)

    t0 = time.perf_counter()
    default = CosineMoERegressor(n_experts=k, random_state=seed, **settings).fit(X, y)
    default_time = time.perf_counter() - t0

    target = (y - y.mean()) / y.std()
    spec = MoESpec(router=router, expert=expert, temperature=TEMPERATURE, alpha=1e-4)
    t0 = time.perf_counter()
    base = baseline_fit(np.ascontiguousarray(X), target, np.ones(n), spec, k,
                        check_random_state(seed))
    baseline_time = time.perf_counter() - t0
    return {"router": router, "expert": expert, "k": k, "d": d, "n": n, "seed": seed,
            "noise_term": noise_term, "reference": reference,
            "default": default.loss_, "baseline": base,
            "default_ok": default.loss_ <= reference + TOLERANCE * noise_term,
            "baseline_ok": base <= reference + TOLERANCE * noise_term,
            "default_converged": default.converged_,
            "default_time": default_time, "baseline_time": baseline_time}


def summarise(rows):
    """Markdown tables: success shares and time ratios per cell and overall."""
    def share(rs, key):
        return f"{sum(r[key] for r in rs)}/{len(rs)}"

    def ratio(rs):
        return sum(r["default_time"] for r in rs) / sum(r["baseline_time"] for r in rs)

    lines = ["| router | expert | k | d | n | default at optimum | baseline at optimum "
             "| worst default gap (noise terms) | time ratio |",
             "|---|---|---|---|---|---|---|---|---|"]
    cells = {}
    for r in rows:
        cells.setdefault((r["router"], r["expert"], r["k"], r["d"], r["n"]), []).append(r)
    for key, rs in cells.items():
        gap = max((r["default"] - r["reference"]) / r["noise_term"] for r in rs)
        lines.append("| " + " | ".join(map(str, key)) + f" | {share(rs, 'default_ok')} | "
                     f"{share(rs, 'baseline_ok')} | {gap:+.3f} | {ratio(rs):.2f} |")
    total = [f"Default fit at the optimum: {share(rows, 'default_ok')} truths "
             f"({np.mean([r['default_ok'] for r in rows]):.1%}); baseline (d55a4fc): "
             f"{share(rows, 'baseline_ok')} "
             f"({np.mean([r['baseline_ok'] for r in rows]):.1%}).  ",
             f"Default fits that report converged_: {share(rows, 'default_converged')}.  ",
             f"Fit time, default / baseline: {ratio(rows):.2f} (total "
             f"{sum(r['default_time'] for r in rows):.1f} s / "
             f"{sum(r['baseline_time'] for r in rows):.1f} s).", ""]
    by = []
    for name, index in (("router", 0), ("expert", 1), ("k", 2), ("d", 3), ("n", 4)):
        for value in dict.fromkeys(key[index] for key in cells):
            rs = [r for r in rows if r[name] == value]
            by.append(f"| {name} = {value} | {share(rs, 'default_ok')} | "
                      f"{share(rs, 'baseline_ok')} | {ratio(rs):.2f} |")
    margins = ["| slice | default at optimum | baseline at optimum | time ratio |",
               "|---|---|---|---|", *by, ""]
    return total + margins + lines


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="d in {2, 5}, n = 1e3, one truth per cell")
    parser.add_argument("--truths", type=int, default=None,
                        help="random truths per cell (default 3; 1 with --quick)")
    parser.add_argument("--out", type=Path, default=None,
                        help="output directory (default: a new temporary one)")
    args = parser.parse_args(argv)
    revision = git_describe()
    out = output_folder(args.out, prefix="fit_quality_")
    truths = args.truths or (1 if args.quick else 3)
    ds = (2, 5) if args.quick else (2, 5, 10)
    ns = (1000,) if args.quick else (1000, 10000)
    command = "python benchmarks/bench_fit_quality.py " + " ".join(
        sys.argv[1:] if argv is None else argv)

    rows, start = [], time.perf_counter()
    grid = itertools.product(ns, ds, ROUTERS, EXPERTS, (K_TRUE, K_TRUE + 1))
    for n, d, router, expert, k in grid:
        for seed in range(truths):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                row = run_truth(router, expert, k, d, n, seed)
            rows.append(row)
            print(f"{router:>16} {expert:>7} k={k} d={d:>2} n={n:>5} seed={seed}: "
                  f"default {'ok' if row['default_ok'] else 'MISS'} "
                  f"{(row['default'] - row['reference']) / row['noise_term']:+.3f}, "
                  f"baseline {'ok' if row['baseline_ok'] else 'MISS'} "
                  f"{(row['baseline'] - row['reference']) / row['noise_term']:+.3f} "
                  f"(noise terms); {row['default_time']:.2f} s / "
                  f"{row['baseline_time']:.2f} s", flush=True)

    header = ["# Fit quality: the default fit against a fit started at the truth", "",
              f"Command: `{command.strip()}`  ",
              f"Revision: `{revision}`; run time {time.perf_counter() - start:.0f} s; "
              f"{truths} truth(s) per cell, k* = {K_TRUE}, temperature {TEMPERATURE}, "
              f"noise sd {NOISE}, normal inputs.  ",
              f"Success: default loss_ <= truth-started loss_ + {TOLERANCE:.0%} of "
              "0.5 sigma^2 / Var(y).  Gaps below are in units of that noise term.", ""]
    (out / "fit_quality.md").write_text("\n".join(header + summarise(rows)) + "\n")
    keys = list(rows[0])
    csv = [",".join(keys)] + [",".join(str(r[key]) for key in keys) for r in rows]
    (out / "fit_quality.csv").write_text("\n".join(csv) + "\n")
    print("\n".join(summarise(rows)[:3]))
    print(f"written to {out}")


if __name__ == "__main__":
    main()

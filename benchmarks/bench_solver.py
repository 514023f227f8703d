"""The two minimisers side by side: iterations, time, objective, stationarity.

::

    python benchmarks/bench_solver.py --quick        # about 2 min
    python benchmarks/bench_solver.py                # every cell, about 20 min
    python benchmarks/bench_solver.py --out benchmarks/results/solver

Protocol
--------
* Cells: data drawn from the model (``make_model_data``: d = 10, n in {1e4,
  1e5}, k in {4, 8}, each router, its true k fitted), and real data as a user
  meets them (``StandardScaler`` on X): Friedman #1 (noise 1), #2 (noise 1),
  #3 (noise 0.1), 5000 rows each, and diabetes (442 rows); 4 experts, the
  perturbed cosine router (the estimator's default) and the two others.
  Linear experts: the experts ``solver="auto"`` chooses between the two.
* Each cell is fitted as the estimator fits it (target standardized, three
  screened k-means starts from ``random_state=0``, ``tol=1e-6``,
  ``max_iter=1000``) by each solver, through the package's fit function.
* Time: every solver runs the same cell ``--repeats`` times (3); the median
  wall time is reported; a warm-up fit on 200 rows compiles the kernels
  first.  The ratio is Newton time over L-BFGS-B time, in this process.
* Stationarity: the Newton-type convergence test read at the point where
  each fit stopped (for L-BFGS-B too): the decrease the model still
  promises, relative to the objective.  ``tol/100`` is the objective of the
  same start fitted with a tolerance 100x smaller, relative to the fit's.
* Grid search: ``GridSearchCV`` (5 folds) over tau1, tau2 in {0.1, 1, 10} x
  temperature in {1, 0.3, 0.1} on Friedman #1 (noise 1, 5000 rows) behind a
  ``StandardScaler``, for each solver: the ConvergenceWarnings it printed,
  and for every candidate of the first fold the objective's distance to the
  same start fitted with a tolerance 100x smaller.

Writing into ``benchmarks/results/`` needs a clean git tree: the results
record ``git describe --dirty``.
"""

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np
from sklearn.datasets import load_diabetes, make_friedman1, make_friedman2, make_friedman3
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV, KFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import log, make_model_data  # noqa: E402
from _output import git_describe, output_folder  # noqa: E402

from sklearn_cosmoe import CosineMoERegressor  # noqa: E402
from sklearn_cosmoe._model import MoESpec  # noqa: E402
from sklearn_cosmoe._objective import ArrayObjective  # noqa: E402
from sklearn_cosmoe._parallel import single_threaded_blas  # noqa: E402
from sklearn_cosmoe._solver import fit_from_data  # noqa: E402
from sklearn_cosmoe._solvers import problem_for  # noqa: E402
from sklearn_cosmoe._validation import standardize_target  # noqa: E402

SOLVERS = ("gauss-newton", "lbfgs")
ROUTERS = ("perturbed_cosine", "cosine", "linear")
TOL = 1e-6
SMALL_TOL = TOL / 100
TAUS = (0.1, 1.0, 10.0)
TEMPERATURES = (1.0, 0.3, 0.1)


def real_sets():
    """The real data sets, features standardized as a user would."""
    sets = {"friedman1": make_friedman1(5000, noise=1.0, random_state=0),
            "friedman2": make_friedman2(5000, noise=1.0, random_state=0),
            "friedman3": make_friedman3(5000, noise=0.1, random_state=0),
            "diabetes": load_diabetes(return_X_y=True)}
    return {name: (StandardScaler().fit_transform(X), y) for name, (X, y) in sets.items()}


def cells(quick):
    """``(name, X, y, n_experts, router)`` of every cell."""
    sizes = [(10_000, 4)] if quick else [(10_000, 4), (10_000, 8), (100_000, 4),
                                         (100_000, 8)]
    for n, k in sizes:
        for router in ROUTERS:
            X, y, *_ = make_model_data(n, 10, k, router=router)
            yield f"model n={n} k={k}", X, y, k, router
    for name, (X, y) in real_sets().items():
        for router in (ROUTERS[:1] if quick else ROUTERS):
            yield name, X, y, 4, router


def fit(X, y, k, router, solver, tol=TOL):
    """The estimator's fit of the standardized target, through the package's fit function."""
    w = np.ones(len(y))
    target, _, _ = standardize_target(np.asarray(y, dtype=float), w)
    data = ArrayObjective(np.ascontiguousarray(X, dtype=float), target, w)
    spec = MoESpec(router=router, alpha=CosineMoERegressor().alpha)
    rng = np.random.default_rng(0)
    start = time.perf_counter()
    result = fit_from_data(data, spec, k, rng, solver=solver, max_iter=1000, tol=tol)
    return result, time.perf_counter() - start, data, spec


def stationarity(result, data, spec):
    """The Newton-type test read at ``result``'s parameters."""
    theta = result.params.to_vector(spec)
    problem = problem_for("gauss-newton", data, theta, result.params.shape, spec)
    with single_threaded_blas():
        return float(problem.stationarity(problem.start))


def run_cell(name, X, y, k, router, repeats):
    row = {"cell": name, "router": router, "n": len(y), "k": k}
    for solver in SOLVERS:
        times = []
        for _ in range(repeats):
            result, seconds, data, spec = fit(X, y, k, router, solver)
            times.append(seconds)
        tight = fit(X, y, k, router, solver, tol=SMALL_TOL)[0]
        row[solver] = {
            "n_iter": result.n_iter, "converged": bool(result.converged),
            "loss": result.loss, "stationarity": stationarity(result, data, spec),
            "seconds": float(np.median(times)),
            "gap_to_small_tol": (result.loss - tight.loss) / tight.loss,
        }
    row["time_ratio"] = row["gauss-newton"]["seconds"] / row["lbfgs"]["seconds"]
    return row


def grid_search(solver, quick):
    """GridSearchCV over the perturbation and the temperature on Friedman #1."""
    X, y = make_friedman1(2000 if quick else 5000, noise=1.0, random_state=0)
    grid = {"cosinemoeregressor__tau1": TAUS, "cosinemoeregressor__tau2": TAUS,
            "cosinemoeregressor__temperature": TEMPERATURES}
    model = make_pipeline(StandardScaler(), CosineMoERegressor(solver=solver, random_state=0))
    folds = KFold(5, shuffle=True, random_state=0)
    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        search = GridSearchCV(model, grid, cv=folds).fit(X, y)
    seconds = time.perf_counter() - start
    n_warnings = sum(issubclass(w.category, ConvergenceWarning) for w in caught)
    # every candidate on the first fold's training rows, against tol / 100
    train = next(folds.split(X))[0]
    gaps = []
    for params in search.cv_results_["params"]:
        fits = []
        for tol in (TOL, SMALL_TOL):
            candidate = model.set_params(**params, cosinemoeregressor__tol=tol)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                fits.append(candidate.fit(X[train], y[train])[-1].loss_)
        gaps.append((fits[0] - fits[1]) / fits[1])
    model.set_params(cosinemoeregressor__tol=TOL)
    best = {key.split("__")[1]: value for key, value in search.best_params_.items()}
    return {"solver": solver, "fits": int(search.n_splits_ * len(search.cv_results_["params"])
                                          + 1),
            "convergence_warnings": n_warnings, "seconds": seconds,
            "largest_gap_to_small_tol": float(max(gaps)),
            "candidates_within_1e-6": int(sum(g <= 1e-6 for g in gaps)),
            "candidates": len(gaps), "best_params": best,
            "best_score": float(search.best_score_)}


def markdown(rows, searches, revision):
    lines = [f"# The two minimisers ({revision})", "",
             "Command: `python benchmarks/bench_solver.py` (protocol: its docstring).", "",
             "| cell | router | solver | iterations | converged | objective | stationarity "
             "| objective - tol/100 (rel.) | time (s) | Newton / L-BFGS time |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        for solver in SOLVERS:
            r = row[solver]
            ratio = f"{row['time_ratio']:.2f}" if solver == SOLVERS[0] else ""
            lines.append(f"| {row['cell']} | {row['router']} | {solver} | {r['n_iter']} | "
                         f"{r['converged']} | {r['loss']:.6f} | {r['stationarity']:.1e} | "
                         f"{r['gap_to_small_tol']:.1e} | {r['seconds']:.2f} | {ratio} |")
    newton = [row["gauss-newton"] for row in rows]
    lines += ["", f"Newton-type fits converged: {sum(r['converged'] for r in newton)} of "
              f"{len(newton)}; median iterations {np.median([r['n_iter'] for r in newton]):.0f}"
              f", largest {max(r['n_iter'] for r in newton)}.",
              f"Median time ratio Newton / L-BFGS-B: "
              f"{np.median([row['time_ratio'] for row in rows]):.2f}.", "",
              "## GridSearchCV over tau1, tau2 x temperature on Friedman #1", "",
              "| solver | fits | ConvergenceWarnings | candidates within 1e-6 of tol/100 "
              "| largest gap | time (s) | best parameters | best score |",
              "|---|---|---|---|---|---|---|---|"]
    for s in searches:
        lines.append(f"| {s['solver']} | {s['fits']} | {s['convergence_warnings']} | "
                     f"{s['candidates_within_1e-6']} of {s['candidates']} | "
                     f"{s['largest_gap_to_small_tol']:.1e} | {s['seconds']:.0f} | "
                     f"{s['best_params']} | {s['best_score']:.4f} |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer cells, smaller search")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", help="results folder (default: a temporary one)")
    args = parser.parse_args(argv)
    out = output_folder(args.out, "bench_solver_")
    revision = git_describe()
    warm = np.random.default_rng(0).standard_normal((200, 10))
    for solver in SOLVERS:
        fit(warm, warm[:, 0], 2, "perturbed_cosine", solver)
    rows = []
    for cell in cells(args.quick):
        rows.append(run_cell(*cell, repeats=args.repeats))
        r = rows[-1]
        log(f"{r['cell']:>20s} {r['router']:>16s}: "
            + "  ".join(f"{s} it={r[s]['n_iter']} conv={r[s]['converged']} "
                        f"loss={r[s]['loss']:.6f} stat={r[s]['stationarity']:.1e} "
                        f"t={r[s]['seconds']:.2f}s" for s in SOLVERS))
    searches = []
    for solver in SOLVERS:
        searches.append(grid_search(solver, args.quick))
        log(f"grid search {solver}: {searches[-1]}")
    (out / "solver.json").write_text(json.dumps(
        {"revision": revision, "rows": rows, "grid_search": searches}, indent=1))
    (out / "solver.md").write_text(markdown(rows, searches, revision))
    log(f"wrote {out}")


if __name__ == "__main__":
    main()

"""CosineMoEClassifier's two solvers against a tuned LogisticRegression.

One process, one command::

    python benchmarks/bench_classifier_solvers.py            # full run
    python benchmarks/bench_classifier_solvers.py --quick    # smoke run: 3 + 2 folds

Two parts:

* **Scores** on breast_cancer and wine, with the protocol of
  ``bench_classifier_accuracy.py`` (outer ``StratifiedKFold(5)``, in each
  training fold a ``GridSearchCV`` over 4 candidates selected by log-loss,
  ``StandardScaler`` in front): test log-loss and accuracy (mean and
  standard error over the outer folds), the mean time of one fit (over every
  fit of the grid search, and the refit), and the refitted model's
  iterations, ``converged_`` and ``stationarity_``, for ``LogisticRegression``
  (``C``) and ``CosineMoEClassifier`` with ``solver="gauss-newton"`` and with
  ``solver="lbfgs"`` (``temperature`` x ``alpha``, defaults otherwise).  The
  goal: each solver's log-loss at most LogisticRegression's plus one
  standard error of the per-fold difference (paired over the same folds).
* **Certification**: every grid candidate and router, dense and with
  ``top_k=2``, fitted on a whole (standardized) data set by each solver at
  the default ``max_iter`` and ``tol``: whether the fit converged, its
  iterations, time and objective; and ``solver="gauss-newton"`` on
  breast_cancer with 2 to 8 experts (186 to 744 parameters), for the
  parameter bound of ``solver="auto"``.

Results go to ``classifier_solvers.md`` and ``classifier_solvers.json`` in a
new temporary folder, or in ``--out`` (``benchmarks/results/`` only from a
clean working tree; the run records ``git describe --dirty``).
"""

import argparse
import json
import os
import platform
import sys
import time
import warnings
from itertools import product
from pathlib import Path

import numpy as np
import sklearn
from sklearn.base import clone
from sklearn.datasets import load_breast_cancer, load_iris, load_wine, make_classification
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, log_loss
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import sklearn_cosmoe
from sklearn_cosmoe import CosineMoEClassifier

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import git_describe, output_folder  # noqa: E402

REFERENCE = "LogisticRegression"
SOLVERS = ("gauss-newton", "lbfgs")
GRID = {"temperature": [1.0, 0.1], "alpha": [1e-4, 1e-2]}
ROUTERS = ("perturbed_cosine", "cosine", "linear")
TOP_K = (None, 2)


def log(*args):
    print(*args, flush=True)


def moe(solver):
    return f"MoE {solver}"


def models():
    """name -> (pipeline, grid)."""
    out = {REFERENCE: (make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000)),
                       {"logisticregression__C": [0.01, 0.1, 1.0, 10.0]})}
    for solver in SOLVERS:
        out[moe(solver)] = (
            make_pipeline(StandardScaler(),
                          CosineMoEClassifier(solver=solver, random_state=0)),
            {f"cosinemoeclassifier__{key}": values for key, values in GRID.items()})
    return out


def evaluate(model, grid, X, y, outer, inner):
    """Nested CV of one model: per outer fold its scores, times and fit state."""
    rows = []
    for train, test in outer.split(X, y):
        search = GridSearchCV(clone(model), grid, cv=inner, scoring="neg_log_loss",
                              n_jobs=1)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            search.fit(X[train], y[train])
        proba = search.predict_proba(X[test])
        fitted = search.best_estimator_[-1]
        times = np.r_[search.cv_results_["mean_fit_time"], search.refit_time_]
        rows.append({
            "log_loss": log_loss(y[test], proba, labels=search.classes_),
            "accuracy": accuracy_score(y[test], search.classes_[proba.argmax(axis=1)]),
            "fit_time": float(np.mean(times)),
            "n_iter": int(np.max(fitted.n_iter_)),
            "converged": bool(getattr(fitted, "converged_", True)),
            "stationarity": float(getattr(fitted, "stationarity_", np.nan)),
            "convergence_warnings": sum(issubclass(w.category, ConvergenceWarning)
                                        for w in caught),
            "chosen": {key.split("__")[-1]: value
                       for key, value in search.best_params_.items()}})
    return {key: [row[key] for row in rows] for key in rows[0]}


def sem(values):
    values = np.asarray(values, dtype=float)
    return float(values.std(ddof=1) / np.sqrt(values.size))


def verdict(row, name):
    diff = np.asarray(row[name]["log_loss"]) - np.asarray(row[REFERENCE]["log_loss"])
    return {"diff": float(diff.mean()), "se": sem(diff),
            "within": bool(diff.mean() <= sem(diff))}


def certification_data():
    """name -> standardized (X, y)."""
    out = {}
    for name, load in (("breast_cancer", load_breast_cancer), ("wine", load_wine),
                       ("iris", load_iris)):
        X, y = load(return_X_y=True)
        out[name] = (StandardScaler().fit_transform(X), y)
    for sep in (1.0, 0.5):
        X, y = make_classification(2000, 10, n_informative=10, n_redundant=0, n_classes=3,
                                   n_clusters_per_class=2, class_sep=sep, random_state=0)
        out[f"classification sep={sep:g}"] = (StandardScaler().fit_transform(X), y)
    return out


def timed_fit(X, y, **params):
    clf = CosineMoEClassifier(random_state=0, **params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        t0 = time.perf_counter()
        clf.fit(X, y)
        seconds = time.perf_counter() - t0
    return {"converged": bool(clf.converged_), "n_iter": int(clf.n_iter_),
            "time": seconds, "loss": float(clf.loss_),
            "stationarity": float(clf.stationarity_)}


def certification(quick):
    cells = []
    data = certification_data()
    if quick:
        data = {name: data[name] for name in ("wine", "iris")}
    for name, (X, y) in data.items():
        cases = product(ROUTERS, TOP_K, GRID["temperature"], GRID["alpha"])
        for router, top_k, temperature, alpha in cases:
            cell = {"data": name, "router": router, "top_k": top_k,
                    "temperature": temperature, "alpha": alpha}
            for solver in SOLVERS:
                cell[solver] = timed_fit(X, y, router=router, solver=solver,
                                         top_k=top_k, temperature=temperature,
                                         alpha=alpha)
            cells.append(cell)
            g, b = cell["gauss-newton"], cell["lbfgs"]
            log(f"  {name} {router} top_k={top_k} T={temperature} alpha={alpha}: newton "
                f"{'converged' if g['converged'] else 'NOT converged'} in "
                f"{g['n_iter']} it, {g['time']:.2f} s, objective {g['loss']:.6g}; "
                f"lbfgs {b['n_iter']} it, {b['time']:.2f} s, {b['loss']:.6g}")
    sizes = []
    X, y = data.get("breast_cancer", data["wine"])
    for k in ((2, 4) if quick else (2, 4, 6, 8)):
        result = timed_fit(X, y, n_experts=k, solver="gauss-newton")
        n_classes = np.unique(y).size
        result.update(n_experts=k, n_parameters=k * (X.shape[1] + 1) * (n_classes + 1))
        sizes.append(result)
        log(f"  {k} experts ({result['n_parameters']} parameters): "
            f"{'converged' if result['converged'] else 'NOT converged'} in "
            f"{result['n_iter']} it, {result['time']:.2f} s")
    return cells, sizes


def _mean_se(values, digits=4):
    return f"{np.mean(values):.{digits}f} ± {sem(values):.{digits}f}"


def write_markdown(report, path):
    names = report["models"]
    L = ["# Classifier solvers benchmark", "",
         f"Command: `{report['command']}`  ",
         f"Machine: {report['machine']}  ",
         f"Versions: {report['versions']}  ",
         f"Protocol: {report['protocol']}  ",
         f"Total run time: {report['total_time']:.0f} s", "",
         f"## Goal: log-loss within one standard error of {REFERENCE}", "",
         "Difference = model - LogisticRegression, mean ± standard error of the per-fold "
         "difference over the outer folds; met when the mean is at most one standard "
         "error.", "", "| data | model | log-loss difference | met |", "|---|---|---|---|"]
    for name, row in report["results"].items():
        for m in names[1:]:
            v = row["verdict"][m]
            L.append(f"| {name} | {m} | {v['diff']:+.4f} ± {v['se']:.4f} | "
                     f"{'yes' if v['within'] else '**no**'} |")
    L += ["", "## Scores, time and fit state (outer folds: mean ± standard error)", "",
          "Fit time: mean seconds of one fit (every fit of the grid search and the "
          "refit). Iterations, converged and stationarity: the refitted model of each "
          "outer fold (LogisticRegression's lbfgs iterations). Warnings: "
          "ConvergenceWarnings in each fold's whole search.", "",
          "| data | model | log-loss | accuracy | fit time (s) | iterations | converged "
          "| stationarity | warnings | chosen |", "|---|---|---|---|---|---|---|---|---|---|"]
    for name, row in report["results"].items():
        for m in names:
            r = row[m]
            stat = "/".join("nan" if np.isnan(s) else f"{s:.1e}" for s in r["stationarity"])
            chosen = "; ".join(",".join(f"{k}={v}" for k, v in c.items()) for c in r["chosen"])
            L.append(f"| {name} | {m} | {_mean_se(r['log_loss'])} | "
                     f"{_mean_se(r['accuracy'])} | {np.mean(r['fit_time']):.3f} | "
                     f"{'/'.join(map(str, r['n_iter']))} | "
                     f"{sum(r['converged'])}/{len(r['converged'])} | {stat} | "
                     f"{sum(r['convergence_warnings'])} | {chosen} |")
    L += ["", "## Certification on whole data sets (default max_iter and tol)", "",
          "| data | router | top_k | temperature | alpha | newton converged "
          "| newton iterations | newton time (s) | newton objective | lbfgs converged "
          "| lbfgs iterations | lbfgs time (s) | lbfgs objective |",
          "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for c in report["certification"]:
        g, b = c["gauss-newton"], c["lbfgs"]
        L.append(f"| {c['data']} | {c['router']} | {c['top_k']} | {c['temperature']} | "
                 f"{c['alpha']} | "
                 f"{g['converged']} | {g['n_iter']} | {g['time']:.2f} | {g['loss']:.6g} | "
                 f"{b['converged']} | {b['n_iter']} | {b['time']:.2f} | {b['loss']:.6g} |")
    cert = report["certification"]
    L += ["", f"Newton fits certified: {sum(c['gauss-newton']['converged'] for c in cert)}"
              f" of {len(cert)}.", "",
          "## Newton fits by number of parameters (breast_cancer, defaults)", "",
          "| experts | parameters | converged | iterations | time (s) |", "|---|---|---|---|---|"]
    for s in report["sizes"]:
        L.append(f"| {s['n_experts']} | {s['n_parameters']} | {s['converged']} | "
                 f"{s['n_iter']} | {s['time']:.2f} |")
    path.write_text("\n".join(L) + "\n")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 3 outer and 2 inner folds, fewer cells")
    parser.add_argument("--out", type=Path, default=None,
                        help="output folder (default: a new temporary folder); "
                             "benchmarks/results only from a clean working tree")
    args = parser.parse_args(argv)
    describe = git_describe()
    args.out = output_folder(args.out, prefix="bench_classifier_solvers_")
    n_folds, n_inner = (3, 2) if args.quick else (5, 3)
    outer = StratifiedKFold(n_folds, shuffle=True, random_state=0)
    inner = StratifiedKFold(n_inner, shuffle=True, random_state=1)
    candidates = models()
    command = ("python benchmarks/bench_classifier_solvers.py "
               + " ".join(sys.argv[1:] if argv is None else argv)).strip()
    report = {
        "command": command, "git_describe": describe,
        "machine": (f"{platform.machine()}, {os.cpu_count()} cores; load average at start "
                    f"{os.getloadavg()[0]:.1f}"),
        "versions": (f"sklearn_cosmoe {sklearn_cosmoe.__version__} (git describe --dirty: "
                     f"{describe}), scikit-learn {sklearn.__version__}, numpy "
                     f"{np.__version__}, python {platform.python_version()}"),
        "protocol": (f"outer StratifiedKFold({n_folds}, shuffled, seed 0); in each training "
                     f"fold GridSearchCV over 4 candidates, inner StratifiedKFold({n_inner}, "
                     "shuffled, seed 1), selected by log-loss, refit on the training fold; "
                     "LogisticRegression C in [0.01, 0.1, 1, 10]; CosineMoEClassifier "
                     f"temperature {GRID['temperature']} x alpha {GRID['alpha']}, "
                     "random_state=0, other parameters at their defaults. StandardScaler "
                     "in front of every model."),
        "models": list(candidates), "results": {},
    }
    keys = ("command", "machine", "versions", "protocol")
    log("\n".join(f"# {report[key]}" for key in keys))
    t_start = time.perf_counter()
    for name, load in (("breast_cancer", load_breast_cancer), ("wine", load_wine)):
        X, y = load(return_X_y=True)
        log(f"\n== {name} (n={len(y)}, d={X.shape[1]}, {np.unique(y).size} classes)")
        row = {}
        for m, (model, grid) in candidates.items():
            row[m] = evaluate(model, grid, X, y, outer, inner)
            log(f"  {m:20s} log-loss {_mean_se(row[m]['log_loss'])}, accuracy "
                f"{_mean_se(row[m]['accuracy'])}, {np.mean(row[m]['fit_time']):.3f} s/fit, "
                f"iterations {row[m]['n_iter']}, converged {row[m]['converged']}")
        row["verdict"] = {m: verdict(row, m) for m in candidates if m != REFERENCE}
        for m, v in row["verdict"].items():
            log(f"  {m} - {REFERENCE}: log-loss {v['diff']:+.4f} ± {v['se']:.4f} "
                f"({'within one standard error' if v['within'] else 'NOT within'})")
        report["results"][name] = row
    log("\n== certification")
    report["certification"], report["sizes"] = certification(args.quick)
    report["total_time"] = time.perf_counter() - t_start
    report["machine"] += f", at end {os.getloadavg()[0]:.1f}"
    write_markdown(report, args.out / "classifier_solvers.md")
    with open(args.out / "classifier_solvers.json", "w") as fh:
        json.dump(report, fh, indent=1, default=float)
    log(f"\nwrote {args.out / 'classifier_solvers.md'} ({report['total_time']:.0f} s in all)")


if __name__ == "__main__":
    main()

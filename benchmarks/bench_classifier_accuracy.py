"""Accuracy of CosineMoEClassifier against the usual tabular classifiers.

One process, one command::

    python benchmarks/bench_classifier_accuracy.py           # full run
    python benchmarks/bench_classifier_accuracy.py --quick   # smoke run: 3 + 2 folds, small data

Protocol
--------
* Scores: accuracy and log-loss on the test folds of an outer
  ``StratifiedKFold(5, shuffle=True, random_state=0)``: mean and standard
  error over the folds, and the fit time per fold.
* Tuning is nested: inside each outer training fold every model is tuned by a
  ``GridSearchCV`` over 4 candidates (inner ``StratifiedKFold(3,
  shuffle=True, random_state=1)``, selection by log-loss, a proper scoring
  rule that ties less often than accuracy on small data) and refitted on
  the whole training fold.
* Models, each a ``Pipeline`` with a ``StandardScaler`` in front:
  ``LogisticRegression`` (``C``), ``MLPClassifier`` (width and ``alpha``;
  L-BFGS, scikit-learn's advice for small data sets, where Adam with early
  stopping lost 6 to 23 points of accuracy on iris and wine in trials),
  ``HistGradientBoostingClassifier`` (``learning_rate`` and
  ``max_leaf_nodes``, ``max_iter=300`` with early stopping) and
  ``CosineMoEClassifier`` (``temperature`` and ``alpha`` at the default
  ``n_experts=4`` and ``n_init=1``).
* Data: scikit-learn's breast_cancer, wine, digits and iris, and two
  ``make_classification`` sets (n = 2000, 10 informative features, 3
  classes of 2 clusters each, ``class_sep`` 1 and 0.5).
* *Matches LogisticRegression* means: the classifier's mean accuracy is at
  least LogisticRegression's minus one standard error of the per-fold
  difference (paired over the same outer folds); log-loss likewise (at most
  LogisticRegression's plus one standard error).

Results go to ``classifier_accuracy.md`` and ``classifier_accuracy.json`` in
a new temporary folder, or in ``--out``; the committed
``benchmarks/results/`` only from a clean working tree.
"""

import argparse
import json
import os
import platform
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import sklearn
from sklearn.base import clone
from sklearn.datasets import (load_breast_cancer, load_digits, load_iris, load_wine,
                              make_classification)
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, log_loss
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import sklearn_cosmoe
from sklearn_cosmoe import CosineMoEClassifier

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import git_describe, output_folder  # noqa: E402

REFERENCE = "LogisticRegression"
MOE = "CosineMoEClassifier"


def log(*args):
    print(*args, flush=True)


def datasets(quick):
    """name -> (X, y, description)."""
    out = {}
    for name, load in (("breast_cancer", load_breast_cancer), ("wine", load_wine),
                       ("digits", load_digits), ("iris", load_iris)):
        X, y = load(return_X_y=True)
        if quick and name == "digits":
            X, y = X[:600], y[:600]
        out[name] = (X, y, f"scikit-learn, n={len(y)}, d={X.shape[1]}, "
                           f"{np.unique(y).size} classes")
    n = 600 if quick else 2000
    for sep in (1.0, 0.5):
        X, y = make_classification(n, 10, n_informative=10, n_redundant=0, n_classes=3,
                                   n_clusters_per_class=2, class_sep=sep, random_state=0)
        out[f"classification sep={sep:g}"] = (
            X, y, f"make_classification, n={n}, d=10 (all informative), 3 classes of 2 "
                  f"clusters, class_sep={sep:g}, random_state=0")
    return out


def models(quick):
    """name -> (pipeline, grid of 4 candidates)."""
    max_iter = 200 if quick else 500
    return {
        REFERENCE: (make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000)),
                    {"logisticregression__C": [0.01, 0.1, 1.0, 10.0]}),
        "MLPClassifier": (
            make_pipeline(StandardScaler(), MLPClassifier(
                solver="lbfgs", max_iter=max_iter, random_state=0)),
            {"mlpclassifier__hidden_layer_sizes": [(32,), (64,)],
             "mlpclassifier__alpha": [1e-2, 1.0]}),
        "HistGradientBoosting": (
            make_pipeline(StandardScaler(), HistGradientBoostingClassifier(
                max_iter=300, early_stopping=True, random_state=0)),
            {"histgradientboostingclassifier__learning_rate": [0.1, 0.3],
             "histgradientboostingclassifier__max_leaf_nodes": [7, 31]}),
        MOE: (make_pipeline(StandardScaler(), CosineMoEClassifier(random_state=0)),
              {"cosinemoeclassifier__temperature": [1.0, 0.1],
               "cosinemoeclassifier__alpha": [1e-4, 1e-2]}),
    }


def evaluate(model, grid, X, y, outer, inner):
    """Nested CV: per outer fold the tuned model's test accuracy and log-loss."""
    acc, loss, fit_time, chosen, warned = [], [], [], [], {}
    for train, test in outer.split(X, y):
        search = GridSearchCV(clone(model), grid, cv=inner, scoring="neg_log_loss",
                              n_jobs=1)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            t0 = time.perf_counter()
            search.fit(X[train], y[train])
            fit_time.append(time.perf_counter() - t0)
            proba = search.predict_proba(X[test])
        for w in caught:
            warned[w.category.__name__] = warned.get(w.category.__name__, 0) + 1
        classes = search.classes_
        acc.append(accuracy_score(y[test], classes[np.argmax(proba, axis=1)]))
        loss.append(log_loss(y[test], proba, labels=classes))
        chosen.append({key.split("__")[-1]: value
                       for key, value in search.best_params_.items()})
    return {"accuracy": acc, "log_loss": loss, "fit_time": fit_time, "chosen": chosen,
            "warnings": warned}


def sem(values):
    values = np.asarray(values, dtype=float)
    return float(values.std(ddof=1) / np.sqrt(values.size))


def verdicts(row):
    """Does the classifier match LogisticRegression on this data set (module docstring)?"""
    out = {}
    for metric, sign in (("accuracy", 1.0), ("log_loss", -1.0)):
        diff = sign * (np.asarray(row[MOE][metric]) - np.asarray(row[REFERENCE][metric]))
        out[metric] = {"diff": float(sign * diff.mean()), "se": sem(diff),
                       "matches": bool(diff.mean() >= -sem(diff))}
    return out


def _cell(values, best, digits=4):
    mean = np.mean(values)
    text = f"{mean:.{digits}f} ± {sem(values):.{digits}f}"
    return f"**{text}**" if mean == best else text


def write_markdown(report, path):
    names = report["models"]
    n_folds = report["n_folds"]
    L = ["# Classifier accuracy benchmark", "",
         f"Command: `{report['command']}`  ",
         f"Machine: {report['machine']}  ",
         f"Versions: {report['versions']}  ",
         f"Protocol: {report['protocol']}  ",
         f"Total run time: {report['total_time']:.0f} s", "",
         f"## Goal: {MOE} matches {REFERENCE} everywhere", "",
         "Matches: mean accuracy at least LogisticRegression's minus one standard error "
         "of the per-fold difference (paired, same outer folds); log-loss likewise "
         "(at most LogisticRegression's plus one standard error). Difference = "
         "CosineMoEClassifier - LogisticRegression, mean ± standard error over the "
         "outer folds.", "",
         "| data | accuracy difference | matches | log-loss difference | matches |",
         "|---|---|---|---|---|"]
    for name, row in report["results"].items():
        v = row["verdict"]
        L.append(f"| {name} | {v['accuracy']['diff']:+.4f} ± {v['accuracy']['se']:.4f} | "
                 f"{'yes' if v['accuracy']['matches'] else '**no**'} | "
                 f"{v['log_loss']['diff']:+.4f} ± {v['log_loss']['se']:.4f} | "
                 f"{'yes' if v['log_loss']['matches'] else '**no**'} |")
    for metric, title, pick in (("accuracy", "Test accuracy", max),
                                ("log_loss", "Test log-loss", min)):
        L += ["", f"## {title} ({n_folds}-fold outer CV, mean ± standard error)", "",
              "Bold: best mean on the row.", "",
              "| data | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
        for name, row in report["results"].items():
            best = pick(np.mean(row[m][metric]) for m in names)
            L.append(f"| {name} | " + " | ".join(_cell(row[m][metric], best)
                                                 for m in names) + " |")
    L += ["", "## Fit time per outer fold (s): grid search of 4 candidates + refit", "",
          "| data | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for name, row in report["results"].items():
        L.append(f"| {name} | " + " | ".join(f"{np.mean(row[m]['fit_time']):.2f}"
                                             for m in names) + " |")
    L += ["", "## Hyperparameters chosen (per outer fold) and warnings", ""]
    for name, row in report["results"].items():
        parts = []
        for m in names:
            chosen = row[m]["chosen"]
            summary = ", ".join(f"{key}: " + "/".join(str(c[key]) for c in chosen)
                                for key in chosen[0])
            warned = ", ".join(f"{count} {cat}" for cat, count in row[m]["warnings"].items())
            parts.append(f"{m} ({summary}{'; warnings: ' + warned if warned else ''})")
        L.append(f"* **{name}**: " + "; ".join(parts))
    L += ["", "## Data sets", ""]
    L += [f"* **{name}**: {desc}" for name, desc in report["data"].items()]
    path.write_text("\n".join(L) + "\n")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 3 outer and 2 inner folds, smaller data")
    parser.add_argument("--only", nargs="*", default=None,
                        help="run only the data sets whose name contains one of these")
    parser.add_argument("--threads", type=int, default=None,
                        help="threads for every library (default: all cores)")
    parser.add_argument("--out", type=Path, default=None,
                        help="output folder (default: a new temporary folder); "
                             "benchmarks/results only from a clean working tree")
    args = parser.parse_args(argv)
    describe = git_describe()
    args.out = output_folder(args.out, prefix="bench_classifier_accuracy_")
    threads = args.threads or os.cpu_count()
    if args.threads:
        from threadpoolctl import threadpool_limits

        threadpool_limits(args.threads)

    n_folds, n_inner = (3, 2) if args.quick else (5, 3)
    outer = StratifiedKFold(n_folds, shuffle=True, random_state=0)
    inner = StratifiedKFold(n_inner, shuffle=True, random_state=1)
    data = datasets(args.quick)
    if args.only:
        data = {k: v for k, v in data.items() if any(s in k for s in args.only)}
    candidates = models(args.quick)

    command = ("python benchmarks/bench_classifier_accuracy.py "
               + " ".join(sys.argv[1:] if argv is None else argv)).strip()
    report = {
        "command": command, "git_describe": describe, "n_folds": n_folds,
        "machine": (f"{platform.machine()}, {os.cpu_count()} cores, threads {threads}; "
                    f"load average at start {os.getloadavg()[0]:.1f}"),
        "versions": (f"sklearn_cosmoe {sklearn_cosmoe.__version__} (git describe --dirty: "
                     f"{describe}), scikit-learn {sklearn.__version__}, numpy "
                     f"{np.__version__}, python {platform.python_version()}"),
        "protocol": (f"outer StratifiedKFold({n_folds}, shuffled, seed 0); in each training "
                     f"fold GridSearchCV over 4 candidates, inner StratifiedKFold({n_inner}, "
                     "shuffled, seed 1), selected by log-loss, refit on the training fold. "
                     "Grids: " + "; ".join(
                         f"{m} " + " x ".join(f"{k.split('__')[-1]} {v}" for k, v in g.items())
                         for m, (_, g) in candidates.items())
                     + ". StandardScaler in front of every model."),
        "models": list(candidates),
        "data": {name: desc for name, (_, _, desc) in data.items()},
        "results": {},
    }
    log("\n".join(f"# {report[key]}" for key in ("command", "machine", "versions",
                                                  "protocol")))
    t_start = time.perf_counter()
    for name, (X, y, desc) in data.items():
        log(f"\n== {name} ({desc})")
        row = {}
        for m, (model, grid) in candidates.items():
            row[m] = evaluate(model, grid, X, y, outer, inner)
            log(f"  {m:22s} accuracy {np.mean(row[m]['accuracy']):.4f} ± "
                f"{sem(row[m]['accuracy']):.4f}, log-loss {np.mean(row[m]['log_loss']):.4f}"
                f" ± {sem(row[m]['log_loss']):.4f}, fit {np.mean(row[m]['fit_time']):.2f} "
                "s/fold")
        row["verdict"] = verdicts(row)
        report["results"][name] = row
        v = row["verdict"]
        log(f"  {MOE} - {REFERENCE}: accuracy {v['accuracy']['diff']:+.4f} ± "
            f"{v['accuracy']['se']:.4f} ({'matches' if v['accuracy']['matches'] else 'MISS'})"
            f", log-loss {v['log_loss']['diff']:+.4f} ± {v['log_loss']['se']:.4f} "
            f"({'matches' if v['log_loss']['matches'] else 'MISS'})")
    report["total_time"] = time.perf_counter() - t_start
    report["machine"] += f", at end {os.getloadavg()[0]:.1f}"
    misses = [name for name, row in report["results"].items()
              if not row["verdict"]["accuracy"]["matches"]]
    log(f"\n== goal ({MOE} matches {REFERENCE} in accuracy on every data set): "
        + ("met" if not misses else "NOT met on " + ", ".join(misses)))
    write_markdown(report, args.out / "classifier_accuracy.md")
    with open(args.out / "classifier_accuracy.json", "w") as fh:
        json.dump(report, fh, indent=1, default=float)
    log(f"\nwrote {args.out / 'classifier_accuracy.md'} ({report['total_time']:.0f} s in all)")


if __name__ == "__main__":
    main()

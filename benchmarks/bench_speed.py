"""Speed of sklearn_cosmoe against what a user would otherwise write.

One process, one command; every ratio printed here was measured in this run::

    python benchmarks/bench_speed.py            # full run (n = 1e4, 1e5, 1e6)
    python benchmarks/bench_speed.py --quick    # a minute: n = 1e4 only, small budgets

Implementations of the *same* model and objective (perturbed cosine router,
``tau1 = tau2 = 1``, temperature 1, linear experts, dense gates, the
estimator's default ridge ``alpha`` on the expert coefficients, ``d = 10``):

(a) the package: ``sklearn_cosmoe._model.objective`` (numba, fused loss and
    gradient) driven by ``sklearn_cosmoe._solver.fit_least_squares`` (exact
    least squares for the experts alternating with L-BFGS-B);
(b) NumPy + scipy: :func:`_common.numpy_objective`, vectorised NumPy written
    again from the user guide (doc/user_guide/solver.rst, "The objective"),
    minimised by ``scipy.optimize.minimize``
    (L-BFGS-B, exact gradient);
(c) PyTorch float64 on the CPU (:func:`_common.torch_loss_fn`, autograd):
    full-batch Adam with a learning rate tuned on a grid, and
    ``torch.optim.LBFGS`` (strong Wolfe line search);
(d) in the race, scipy's L-BFGS-B and ``torch.optim.LBFGS`` on the package's
    objective: the drivers of (b) and (c) with the package's kernel, so that
    (b) / (d) and (c) / (d) are kernel-only ratios, apart from the end-to-end
    ratios against (a).

Sections: correctness of (b) and (c) against (a); time per loss+gradient
evaluation; time to reach the same training loss (the best loss any method
reached, plus 1 %) from the same random start and from each method's best
start; ``CosineMoERegressor.fit`` wall time, iterations, growth 1e5 -> 1e6
and peak memory; ``MLPRegressor`` with as many parameters; predict
throughput; scaling curves in n, d and k (a figure).

Results go to ``speed.md`` (tables), ``speed.json`` (raw) and ``speed_*.png``
(figures) in a new temporary folder, or in ``--out``.  The committed results
in ``benchmarks/results/`` are written only with ``--out benchmarks/results``
from a clean working tree, and record ``git describe --dirty``.
"""

import argparse
import json
import os
import platform
import sys
import time
import tracemalloc
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import scipy
import sklearn
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import r2_score
from sklearn.neural_network import MLPRegressor

import sklearn_cosmoe
from sklearn_cosmoe import CosineMoERegressor
from sklearn_cosmoe._model import objective

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (fmt_time, git_describe, log, make_model_data,  # noqa: E402
                     numpy_objective, output_folder, package_revision, time_call,
                     time_samples, timed_fit, torch_loss_fn)
from _race import (D, SPEC, best_start, race, race_data, race_line,  # noqa: E402
                   random_start, tune_adam)
from _speed_report import headline, plot_race, plot_scaling, write_report  # noqa: E402


# --------------------------------------------------------------------------
# sections
# --------------------------------------------------------------------------
def check_correctness():
    """(b) and (c) against the package's objective, every router, with weights."""
    import torch

    rows = []
    for router in ("perturbed_cosine", "cosine", "linear"):
        X, y, _, _, spec = make_model_data(3000, D, 4, router=router,
                                           temperature=0.5, seed=1)
        spec = replace(spec, alpha=1e-3)
        rng = np.random.default_rng(0)
        theta = rng.standard_normal(2 * 4 * D + 2 * 4)
        w = rng.uniform(0.5, 2.0, len(y))
        lp, gp = objective(theta, X, y, w, (4, D), spec)
        ln, gn = numpy_objective(theta, X, y, w, 4, spec)
        t = torch.tensor(theta, requires_grad=True)
        lt = torch_loss_fn(X, y, w, 4, spec)(t)
        lt.backward()
        scale = np.abs(gp).max()
        err = {"router": router,
               "numpy_loss": abs(ln - lp) / abs(lp),
               "numpy_grad": np.abs(gn - gp).max() / scale,
               "torch_loss": abs(lt.item() - lp) / abs(lp),
               "torch_grad": np.abs(t.grad.numpy() - gp).max() / scale}
        rows.append(err)
        log(f"  {router:17s} numpy: loss {err['numpy_loss']:.1e} grad {err['numpy_grad']:.1e}"
            f" | torch: loss {err['torch_loss']:.1e} grad {err['torch_grad']:.1e}")
    worst = max(max(v for key, v in r.items() if key != "router") for r in rows)
    if worst > 1e-10:
        raise SystemExit(f"implementations disagree (relative error {worst:.1e} > 1e-10)")
    log(f"  all agree: worst relative error {worst:.1e} (<= 1e-10)")
    return rows


def eval_times(n, k, d=D, *, with_numpy=True, with_torch=True, rounds=3, min_time=0.25):
    """Median time of one loss+gradient evaluation, each implementation.

    The implementations take turns: ``rounds`` rounds of one block of calls
    each (about ``min_time`` s), and the median is over all the calls of an
    implementation, so that a burst of load from outside on this shared
    machine falls on all of them alike.
    """
    import torch

    X, y, _, _, _ = make_model_data(n, d, k, seed=0)
    w = np.ones(n)
    theta = random_start(k, d)
    # the row norms depend on the data only: all three compute them once, as
    # a fit does (torch_loss_fn inside, the others here)
    x_norms = np.linalg.norm(X, axis=1)

    blocks = {"package": lambda: time_samples(
        lambda: objective(theta, X, y, w, (k, d), SPEC, x_norms), min_time=min_time)}
    if with_numpy:
        blocks["numpy"] = lambda: time_samples(
            lambda: numpy_objective(theta, X, y, w, k, SPEC, x_norms), min_time=min_time)
    if with_torch:
        loss_fn = torch_loss_fn(X, y, w, k, SPEC)
        t = torch.tensor(theta, requires_grad=True)

        def step():
            t.grad = None
            loss_fn(t).backward()
            return t.grad

        blocks["torch"] = lambda: time_samples(step, min_time=min_time)
    samples = {name: [] for name in blocks}
    for _ in range(rounds):
        for name, block in blocks.items():
            samples[name] += block()
    return {name: float(np.median(times)) for name, times in samples.items()}


def fit_estimator(n, k=4, d=D, seed=0, max_iter=1000):
    X, y, _, _, _ = make_model_data(n, d, k, seed=seed)
    reg = CosineMoERegressor(n_experts=k, random_state=0, max_iter=max_iter)
    elapsed = timed_fit(reg, X, y)
    return {"n": n, "d": d, "k": k, "time": elapsed, "n_iter": int(reg.n_iter_),
            "loss": float(reg.loss_), "converged": bool(reg.converged_),
            "time_per_iter": elapsed / max(reg.n_iter_, 1)}, reg, X


def _hwm_kib():
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM"):
                return int(line.split()[1])
    return None


def peak_memory(n, k=4):
    X, y, _, _, _ = make_model_data(n, D, k, seed=0)
    reg = CosineMoERegressor(n_experts=k, random_state=0)
    out = {"n": n, "X_bytes": X.nbytes}
    # resident set high-water mark (sees numba's own allocations too)
    try:
        rss0 = int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            reg.fit(X, y)
        out["rss_peak_extra"] = _hwm_kib() * 1024 - rss0
    except OSError:
        out["rss_peak_extra"] = None
    tracemalloc.start()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        reg.fit(X, y)
    out["tracemalloc_peak"] = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return out


def mlp_comparison(n, k=4, n_test=10**6):
    X, y, _, _, _ = make_model_data(n, D, k, seed=0)
    X_test, y_test, f_test, _, _ = make_model_data(n_test, D, k, seed=0, sample_seed=1)
    n_params = 2 * k * D + 2 * k
    hidden = max(1, round((n_params - 1) / (D + 2)))
    out = {"n": n, "n_test": n_test, "moe_params": n_params, "mlp_hidden": hidden,
           "mlp_params": hidden * (D + 2) + 1,
           "noise_limit_r2": r2_score(y_test, f_test)}
    models = {"CosineMoERegressor": CosineMoERegressor(n_experts=k, random_state=0),
              f"MLPRegressor(({hidden},))": MLPRegressor(hidden_layer_sizes=(hidden,),
                                                         random_state=0, max_iter=200)}
    for name, model in models.items():
        fit_time = timed_fit(model, X, y)
        model.predict(X_test[:1000])
        t_pred = time_call(lambda m=model: m.predict(X_test), min_time=1.0, warmup=0,
                           max_repeat=5)
        out[name] = {"fit_time": fit_time, "test_r2": r2_score(y_test, model.predict(X_test)),
                     "predict_rows_per_s": n_test / t_pred,
                     "n_iter": int(model.n_iter_)}
    return out


def scaling(ns, ds, ks, *, base_n=100_000, with_baselines=True):
    rows = []
    for axis, values in (("n", ns), ("d", ds), ("k", ks)):
        for v in values:
            n, d, k = base_n, D, 4
            if axis == "n":
                n = v
            elif axis == "d":
                d = v
            else:
                k = v
            t = eval_times(n, k, d, with_numpy=with_baselines, with_torch=with_baselines,
                           rounds=2, min_time=0.15)
            fit = fit_estimator(n, k, d)[0]
            row = {"axis": axis, "n": n, "d": d, "k": k, **{f"eval_{m}": s for m, s in t.items()},
                   "fit_time": fit["time"], "fit_iter": fit["n_iter"],
                   "fit_time_per_iter": fit["time_per_iter"]}
            rows.append(row)
            log(f"  {axis}={v:>8}: eval " + ", ".join(f"{m} {fmt_time(s)}" for m, s in t.items())
                + f"; fit {fmt_time(fit['time'])} ({fit['n_iter']} it)")
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="n = 1e4 only, k = 4, small budgets (about a minute)")
    parser.add_argument("--sizes", type=float, nargs="+", default=None,
                        help="n for the evaluation timings and the race (default 1e4 1e5 1e6)")
    parser.add_argument("--ks", type=int, nargs="+", default=None,
                        help="numbers of experts (default 4 8)")
    parser.add_argument("--budget", type=float, nargs="+", default=None,
                        help="time budget (s) per run for each size (default 8 20 30)")
    parser.add_argument("--threads", type=int, default=None,
                        help="threads for numba and torch (default: all cores)")
    parser.add_argument("--skip", nargs="*", default=[],
                        choices=["race", "fit", "mlp", "scaling"])
    parser.add_argument("--out", type=Path, default=None,
                        help="output folder (default: a new temporary folder); "
                             "benchmarks/results only from a clean working tree")
    parser.add_argument("--from-json", type=Path, default=None,
                        help="only rewrite speed.md from a speed.json of an earlier run")
    args = parser.parse_args(argv)
    args.out = output_folder(args.out, prefix="bench_speed_")
    if args.from_json:
        with open(args.from_json) as fh:
            report = json.load(fh)
        write_report(report, args.out / "speed.md")
        log(f"wrote {args.out / 'speed.md'} from {args.from_json}")
        return

    import numba
    import torch

    torch.set_default_dtype(torch.float64)
    threads = args.threads or os.cpu_count()
    torch.set_num_threads(threads)
    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    from threadpoolctl import threadpool_limits
    threadpool_limits(threads)      # BLAS of the NumPy baseline, OpenMP of the MLP

    if args.quick:
        sizes = [int(s) for s in (args.sizes or [1e4])]
        ks = args.ks or [4]
        budgets = args.budget or [3.0] * len(sizes)
        scaling_axes = ([1_000, 10_000], [2, 10], [2, 4])
        scaling_n = 10_000
        fit_sizes = [10_000]
        mlp_n = 10_000
    else:
        sizes = [int(s) for s in (args.sizes or [1e4, 1e5, 1e6])]
        ks = args.ks or [4, 8]
        default_budget = {10_000: 8.0, 100_000: 20.0, 1_000_000: 30.0}
        budgets = args.budget or [default_budget.get(n, 20.0) for n in sizes]
        scaling_axes = ([1_000, 10_000, 100_000, 1_000_000], [2, 5, 10, 20, 50],
                        [2, 4, 8, 16])
        scaling_n = 100_000
        fit_sizes = [100_000, 1_000_000]
        mlp_n = 100_000
    if len(budgets) == 1:
        budgets = budgets * len(sizes)
    args.out.mkdir(parents=True, exist_ok=True)

    command = "python benchmarks/bench_speed.py " + " ".join(sys.argv[1:] if argv is None else argv)
    machine = (f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores; "
               f"threads: numba {numba.get_num_threads()}, torch {torch.get_num_threads()}, "
               f"BLAS {threads}; load average at start {os.getloadavg()[0]:.1f}")
    versions = (f"sklearn_cosmoe {sklearn_cosmoe.__version__} (git {package_revision()}; "
                f"git describe --dirty: {git_describe()}), numpy {np.__version__}, "
                f"scipy {scipy.__version__}, scikit-learn {sklearn.__version__}, "
                f"numba {numba.__version__}, torch {torch.__version__}, "
                f"python {platform.python_version()}")
    log(f"# {command}\n# {machine}\n# {versions}")
    t_start = time.perf_counter()
    report = {"command": command.strip(), "machine": machine, "versions": versions,
              "eval": [], "race": [], "adam_lr": {}, "fit": {}, "memory": [],
              "mlp": {}, "scaling": []}

    # compile the numba kernels (cache=True: usually read from disk)
    Xw, yw, _, _, _ = make_model_data(2000, D, 4, seed=0)
    fit_estimator(2000)
    objective(random_start(4, D), Xw, yw, np.ones(2000), (4, D), SPEC)

    log("\n== correctness: NumPy and torch against the package's objective")
    report["correctness"] = check_correctness()

    log("\n== one loss+gradient evaluation (median wall time)")
    for n in sizes:
        for k in ks:
            t = eval_times(n, k)
            report["eval"].append({"n": n, "k": k, **t})
            log(f"  n={n:.0e} k={k}: package {fmt_time(t['package'])}, NumPy "
                f"{fmt_time(t['numpy'])} ({t['numpy'] / t['package']:.1f}x), torch "
                f"{fmt_time(t['torch'])} ({t['torch'] / t['package']:.1f}x)")

    if "race" not in args.skip:
        log("\n== time to the same training loss (best any reached + 1 %)")
        tune_n, tune_budget = sizes[0], (1.0 if args.quick else 3.0)
        for k in ks:
            for start in ("random", "best"):
                X, y, w = race_data(tune_n, k)
                theta0 = random_start(k, D) if start == "random" else best_start(X, y, w, k)
                lr, losses = tune_adam(X, y, w, k, theta0, tune_budget)
                report["adam_lr"][(k, start)] = lr
                log(f"  Adam lr for k={k}, {start} start (n={tune_n:.0e}, {tune_budget:.0f} s "
                    f"each): {lr}  (best losses " + ", ".join(
                        f"{a}: {b:.5g}" for a, b in losses.items()) + ")")
        for n, budget in zip(sizes, budgets):
            for k in ks:
                for start in ("random", "best"):
                    res = race(n, k, start, budget, report["adam_lr"][(k, start)])
                    report["race"].append(res)
                    log(f"  n={n:.0e} k={k} {start:6s} target {res['target']:.6g}: "
                        + race_line(res))
        pick = [r for r in report["race"] if r["start"] == "random"]
        pick = [r for r in pick if r["n"] == 100_000 and r["k"] == 4] or pick
        if pick:
            plot_race(pick[0], args.out / "speed_race.png")
            report["race_figure"] = "speed_race.png"

    if "fit" not in args.skip:
        log("\n== CosineMoERegressor.fit (k = 4, model data, default settings)")
        runs = []
        for n in fit_sizes:
            r = fit_estimator(n)[0]
            runs.append(r)
            log(f"  n={n:.0e}: {r['time']:.2f} s, {r['n_iter']} iterations "
                f"({fmt_time(r['time_per_iter'])} each), loss {r['loss']:.6g}, "
                f"converged {r['converged']}")
        report["fit"] = {"runs": runs}
        if len(runs) == 2:
            report["fit"]["growth"] = runs[1]["time"] / runs[0]["time"]
            report["fit"]["growth_per_iter"] = runs[1]["time_per_iter"] / runs[0]["time_per_iter"]
            log(f"  growth {runs[0]['n']:.0e} -> {runs[1]['n']:.0e}: "
                f"{report['fit']['growth']:.1f}x wall, {report['fit']['growth_per_iter']:.1f}x "
                "per iteration (goal <= 11x)")
        for n in fit_sizes[:1]:
            m = peak_memory(n)
            report["memory"].append(m)
            log(f"  peak memory of fit at n={n:.0e}: tracemalloc "
                f"{m['tracemalloc_peak'] / m['X_bytes']:.2f}x X, resident "
                + ("n/a" if m["rss_peak_extra"] is None
                   else f"{m['rss_peak_extra'] / m['X_bytes']:.2f}x X") + " (goal <= 3x)")

    if "mlp" not in args.skip:
        log(f"\n== against MLPRegressor with as many parameters (n = {mlp_n:.0e})")
        mlp = mlp_comparison(mlp_n, n_test=10 * mlp_n)
        report["mlp"] = mlp
        for name, r in mlp.items():
            if isinstance(r, dict):
                log(f"  {name}: fit {fmt_time(r['fit_time'])} ({r['n_iter']} it), "
                    f"test R² {r['test_r2']:.4f}, predict {r['predict_rows_per_s']:.3g} rows/s")
        log(f"  noise-limit R² {mlp['noise_limit_r2']:.4f}")

    if "scaling" not in args.skip:
        log("\n== scaling (per-evaluation time and fit time against n, d, k)")
        report["scaling"] = scaling(*scaling_axes, base_n=scaling_n)
        plot_scaling(report["scaling"], args.out / "speed_scaling.png")

    report["total_time"] = time.perf_counter() - t_start
    report["machine"] += f", at end {os.getloadavg()[0]:.1f}"
    log("\n== headline")
    for line in headline(report):
        log("  " + line)
    write_report(report, args.out / "speed.md")
    raw = dict(report, adam_lr={f"k={k} {s}": v for (k, s), v in report["adam_lr"].items()})
    with open(args.out / "speed.json", "w") as fh:
        json.dump(raw, fh, default=float)
    log(f"\nwrote {args.out / 'speed.md'} ({report['total_time']:.0f} s in all)")


if __name__ == "__main__":
    main()

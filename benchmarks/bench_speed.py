"""Speed of sklearn_cosmoe against what a user would otherwise write (issue 5).

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
    ``torch.optim.LBFGS`` (strong Wolfe line search).

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
from scipy.optimize import minimize
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import r2_score
from sklearn.neural_network import MLPRegressor
from sklearn.utils import check_random_state
from threadpoolctl import threadpool_limits

import sklearn_cosmoe
from sklearn_cosmoe import CosineMoERegressor, _objective
from sklearn_cosmoe._model import MoEParams, MoESpec, objective
from sklearn_cosmoe._objective import ArrayObjective
from sklearn_cosmoe._solver import fit_least_squares, initial_params

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (fmt_time, git_describe, make_model_data,  # noqa: E402
                     numpy_objective, output_folder, package_revision, time_call,
                     time_samples, torch_loss_fn)

D = 10
# the estimator's defaults (ridge alpha included)
SPEC = MoESpec(router="perturbed_cosine", tau1=1.0, tau2=1.0, temperature=1.0,
               alpha=CosineMoERegressor().alpha)
ADAM_LRS = (0.3, 0.1, 0.03, 0.01, 0.003)
REL_TARGET = 0.01          # target = best loss reached by any method * (1 + 1 %)
KERNEL_ONLY = "package kernel + scipy L-BFGS-B"
RACE_RUNS = 3              # every method runs this many times per race cell; its
#                            time to the target is the median over all its runs,
#                            a run that misses the target counting as infinite
STALL_EVALS = 200          # a baseline stops when its best loss has not improved
STALL_REL = 1e-7           # by this (relative) over this many evaluations: far
                           # below the 1 % of the target, and it saves the budget


def log(*args):
    print(*args, flush=True)


# --------------------------------------------------------------------------
# traces of the loss against wall time
# --------------------------------------------------------------------------
class _Stop(Exception):
    """Raised from inside an objective to end a run (budget, stall or target)."""


class Trace:
    """Loss of every evaluation against wall time since :meth:`start`."""

    def __init__(self, budget, stop_at=-np.inf):
        self.budget = budget
        self.stop_at = stop_at
        self.times, self.losses = [], []
        self.best = np.inf
        self.best_at = 0
        self.status = "converged"

    def start(self):
        self.t0 = time.perf_counter()

    def record(self, loss, stall=True):
        t = time.perf_counter() - self.t0
        loss = float(loss)
        self.times.append(t)
        self.losses.append(loss)
        if loss < self.best * (1 - STALL_REL):
            self.best, self.best_at = loss, len(self.losses)
        elif loss < self.best:
            self.best = loss
        if t > self.budget:
            self.status = "budget"
            raise _Stop
        if loss <= self.stop_at:
            self.status = "target"
            raise _Stop
        if stall and len(self.losses) - self.best_at > STALL_EVALS:
            self.status = "stalled"
            raise _Stop

    def time_to(self, target):
        """(time, evaluations) when a loss <= target was first evaluated, or None."""
        hits = np.flatnonzero(np.asarray(self.losses) <= target)
        if hits.size == 0:
            return None, None
        return self.times[hits[0]], int(hits[0]) + 1

    def summary(self):
        return {"status": self.status, "best_loss": self.best,
                "evals": len(self.losses),
                "time": self.times[-1] if self.times else 0.0}


def run_package(X, y, w, k, theta0, budget, stop_at=-np.inf):
    """The package's solver; ``theta0=None`` uses its data-driven start (timed).

    It stops at the budget, at convergence or at the first loss <= ``stop_at``.
    """
    trace = Trace(budget, stop_at)
    original = _objective.objective

    def traced(theta, *args):
        out = original(theta, *args)
        trace.record(out[0], stall=False)
        return out

    _objective.objective = traced
    try:
        trace.start()
        data = ArrayObjective(X, y, w)
        if theta0 is None:  # as CosineMoERegressor.fit does
            params0 = initial_params(data, SPEC, k, check_random_state(0))
        else:
            params0 = MoEParams.from_vector(theta0.copy(), (k, X.shape[1]), SPEC)
        fit_least_squares(data, params0, SPEC, max_iter=100_000, tol=1e-10,
                          solve_experts_first=theta0 is not None)
    except _Stop:
        pass
    finally:
        _objective.objective = original
    if not trace.losses:
        raise RuntimeError("the package's solver no longer calls _objective.objective; "
                           "update run_package")
    return trace


def run_numpy(X, y, w, k, theta0, budget, stop_at=-np.inf, kernel="numpy"):
    """scipy's L-BFGS-B on the NumPy objective, or on the package's (``kernel="package"``).

    The second is the same algorithm with the package's kernel: the ratio of
    the two is the kernel's share of the gain, free of the algorithm's.  Both
    run with BLAS limited to one thread, as the package's solver runs its
    kernels: otherwise BLAS's idle threads spin between calls and take the
    cores from numba's (on two loaded cores the package's objective went
    from 3 to 25 ms per L-BFGS-B evaluation at n = 1e4, k = 4; NumPy's from
    20 to 42 ms).
    """
    trace = Trace(budget, stop_at)
    x_norms = np.linalg.norm(X, axis=1)  # once, as the package's solver does
    shape = (k, X.shape[1])

    def fun(theta):
        if kernel == "package":
            out = objective(theta, X, y, w, shape, SPEC, x_norms)
        else:
            out = numpy_objective(theta, X, y, w, k, SPEC, x_norms)
        trace.record(out[0])
        return out

    trace.start()
    try:
        with threadpool_limits(limits=1, user_api="blas"):
            minimize(fun, theta0.copy(), jac=True, method="L-BFGS-B",
                     options={"maxiter": 10**6, "maxfun": 10**7, "ftol": 1e-15,
                              "gtol": 1e-10})
    except _Stop:
        pass
    return trace


def run_torch_adam(X, y, w, k, theta0, budget, lr, stop_at=-np.inf):
    import torch

    loss_fn = torch_loss_fn(X, y, w, k, SPEC)
    trace = Trace(budget, stop_at)
    theta = torch.tensor(theta0, requires_grad=True)
    opt = torch.optim.Adam([theta], lr=lr)
    trace.start()
    try:
        while True:
            opt.zero_grad()
            loss = loss_fn(theta)
            loss.backward()
            trace.record(loss.item())
            opt.step()
    except _Stop:
        pass
    return trace


def run_torch_lbfgs(X, y, w, k, theta0, budget, stop_at=-np.inf):
    import torch

    loss_fn = torch_loss_fn(X, y, w, k, SPEC)
    trace = Trace(budget, stop_at)
    theta = torch.tensor(theta0, requires_grad=True)
    opt = torch.optim.LBFGS([theta], lr=1.0, max_iter=100, history_size=10,
                            tolerance_grad=1e-10, tolerance_change=1e-15,
                            line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = loss_fn(theta)
        loss.backward()
        trace.record(loss.item())
        return loss

    trace.start()
    try:
        while True:
            before = len(trace.losses)
            opt.step(closure)
            if len(trace.losses) - before <= 1:   # nothing left to do
                break
    except _Stop:
        pass
    return trace


def random_start(k, d, seed=0):
    """PyTorch's ``nn.Linear`` default: every entry uniform on +-1/sqrt(d)."""
    rng = np.random.default_rng([seed, k, d])
    bound = 1.0 / np.sqrt(d)
    return rng.uniform(-bound, bound, 2 * k * d + 2 * k)


def best_start(X, y, w, k):
    """The package's data-driven start (spherical k-means + least squares)."""
    return initial_params(ArrayObjective(X, y, w), SPEC, k,
                          check_random_state(0)).to_vector(SPEC)


def race_data(n, k):
    X, y, _, _, _ = make_model_data(n, D, k, router=SPEC.router,
                                    temperature=SPEC.temperature, seed=0)
    y = (y - y.mean()) / y.std()      # the estimator's standardized target
    return X, y, np.ones(n)


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


def tune_adam(X, y, w, k, theta0, budget):
    best_lr, best_loss, losses = None, np.inf, {}
    for lr in ADAM_LRS:
        trace = run_torch_adam(X, y, w, k, theta0, budget, lr)
        losses[lr] = trace.best
        if trace.best < best_loss:
            best_lr, best_loss = lr, trace.best
    return best_lr, losses


def race(n, k, start, budget, adam_lr):
    """All methods from one start on one data set; returns a result dict."""
    X, y, w = race_data(n, k)
    if start == "random":
        theta0 = random_start(k, D)
        package_start = theta0
    else:
        theta0 = best_start(X, y, w, k)
        package_start = None
    runs = {
        "package": lambda stop: run_package(X, y, w, k, package_start, budget, stop),
        "package kernel + scipy L-BFGS-B": lambda stop: run_numpy(
            X, y, w, k, theta0, budget, stop, kernel="package"),
        "numpy+scipy L-BFGS-B": lambda stop: run_numpy(X, y, w, k, theta0, budget, stop),
        f"torch Adam (lr {adam_lr})": lambda stop: run_torch_adam(
            X, y, w, k, theta0, budget, adam_lr, stop),
        "torch LBFGS": lambda stop: run_torch_lbfgs(X, y, w, k, theta0, budget, stop),
    }
    traces = {name: run(-np.inf) for name, run in runs.items()}
    best = min(t.best for t in traces.values())
    target = best * (1 + REL_TARGET)
    result = {"n": n, "k": k, "start": start, "budget": budget, "best_loss": best,
              "target": target, "runs": RACE_RUNS, "methods": {}}
    # One rule for every method: RACE_RUNS runs each, the first above (free,
    # to find the target) and RACE_RUNS - 1 more that stop at the target;
    # the statistic is the median over all runs, a miss counting as infinite.
    # Every run of a method evaluates the same sequence of losses, so a
    # method that missed the target in its first run misses it in all.
    times = {}
    for name, trace in traces.items():
        first = trace.time_to(target)[0]
        if first is None:
            times[name] = [np.inf] * RACE_RUNS
        else:
            times[name] = [first] + [runs[name](target).time_to(target)[0] or np.inf
                                     for _ in range(RACE_RUNS - 1)]
    t_pkg = float(np.median(times["package"]))
    t_pkg = t_pkg if np.isfinite(t_pkg) else None
    for name, trace in traces.items():
        _, e_hit = trace.time_to(target)
        t_hit = float(np.median(times[name]))
        t_hit = t_hit if np.isfinite(t_hit) else None
        entry = trace.summary()
        entry.update({"time_to_target": t_hit, "evals_to_target": e_hit,
                      "run_times": [t if np.isfinite(t) else None for t in times[name]],
                      "ratio": (t_hit / t_pkg if t_hit is not None and t_pkg
                                else None),
                      "trace": [trace.times, trace.losses]})
        result["methods"][name] = entry
    return result


def race_line(res):
    parts = []
    for name, m in res["methods"].items():
        if m["time_to_target"] is None:
            why = "> budget" if m["status"] == "budget" else f"stuck at {m['best_loss']:.5g}"
            parts.append(f"{name}: {why} ({m['evals']} evals, {fmt_time(m['time'])})")
        else:
            ratio = "" if m["ratio"] is None or name == "package" else f" = {m['ratio']:.1f}x"
            parts.append(f"{name}: {fmt_time(m['time_to_target'])} "
                         f"({m['evals_to_target']} evals){ratio}")
    return "; ".join(parts)


def fit_estimator(n, k=4, d=D, seed=0, max_iter=1000):
    X, y, _, _, _ = make_model_data(n, d, k, seed=seed)
    reg = CosineMoERegressor(n_experts=k, random_state=0, max_iter=max_iter)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        t0 = time.perf_counter()
        reg.fit(X, y)
        elapsed = time.perf_counter() - t0
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
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            t0 = time.perf_counter()
            model.fit(X, y)
            fit_time = time.perf_counter() - t0
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


# --------------------------------------------------------------------------
# figures and report
# --------------------------------------------------------------------------
def plot_scaling(rows, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 3, figsize=(13, 7.5))
    labels = {"eval_package": "sklearn_cosmoe (numba)", "eval_numpy": "NumPy",
              "eval_torch": "PyTorch autograd"}
    for col, axis in enumerate(("n", "d", "k")):
        sub = [r for r in rows if r["axis"] == axis]
        x = [r[axis] for r in sub]
        ax = axes[0, col]
        for key, label in labels.items():
            if key in sub[0]:
                ax.plot(x, [r[key] for r in sub], "o-", label=label)
        ax.set(xscale="log", yscale="log", xlabel=axis, ylabel="s per loss+gradient",
               title=f"one evaluation vs {axis}")
        ax.grid(True, which="both", alpha=0.3)
        ax = axes[1, col]
        ax.plot(x, [r["fit_time"] for r in sub], "o-", label="fit (wall time)")
        ax.plot(x, [r["fit_time_per_iter"] for r in sub], "s--", label="fit / iteration")
        ax.set(xscale="log", yscale="log", xlabel=axis, ylabel="s",
               title=f"CosineMoERegressor.fit vs {axis}")
        ax.grid(True, which="both", alpha=0.3)
    axes[0, 0].legend()
    axes[1, 0].legend()
    base = [r for r in rows if r["axis"] == "d"]
    fixed = f"defaults: n = {base[0]['n']:.0e}, d = 10, k = 4" if base else ""
    fig.suptitle(f"Scaling ({fixed}; perturbed cosine router, linear experts)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_race(res, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, m in res["methods"].items():
        t, loss = map(np.asarray, m["trace"])
        if t.size:
            ax.plot(t, np.minimum.accumulate(loss), label=name)
    ax.axhline(res["target"], color="k", ls=":", label="target (best + 1 %)")
    ax.set(xscale="log", yscale="log", xlabel="wall time (s)", ylabel="training loss",
           title=f"n = {res['n']:.0e}, d = {D}, k = {res['k']}, {res['start']} start")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def headline(report):
    """Goal checks of issues 2 and 5, one line each."""
    out = []
    for r in report["eval"]:
        if r["n"] >= 100_000:
            ratio = r["torch"] / r["package"]
            out.append(f"per evaluation vs torch autograd, n={r['n']:.0e} k={r['k']}: "
                       f"{ratio:.1f}x ({'met' if ratio >= 2 else 'NOT met'}; goal >= 2x)")
        if r["n"] == 100_000 and r["k"] == 8:
            ratio = r["numpy"] / r["package"]
            out.append(f"per evaluation vs NumPy, n=1e5 k=8: {ratio:.1f}x "
                       f"({'met' if ratio >= 10 else 'NOT met'}; goal >= 10x)")
    goals = {"numpy": 5.0, "torch": 20.0}
    for res in report["race"]:
        for name, m in res["methods"].items():
            if name in ("package", KERNEL_ONLY):
                continue
            kind = "numpy" if name.startswith("numpy") else "torch"
            if m["ratio"] is not None:
                val, ok = f"{m['ratio']:.1f}x", m["ratio"] >= goals[kind]
            elif res["methods"]["package"]["time_to_target"] is None:
                val, ok = "package did not reach the target", False
            elif m["status"] == "budget":
                # a miss within the budget bounds the ratio from below only
                bound = res["budget"] / res["methods"]["package"]["time_to_target"]
                val, ok = f"> budget, ratio > {bound:.1f}x", bound >= goals[kind]
            else:
                val, ok = "never", True
            out.append(f"time to target, n={res['n']:.0e} k={res['k']} {res['start']} "
                       f"start, {name}: {val} ({'met' if ok else 'NOT met'}; goal >= "
                       f"{goals[kind]:g}x)")
    for res in report["race"]:
        out.append(f"kernel-only ratio, n={res['n']:.0e} k={res['k']} {res['start']} start "
                   f"(scipy L-BFGS-B on the NumPy objective / on the package's, same start): "
                   f"{kernel_ratio(res)}")
    for r in report["fit"].get("runs", []):
        if r["n"] == 100_000:
            out.append(f"fit n=1e5 d=10 k=4: {r['time']:.2f} s, {r['n_iter']} iterations "
                       f"({'met' if r['time'] < 2 else 'NOT met'}; goal < 2 s)")
    if "growth" in report["fit"]:
        g = report["fit"]["growth"]
        out.append(f"fit growth 1e5 -> 1e6: {g:.1f}x wall, "
                   f"{report['fit']['growth_per_iter']:.1f}x per iteration "
                   f"({'met' if g <= 11 else 'NOT met'}; goal <= 11x)")
    for m in report["memory"]:
        ratio = m["tracemalloc_peak"] / m["X_bytes"]
        out.append(f"peak memory of fit n={m['n']:.0e}: {ratio:.2f}x X (tracemalloc; "
                   f"{'met' if ratio <= 3 else 'NOT met'}; goal <= 3x)")
    return out


def kernel_ratio(res):
    """NumPy+scipy's time to the target over the package kernel + scipy's, as text."""
    num = res["methods"]["numpy+scipy L-BFGS-B"]["time_to_target"]
    ker = res["methods"].get(KERNEL_ONLY, {}).get("time_to_target")
    if num is None or ker is None:
        return "-"
    return f"{num / ker:.1f}x"


def stricter_targets(report, rels=(1e-3, 1e-4)):
    """The race again, read off the same traces, with tighter targets."""
    L = []
    for rel in rels:
        L += ["", f"### Time to best + {rel:.2%} (same runs, read off the same traces)", "",
              "| n | k | start | package | package kernel + scipy | NumPy+scipy | torch Adam "
              "| torch LBFGS |", "|---|---|---|---|---|---|---|---|"]
        for res in report["race"]:
            target = res["best_loss"] * (1 + rel)
            times = {}
            for name, m in res["methods"].items():
                t, loss = m["trace"]
                hits = np.flatnonzero(np.asarray(loss) <= target)
                times[name] = t[hits[0]] if hits.size else None
            t_pkg = times["package"]
            cells = []
            for name, t in times.items():
                if t is None:
                    cells.append("> budget" if res["methods"][name]["status"] == "budget"
                                 else "never")
                elif name == "package" or t_pkg is None:
                    cells.append(fmt_time(t))
                else:
                    cells.append(f"{fmt_time(t)} = {t / t_pkg:.1f}x")
            L.append(f"| {res['n']:.0e} | {res['k']} | {res['start']} | " + " | ".join(cells)
                     + " |")
    return L


def write_report(report, path):
    L = ["# Speed benchmark", "",
         f"Command: `{report['command']}`  ",
         f"Machine: {report['machine']}  ",
         f"Versions: {report['versions']}  ",
         f"Total run time: {report['total_time']:.0f} s", "",
         "## Headline (goals of issues 2 and 5)", "",
         *[f"* {line}" for line in headline(report)], "",
         "Model: perturbed cosine router (tau1 = tau2 = 1, temperature 1), linear experts, "
         f"dense gates, alpha = {SPEC.alpha:g}, d = 10, data drawn from the model (noise-limit "
         "R² 0.9), target standardized.", "",
         "## Correctness of the baselines", "",
         "Relative error against `sklearn_cosmoe._model.objective` (random parameters, "
         "random weights, alpha = 1e-3, temperature 0.5):", "",
         "| router | NumPy loss | NumPy grad | torch loss | torch grad |",
         "|---|---|---|---|---|"]
    for r in report["correctness"]:
        L.append(f"| {r['router']} | {r['numpy_loss']:.1e} | {r['numpy_grad']:.1e} | "
                 f"{r['torch_loss']:.1e} | {r['torch_grad']:.1e} |")
    L += ["", "## One loss+gradient evaluation", "",
          "Median wall time over three rounds in which the implementations take turns. "
          "Ratio = other / package (goal: >= 2x vs torch at n >= 1e5, "
          ">= 10x vs NumPy at n = 1e5, k = 8).", "",
          "| n | k | package | NumPy | torch autograd | NumPy / package | torch / package |",
          "|---|---|---|---|---|---|---|"]
    for r in report["eval"]:
        L.append(f"| {r['n']:.0e} | {r['k']} | {fmt_time(r['package'])} | "
                 f"{fmt_time(r['numpy'])} | {fmt_time(r['torch'])} | "
                 f"{r['numpy'] / r['package']:.1f}x | {r['torch'] / r['package']:.1f}x |")
    L += ["", "## Time to the same training loss", "",
          "Target: the lowest loss any method reached, plus 1 %. Ratio = method's time / "
          "package's time. *random*: every method from the same random start (PyTorch "
          "`nn.Linear` style, uniform on ±1/sqrt(d)). *best*: the package from its own "
          "data-driven start (spherical k-means + least squares; its time included), "
          "the baselines from that same start handed to them for free. "
          f"Adam learning rate tuned on {list(ADAM_LRS)} at the smallest n "
          "(lowest loss within the tuning budget). Each run is capped by a time budget; "
          "'> budget' means it had not reached the target when the budget ran out; "
          "'stuck (loss)' that it stopped above the target (its own convergence test, or "
          f"no relative improvement above {STALL_REL:g} over {STALL_EVALS} evaluations). "
          f"One rule for every method: {RACE_RUNS} runs each, the first to find the target, "
          "the others stopping at it; the time is the median of all its runs (a miss counts "
          "as infinite). *package kernel + scipy* is scipy's L-BFGS-B, as in NumPy+scipy, "
          "on the package's objective: the same algorithm as NumPy+scipy, so NumPy+scipy / "
          "package kernel + scipy is the kernel's share of the gain (column *kernel only*); "
          "the other ratios are end to end (kernel, algorithm and start together).", "",
          "| n | k | start | budget | target | package | package kernel + scipy | NumPy+scipy "
          "| torch Adam | torch LBFGS | kernel only |",
          "|---|---|---|---|---|---|---|---|---|---|---|"]
    for res in report["race"]:
        cells = []
        for name, m in res["methods"].items():
            if m["time_to_target"] is None:
                cells.append("> budget" if m["status"] == "budget"
                             else f"stuck ({m['best_loss']:.4g})")
            elif name == "package":
                cells.append(f"{fmt_time(m['time_to_target'])} ({m['evals_to_target']} ev)")
            elif m["ratio"] is None:
                cells.append(f"{fmt_time(m['time_to_target'])}")
            else:
                cells.append(f"{fmt_time(m['time_to_target'])} = **{m['ratio']:.1f}x**")
        L.append(f"| {res['n']:.0e} | {res['k']} | {res['start']} | {res['budget']:.0f} s | "
                 f"{res['target']:.5g} | " + " | ".join(cells) + f" | {kernel_ratio(res)} |")
    L += ["", "Adam learning rates chosen: " + ", ".join(
        f"{key if isinstance(key, str) else f'k={key[0]} {key[1]}'}: {lr}"
        for key, lr in report["adam_lr"].items()), ""]
    L += stricter_targets(report)
    fit = report["fit"]
    if fit:
        L += ["## `CosineMoERegressor.fit` (k = 4, model data, defaults)", "",
              "| n | wall time | iterations | time / iteration | final loss | converged |",
              "|---|---|---|---|---|---|"]
        for r in fit["runs"]:
            L.append(f"| {r['n']:.0e} | {fmt_time(r['time'])} | {r['n_iter']} | "
                     f"{fmt_time(r['time_per_iter'])} | {r['loss']:.6g} | {r['converged']} |")
        if "growth" in fit:
            L += ["", f"Growth 1e5 -> 1e6: wall time {fit['growth']:.1f}x, time per "
                  f"iteration {fit['growth_per_iter']:.1f}x (goal <= 11x)."]
        L.append("")
    for m in report["memory"]:
        rss = ("n/a" if m["rss_peak_extra"] is None
               else f"{m['rss_peak_extra'] / 2**20:.1f} MiB = {m['rss_peak_extra'] / m['X_bytes']:.2f}x X")
        L += [f"Peak memory of fit at n = {m['n']:.0e} (X is {m['X_bytes'] / 2**20:.1f} MiB): "
              f"tracemalloc {m['tracemalloc_peak'] / 2**20:.1f} MiB = "
              f"{m['tracemalloc_peak'] / m['X_bytes']:.2f}x X (goal <= 3x); "
              f"resident-set high-water mark above the start {rss}.", ""]
    mlp = report["mlp"]
    if mlp:
        L += [f"## Against `MLPRegressor` (n = {mlp['n']:.0e} train, {mlp['n_test']:.0e} test)",
              "",
              f"MoE: {mlp['moe_params']} parameters; MLP: one hidden layer of "
              f"{mlp['mlp_hidden']} units ({mlp['mlp_params']} parameters), default Adam. "
              f"Noise-limit test R²: {mlp['noise_limit_r2']:.4f}.", "",
              "| model | fit time | iterations | test R² | predict rows/s |",
              "|---|---|---|---|---|"]
        for name, r in mlp.items():
            if isinstance(r, dict):
                L.append(f"| {name} | {fmt_time(r['fit_time'])} | {r['n_iter']} | "
                         f"{r['test_r2']:.4f} | {r['predict_rows_per_s']:.3g} |")
        L.append("")
    if report["scaling"]:
        L += ["## Scaling", "", "![scaling](speed_scaling.png)", "",
              "| axis | n | d | k | eval package | eval NumPy | eval torch | fit | iterations |",
              "|---|---|---|---|---|---|---|---|---|"]
        for r in report["scaling"]:
            L.append(f"| {r['axis']} | {r['n']:.0e} | {r['d']} | {r['k']} | "
                     f"{fmt_time(r['eval_package'])} | {fmt_time(r.get('eval_numpy'))} | "
                     f"{fmt_time(r.get('eval_torch'))} | {fmt_time(r['fit_time'])} | "
                     f"{r['fit_iter']} |")
        L.append("")
    if report.get("race_figure"):
        L += [f"![race]({report['race_figure']})", ""]
    path.write_text("\n".join(L))


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

"""Speed of the classifier's loss+gradient kernel.

One process, one command; every ratio printed here was measured in this run::

    python benchmarks/bench_classifier_speed.py            # n = 1e4, 1e5; k = 4, 8
    python benchmarks/bench_classifier_speed.py --quick    # n = 1e4, k = 4

Three implementations of the *same* objective of
:class:`~sklearn_cosmoe.CosineMoEClassifier` (perturbed cosine router,
``tau1 = tau2 = 1``, temperature 1, dense gates, the estimator's default
ridge ``alpha``, ``d = 10``, ``C = 5`` classes): the weighted mean negative
log-likelihood of ``p(c | x) = sum_i g_i(x) softmax(A_i x + b_i)_c`` plus
``alpha/2 |A|^2``, and its gradient:

(a) the package: ``sklearn_cosmoe._classifier_model.objective`` (the fused
    numba kernel and its thin wrapper, what the solver calls);
(b) :func:`numpy_objective`: vectorised NumPy written again from the user
    guide (doc/user_guide/classifier.rst, "The fit"), a forward pass with
    ``(n, k, C)`` arrays and a hand-written backward pass, float64;
(c) :func:`torch_loss_fn`: the same forward pass in PyTorch float64, with
    the gradient from autograd.

First all three are checked against each other (every router, random
weights, a ridge term): loss and gradient must agree to 1e-10 relative, or
the script stops.  Then the time of one evaluation: the implementations take
turns, ``--rounds`` rounds of a block of calls each (about 0.25 s a block,
at least 3 calls), and each one's time is the median of all its calls: the
same rule for all three.  The row norms ``|x|`` depend on the data only: all
three get them computed once, as a fit does.

Results go to ``classifier_speed.md`` and ``classifier_speed.json`` in a new
temporary folder, or in ``--out``; the committed
``benchmarks/results/`` only from a clean working tree.
"""

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import scipy
import sklearn
from threadpoolctl import threadpool_limits

import sklearn_cosmoe
from sklearn_cosmoe import CosineMoEClassifier
from sklearn_cosmoe._classifier_model import (ClassifierParams, gates_and_log_proba,
                                              objective)
from sklearn_cosmoe._model import MoESpec

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (fmt_time, git_describe, output_folder,  # noqa: E402
                     router_backward_and_ridge, router_scores, time_samples,
                     torch_add_ridge, torch_router)

D, N_CLASSES = 10, 5
SPEC = MoESpec(router="perturbed_cosine", tau1=1.0, tau2=1.0, temperature=1.0,
               alpha=CosineMoEClassifier().alpha)
GOALS = {"numpy": 10.0, "torch": 5.0}   # at n = 1e5, k = 8
TOLERANCE = 1e-10


def log(*args):
    print(*args, flush=True)


# --------------------------------------------------------------------------
# the objective, written again from the user guide (classifier.rst)
# --------------------------------------------------------------------------
def unpack(theta, k, n_classes, d):
    """``[B1 (k, d), beta0 (k), A (k, C, d), b (k, C)]``: the package's layout."""
    kd, kc = k * d, k * n_classes
    return (theta[:kd].reshape(k, d), theta[kd:kd + k],
            theta[kd + k:kd + k + kc * d].reshape(k, n_classes, d),
            theta[kd + k + kc * d:].reshape(k, n_classes))


def numpy_objective(theta, X, y, w, k, n_classes, spec, x_norms=None):
    """Objective and gradient, vectorised NumPy with ``(n, k, C)`` arrays.

    ``L = -sum_n w_n log p(y_n | x_n) / sum_n w_n + alpha/2 |A|^2`` (+
    ``alpha/2 |B1|^2`` under the linear router); dense gates.  Backward:
    with the responsibilities ``r_i = g_i pi_{i y} / p(y | x)``,
    ``dL/ds_i = -w (r_i - g_i) / W`` and ``dL/dlogit_ic = w r_i (pi_ic -
    1[c = y]) / W``.
    """
    n, d = X.shape
    B1, b0, A, b = unpack(theta, k, n_classes, d)
    S, inv_t, cosine = router_scores(X, B1, b0, spec, x_norms)
    log_g = S - np.log(np.exp(S).sum(axis=1, keepdims=True))
    G = np.exp(log_g)
    logits = (X @ A.reshape(k * n_classes, d).T).reshape(n, k, n_classes) + b
    logits -= logits.max(axis=2, keepdims=True)
    lp = logits - np.log(np.exp(logits).sum(axis=2, keepdims=True))    # log pi
    rows = np.arange(n)
    a = log_g + lp[rows, :, y]                      # log g_i + log pi_{i y}
    a_max = a.max(axis=1, keepdims=True)
    log_p = a_max[:, 0] + np.log(np.exp(a - a_max).sum(axis=1))
    W = w.sum()
    loss = -np.dot(w, log_p) / W
    R = np.exp(a - log_p[:, None])                  # responsibilities
    wn = w / W
    dS = -(wn[:, None] * (R - G))
    dlogit = np.exp(lp) * (wn[:, None] * R)[:, :, None]
    dlogit[rows, :, y] -= wn[:, None] * R
    gA = (dlogit.reshape(n, k * n_classes).T @ X).reshape(k, n_classes, d)
    gb = dlogit.sum(axis=0)
    loss, gA, gB1, gb0 = router_backward_and_ridge(loss, gA, dS, X, spec, A, B1, inv_t,
                                                   cosine)
    return loss, np.concatenate([gB1.ravel(), gb0, gA.ravel(), gb.ravel()])


def torch_loss_fn(X, y, w, k, n_classes, spec, x_norms=None):
    """``loss(theta)`` in PyTorch (float64, autograd) for fixed data.

    The forward pass of :func:`numpy_objective`, written the way research
    code writes a model: ``log_softmax`` and ``logsumexp``.
    """
    import torch

    Xt = torch.as_tensor(X)
    yt = torch.as_tensor(y)
    wt = torch.as_tensor(w)
    W = float(w.sum())
    n, d = X.shape
    kd, kc = k * d, k * n_classes
    router = torch_router(X, spec, x_norms)
    rows = torch.arange(n)

    def loss(theta):
        B1 = theta[:kd].view(k, d)
        b0 = theta[kd:kd + k]
        A = theta[kd + k:kd + k + kc * d].view(kc, d)
        b = theta[kd + k + kc * d:].view(k, n_classes)
        log_g = torch.log_softmax(router(B1, b0), dim=1)
        logits = (Xt @ A.T).view(n, k, n_classes) + b
        lp = torch.log_softmax(logits, dim=2)
        log_p = torch.logsumexp(log_g + lp[rows, :, yt], dim=1)
        return torch_add_ridge(-(wt * log_p).sum() / W, A, B1, spec)

    return loss


# --------------------------------------------------------------------------
# data and parameters
# --------------------------------------------------------------------------
def random_theta(k, n_classes, d, seed=0):
    """Random parameters: unit gate directions times 3 (``|u_i| = 3/4`` under
    ``tau1 = 1``), intercepts and expert coefficients of order one."""
    rng = np.random.default_rng([seed, k, n_classes, d])
    dirs = rng.standard_normal((k, d))
    dirs *= 3.0 / np.linalg.norm(dirs, axis=1, keepdims=True)
    return ClassifierParams(dirs, 0.5 * rng.standard_normal(k),
                            rng.standard_normal((k, n_classes, d)) / np.sqrt(d),
                            rng.standard_normal((k, n_classes))).to_vector()


def make_data(n, k, n_classes=N_CLASSES, d=D, spec=SPEC, seed=0):
    """``X ~ N(0, I_d)``; labels drawn from the classifier with :func:`random_theta`
    (through the package's forward pass)."""
    rng = np.random.default_rng([seed, n, k, n_classes, d])
    X = rng.standard_normal((n, d))
    params = ClassifierParams.from_vector(random_theta(k, n_classes, d, seed + 1),
                                          (k, n_classes, d))
    proba = np.exp(gates_and_log_proba(X, params, spec)[1])
    cum = np.cumsum(proba, axis=1)
    y = (rng.uniform(size=(n, 1)) * cum[:, -1:] > cum).sum(axis=1)
    return X, np.minimum(y, n_classes - 1).astype(np.int64)


# --------------------------------------------------------------------------
# sections
# --------------------------------------------------------------------------
def check_correctness(n=3000, k=4):
    """(b) and (c) against the package's objective: every router, binary and
    ``C`` classes, random weights, alpha = 1e-3, temperature 0.5."""
    import torch

    rows = []
    for router in ("perturbed_cosine", "cosine", "linear"):
        for n_classes in (2, N_CLASSES):
            spec = MoESpec(router=router, tau1=1.0, tau2=1.0, temperature=0.5, alpha=1e-3)
            X, y = make_data(n, k, n_classes, spec=spec, seed=1)
            theta = random_theta(k, n_classes, D, seed=2)
            w = np.random.default_rng(3).uniform(0.5, 2.0, n)
            shape = (k, n_classes, D)
            lp, gp = objective(theta, X, y, w, shape, spec)
            ln, gn = numpy_objective(theta, X, y, w, k, n_classes, spec)
            t = torch.tensor(theta, requires_grad=True)
            lt = torch_loss_fn(X, y, w, k, n_classes, spec)(t)
            lt.backward()
            scale = np.abs(gp).max()
            err = {"router": router, "n_classes": n_classes,
                   "numpy_loss": abs(ln - lp) / abs(lp),
                   "numpy_grad": float(np.abs(gn - gp).max() / scale),
                   "torch_loss": abs(lt.item() - lp) / abs(lp),
                   "torch_grad": float(np.abs(t.grad.numpy() - gp).max() / scale)}
            rows.append(err)
            log(f"  {router:17s} C={n_classes}  numpy: loss {err['numpy_loss']:.1e} "
                f"grad {err['numpy_grad']:.1e} | torch: loss {err['torch_loss']:.1e} "
                f"grad {err['torch_grad']:.1e}")
    worst = max(max(v for key, v in r.items() if key.endswith(("loss", "grad")))
                for r in rows)
    if worst > TOLERANCE:
        raise SystemExit(f"implementations disagree (relative error {worst:.1e} > "
                         f"{TOLERANCE:g})")
    log(f"  all agree: worst relative error {worst:.1e} (<= {TOLERANCE:g})")
    return rows


def eval_times(n, k, n_classes=N_CLASSES, d=D, *, rounds=3, min_time=0.25):
    """Median time of one loss+gradient evaluation of each implementation.

    The implementations take turns: ``rounds`` rounds of one block of calls
    each (:func:`_common.time_samples`: one untimed call, then calls until
    ``min_time`` s and at least 3), and the median is over all the timed
    calls of an implementation, so that a burst of load from outside falls
    on all three alike.
    """
    import torch

    X, y = make_data(n, k, n_classes, d)
    w = np.ones(n)
    theta = random_theta(k, n_classes, d)
    x_norms = np.linalg.norm(X, axis=1)
    shape = (k, n_classes, d)
    loss_fn = torch_loss_fn(X, y, w, k, n_classes, SPEC, x_norms)
    t = torch.tensor(theta, requires_grad=True)

    def torch_step():
        t.grad = None
        loss_fn(t).backward()
        return t.grad

    calls = {"package": lambda: objective(theta, X, y, w, shape, SPEC, x_norms),
             "numpy": lambda: numpy_objective(theta, X, y, w, k, n_classes, SPEC, x_norms),
             "torch": torch_step}
    samples = {name: [] for name in calls}
    for _ in range(rounds):
        for name, fn in calls.items():
            samples[name] += time_samples(fn, min_time=min_time)
    out = {"n": n, "k": k, "n_classes": n_classes}
    for name, times in samples.items():
        out[name] = float(np.median(times))
        out[f"{name}_calls"] = len(times)
    return out


def headline(report):
    out = []
    for r in report["eval"]:
        if r["n"] != 100_000:
            continue
        for name in ("numpy", "torch"):
            ratio = r[name] / r["package"]
            goal = GOALS[name]
            verdict = "met" if ratio >= goal else "NOT met"
            if r["k"] != 8:
                verdict += ", goal set for k = 8"
            out.append(f"per evaluation vs {'NumPy' if name == 'numpy' else 'torch autograd'}"
                       f", n=1e5 k={r['k']} C={r['n_classes']}: {ratio:.1f}x "
                       f"({verdict}; goal >= {goal:g}x)")
    return out


def write_report(report, path):
    L = ["# Classifier speed benchmark: one loss+gradient evaluation", "",
         f"Command: `{report['command']}`  ",
         f"Machine: {report['machine']}  ",
         f"Versions: {report['versions']}  ",
         f"Total run time: {report['total_time']:.0f} s", "",
         "## Headline (goals at n = 1e5, d = 10, k = 8, C = 5)", "",
         *[f"* {line}" for line in headline(report)], "",
         "Objective: weighted mean negative log-likelihood of `CosineMoEClassifier` plus "
         f"alpha/2 |A|^2, alpha = {SPEC.alpha:g}; perturbed cosine router (tau1 = tau2 = 1, "
         "temperature 1), dense gates, d = 10, X ~ N(0, I), labels drawn from the model "
         "with random parameters, unit weights.", "",
         "## Correctness", "",
         "Relative error against `sklearn_cosmoe._classifier_model.objective` (n = 3000, "
         "k = 4, random parameters and weights, alpha = 1e-3, temperature 0.5; gradient: "
         "max abs difference / max abs entry):", "",
         "| router | C | NumPy loss | NumPy grad | torch loss | torch grad |",
         "|---|---|---|---|---|---|"]
    for r in report["correctness"]:
        L.append(f"| {r['router']} | {r['n_classes']} | {r['numpy_loss']:.1e} | "
                 f"{r['numpy_grad']:.1e} | {r['torch_loss']:.1e} | {r['torch_grad']:.1e} |")
    L += ["", "## Time per evaluation", "",
          f"Median over all timed calls; the three take turns in {report['rounds']} rounds "
          "of blocks of about 0.25 s (at least 3 calls each); ratio = other / package.", "",
          "| n | k | C | package | NumPy | torch autograd | NumPy / package "
          "| torch / package | calls (package, NumPy, torch) |",
          "|---|---|---|---|---|---|---|---|---|"]
    for r in report["eval"]:
        L.append(f"| {r['n']:.0e} | {r['k']} | {r['n_classes']} | {fmt_time(r['package'])} | "
                 f"{fmt_time(r['numpy'])} | {fmt_time(r['torch'])} | "
                 f"{r['numpy'] / r['package']:.1f}x | {r['torch'] / r['package']:.1f}x | "
                 f"{r['package_calls']}, {r['numpy_calls']}, {r['torch_calls']} |")
    path.write_text("\n".join(L) + "\n")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="n = 1e4, k = 4 only")
    parser.add_argument("--sizes", type=float, nargs="+", default=None,
                        help="numbers of rows (default 1e4 1e5)")
    parser.add_argument("--ks", type=int, nargs="+", default=None,
                        help="numbers of experts (default 4 8)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="rounds in which the implementations take turns (default 3)")
    parser.add_argument("--threads", type=int, default=None,
                        help="threads for the package, torch and BLAS (default: all cores)")
    parser.add_argument("--out", type=Path, default=None,
                        help="output folder (default: a new temporary folder); "
                             "benchmarks/results only from a clean working tree")
    args = parser.parse_args(argv)
    describe = git_describe()
    args.out = output_folder(args.out, prefix="bench_classifier_speed_")

    import numba
    import torch

    threads = args.threads or os.cpu_count()
    torch.set_num_threads(threads)
    threadpool_limits(threads)     # BLAS, and the package's threads (OpenMP limit)
    sizes = [int(s) for s in (args.sizes or ([1e4] if args.quick else [1e4, 1e5]))]
    ks = args.ks or ([4] if args.quick else [4, 8])

    command = ("python benchmarks/bench_classifier_speed.py "
               + " ".join(sys.argv[1:] if argv is None else argv)).strip()
    machine = (f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores; "
               f"threads: package/BLAS {threads}, torch {torch.get_num_threads()}; "
               f"load average at start {os.getloadavg()[0]:.1f}")
    versions = (f"sklearn_cosmoe {sklearn_cosmoe.__version__} (git describe --dirty: "
                f"{describe}), numpy {np.__version__}, scipy {scipy.__version__}, "
                f"scikit-learn {sklearn.__version__}, numba {numba.__version__}, "
                f"torch {torch.__version__}, python {platform.python_version()}")
    log(f"# {command}\n# {machine}\n# {versions}")
    t_start = time.perf_counter()
    report = {"command": command, "machine": machine, "versions": versions,
              "git_describe": describe, "rounds": args.rounds, "eval": []}

    log("\n== correctness: NumPy and torch against the package's objective")
    report["correctness"] = check_correctness()

    log(f"\n== one loss+gradient evaluation (median wall time), C = {N_CLASSES}")
    for n in sizes:
        for k in ks:
            r = eval_times(n, k, rounds=args.rounds)
            report["eval"].append(r)
            log(f"  n={n:.0e} k={k}: package {fmt_time(r['package'])}, NumPy "
                f"{fmt_time(r['numpy'])} ({r['numpy'] / r['package']:.1f}x), torch "
                f"{fmt_time(r['torch'])} ({r['torch'] / r['package']:.1f}x)")

    report["total_time"] = time.perf_counter() - t_start
    report["machine"] += f", at end {os.getloadavg()[0]:.1f}"
    log("\n== headline")
    for line in headline(report):
        log("  " + line)
    write_report(report, args.out / "classifier_speed.md")
    with open(args.out / "classifier_speed.json", "w") as fh:
        json.dump(report, fh, indent=1)
    log(f"\nwrote {args.out / 'classifier_speed.md'} ({report['total_time']:.0f} s in all)")


if __name__ == "__main__":
    main()

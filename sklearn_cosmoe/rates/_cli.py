"""``python -m sklearn_cosmoe rates``: run a study, write its outputs, print its tables."""

import argparse
import json
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

from ._figures import plot
from ._protocol import INITS, SETTINGS, STUDIES, Protocol, quick
from ._reporting import (estimator_against_truth, family_summary, markdown_tables,
                         read_csv, summarise, write_csv)
from ._running import CSV_FIELDS, _Task, describe_fit, run_experiment, tasks

#: The repository holding the package (when it is a git checkout) and its
#: folder of committed results, which only a clean tree may write.
REPOSITORY = Path(__file__).resolve().parents[2]
COMMITTED = REPOSITORY / "doc" / "_static" / "rates"


def git_state(root=REPOSITORY):
    """The commit of the package's checkout and whether its code has changed.

    Changes under ``doc/_static/rates`` (the results themselves) do not count:
    the studies of one commit are written there one after the other.

    Parameters
    ----------
    root : pathlib.Path
        The checkout.

    Returns
    -------
    dict
        Keys ``describe`` (as ``git describe --always --dirty``), ``commit``
        (None outside a git checkout) and ``dirty`` (True also when git
        cannot tell).
    """
    def git(*args):
        return subprocess.run(["git", "-C", str(root), *args], capture_output=True,
                              text=True, check=True).stdout.strip()

    try:
        results = str(COMMITTED.relative_to(root))
        dirty = bool(git("status", "--porcelain", "--untracked-files=no", "--",
                         ".", f":(exclude){results}"))
        describe = git("describe", "--always")
        return {"describe": describe + ("-dirty" if dirty else ""),
                "commit": git("rev-parse", "HEAD"), "dirty": dirty}
    except (OSError, ValueError, subprocess.CalledProcessError):
        return {"describe": None, "commit": None, "dirty": True}


def _check_output_folder(out, state):
    out = Path(out).resolve()
    if (out == COMMITTED or COMMITTED in out.parents) and state["dirty"]:
        raise SystemExit(
            f"refusing to write into {out}: the results committed there must come "
            f"from a clean commit, and the tree at {REPOSITORY} has uncommitted "
            f"changes ({state['describe']}). Commit first, or use another --out."
        )


def _parser():
    default = Protocol()
    parser = argparse.ArgumentParser(
        prog="python -m sklearn_cosmoe rates",
        description="Convergence-rate experiment of the cosine-router mixture of "
                    "experts: canonical and raw Voronoi losses and the L2 error of the "
                    "regression function against n, with fitted log-log slopes. "
                    "'rates inspect --help': one fit's atoms beside the truth's.",
    )
    parser.add_argument("--study", choices=sorted(STUDIES), default="main",
                        help="which run (doc/rates.md); default: %(default)s")
    parser.add_argument("--quick", action="store_true",
                        help="small grids and few replicates (under a minute)")
    parser.add_argument("--out", default=None,
                        help="output folder (CSV, slopes, tables, figures); default: a "
                             "new temporary folder. doc/_static/rates/... needs a clean tree")
    parser.add_argument("--n-jobs", type=int, default=2,
                        help="parallel processes; default: %(default)s")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--replicates", type=int, default=None,
                        help=f"replicates per n (main: {default.n_replicates})")
    parser.add_argument("--estimator-replicates", type=int, default=None,
                        help="replicates per n for the estimator's own start")
    parser.add_argument("--n-min", type=float, default=None)
    parser.add_argument("--n-max", type=float, default=None)
    parser.add_argument("--n-sizes", type=int, default=None,
                        help="number of geometric grid points")
    for name, example in (("truths", "main,d5-k3-s1"), ("routers", "cosine,linear"),
                          ("experts", "tanh,linear"), ("settings", "exact,over"),
                          ("inits", "truth,estimator")):
        parser.add_argument(f"--{name}", default=None, help=f"comma-separated, e.g. {example}")
    parser.add_argument("--noise", type=float, default=None)
    parser.add_argument("--temperature", type=float, default=None)
    parser.add_argument("--max-iter", type=int, default=None)
    parser.add_argument("--tol", type=float, default=None)
    parser.add_argument("--no-figure", action="store_true")
    parser.add_argument("--replot", action="store_true",
                        help="no fits: redo slopes, tables and figures from the "
                             "rates.csv and protocol.json already in --out")
    return parser


def _override(protocol, args):
    """A part of a study with the command line's changes."""
    changes = {}
    if args.n_min is not None or args.n_max is not None or args.n_sizes is not None:
        low = args.n_min or min(protocol.n_grid)
        high = args.n_max or max(protocol.n_grid)
        count = args.n_sizes or len(protocol.n_grid)
        if not (0 < low < high and count >= 2):
            raise ValueError("need 0 < --n-min < --n-max and --n-sizes >= 2.")
        changes["n_grid"] = tuple(sorted({int(round(v)) for v in
                                          np.geomspace(low, high, count)}))
    for name in ("truths", "routers", "experts", "settings", "inits"):
        value = getattr(args, name)
        if value is not None:
            changes[name] = tuple(v.strip() for v in value.split(",") if v.strip())
    for arg, name in (("replicates", "n_replicates"),
                      ("estimator_replicates", "estimator_replicates"),
                      ("noise", "noise"), ("temperature", "temperature"),
                      ("max_iter", "max_iter"), ("tol", "tol"), ("seed", "seed")):
        value = getattr(args, arg)
        if value is not None:
            changes[name] = value
    protocol = replace(protocol, **changes)
    for name, allowed in (("settings", SETTINGS), ("inits", INITS)):
        bad = set(getattr(protocol, name)) - set(allowed)
        if bad:
            raise ValueError(f"--{name} must be among {allowed}; got {sorted(bad)}.")
    return protocol


def protocols_from(args):
    """The parts of the study that the command line asks for.

    Parameters
    ----------
    args : argparse.Namespace
        Parsed by the parser of :func:`main`.

    Returns
    -------
    tuple of Protocol
    """
    parts = STUDIES[args.study]
    if args.quick:
        parts = tuple(quick(p) for p in parts)
    parts = tuple(_override(p, args) for p in parts)
    # the rows of a run are told apart by their task alone
    todo = [task for part in parts for task in tasks(part)]
    if len(set(todo)) != len(todo):
        raise ValueError("the parts of a study must not repeat a fit (same truth, "
                         "router, expert, setting, start, n and replicate).")
    return parts


LEGEND = """Each row: one truth, router, expert, setting (exact: as many experts as the truth;
over: more) and start (truth: a fit started near the truth; estimator: the estimator's
own fit). Each column is the slope of log(error) against log(n) with its 95% bootstrap
interval: -1/2 is the parametric rate n^(-1/2), a slope near 0 means no convergence.
  D1, D2   Voronoi losses between the fitted and the true mixing measure (weights
           and parameters), on the canonical form, which keeps what the data can
           determine; D2 squares the distances where several fitted experts share
           one true expert (over-specified), D1 does not;
  D1_raw, D2_raw   the same losses on the raw parameters (the paper's loss);
  L2       the L2 distance between the fitted and the true regression functions;
  converged  share of the fits that met the tolerance within max_iter."""


def conclusion(table):
    """One line: the median slopes of the L2 error and of D1 by router.

    Parameters
    ----------
    table : list of dict
        From :func:`summarise`.

    Returns
    -------
    str
    """
    def median(metric, router=None):
        slopes = [t["slope"] for t in table if t["metric"] == metric
                  and (router is None or t["router"] == router) and np.isfinite(t["slope"])]
        return float(np.median(slopes)) if slopes else float("nan")

    routers = sorted({t["router"] for t in table})
    by_router = ", ".join(f"{r} {median('D1', r):.2f}" for r in routers)
    return (f"Conclusion: median slope of the L2 error {median('L2'):.2f} (parametric: "
            f"-0.50); median slope of D1 by router: {by_router}. Steeper is faster; "
            "doc/rates.md reads the full run.")


def _report(rows, out, seed, figures):
    table = summarise(rows, seed=seed)
    against = estimator_against_truth(rows)
    family = family_summary(table)
    write_csv(table, out / "slopes.csv")
    for name, part in (("estimator_vs_truth.csv", against), ("family.csv", family)):
        if part:
            write_csv(part, out / name)
    text = markdown_tables(table, against, family)
    (out / "tables.md").write_text(text + "\n")
    if figures:
        plot(rows, table, out)
    return f"{LEGEND}\n\n{text}", conclusion(table)


def _inspect(argv):
    parser = argparse.ArgumentParser(
        prog="python -m sklearn_cosmoe rates inspect",
        description="One fit of the experiment: its atoms (canonical form) beside the "
                    "truth's, with its errors.")
    parser.add_argument("--study", choices=sorted(STUDIES), default="main")
    parser.add_argument("--truth", default="main")
    parser.add_argument("--router", default="perturbed_cosine")
    parser.add_argument("--expert", default="linear")
    parser.add_argument("--setting", choices=SETTINGS, default="over")
    parser.add_argument("--init", choices=INITS, default="truth")
    parser.add_argument("--n", type=int, default=13895, help="a size of the study's grid")
    parser.add_argument("--replicate", type=int, default=0)
    parser.add_argument("--out", default=None, help="also write the text to this file")
    args = parser.parse_args(argv)
    protocol = STUDIES[args.study][0]
    if args.n not in protocol.n_grid:
        raise SystemExit(f"--n must be one of the grid {protocol.n_grid}; got {args.n}.")
    task = _Task(args.truth, args.router, args.expert, args.setting, args.init,
                 args.n, args.replicate)
    state = git_state()
    text = describe_fit(protocol, task) + f"\n(package at {state['describe']})"
    print(text)
    if args.out is not None:
        _check_output_folder(Path(args.out).parent, state)
        Path(args.out).write_text(text + "\n")
    return 0


def main(argv=None):
    """Command line: run a study, write the CSV, slopes, tables and figures.

    Writes into ``--out`` (default: a new temporary folder, printed):
    ``rates.csv`` (one row per fit), ``slopes.csv`` (one row per truth,
    setting and metric), ``tables.md`` (the tables of doc/rates.md),
    ``estimator_vs_truth.csv`` and ``family.csv`` where they apply, the
    figures and ``protocol.json`` (the parts of the study, the command and
    the commit).  Results under ``doc/_static/rates`` are only written from a
    clean git tree.  ``rates inspect ...`` prints one fit's atoms instead.

    Parameters
    ----------
    argv : list of str, default=None
        Arguments (``sys.argv[1:]`` when None); ``--help`` lists them.

    Returns
    -------
    int
        0 on success.
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["inspect"]:
        return _inspect(argv[1:])
    args = _parser().parse_args(argv)
    if not args.replot:
        fits = sum(len(tasks(part)) for part in protocols_from(args))
        print(f"{fits} fits with n_jobs={args.n_jobs}"
              + (" (about a minute on 2 cores)" if args.quick and args.study == "main" else
                 "; the main study took about 20 minutes on 2 cores (doc/rates.md)")
              + "\n", flush=True)
    state = git_state()
    if args.out is None:
        if args.replot:
            raise SystemExit("--replot needs --out: the folder of a previous run.")
        out = Path(tempfile.mkdtemp(prefix=f"rates-{args.study}-"))
    else:
        out = Path(args.out)
        _check_output_folder(out, state)
    start = time.perf_counter()
    if args.replot:
        saved = json.loads((out / "protocol.json").read_text())
        seed = saved["parts"][0]["seed"]
        rows = read_csv(out / "rates.csv")
    else:
        parts = protocols_from(args)
        seed = parts[0].seed
        out.mkdir(parents=True, exist_ok=True)
        rows = [row for part in parts for row in run_experiment(part, n_jobs=args.n_jobs)]
        write_csv(rows, out / "rates.csv", CSV_FIELDS)
        wall = time.perf_counter() - start
        record = {"study": args.study, "quick": args.quick,
                  "command": "python -m sklearn_cosmoe rates " + " ".join(argv),
                  **state, "fits": len(rows), "n_jobs": args.n_jobs,
                  "wall_seconds": round(wall, 1),
                  "cpu_seconds_in_fits": round(sum(r["cpu_seconds"] for r in rows), 1),
                  "parts": [asdict(part) for part in parts]}
        (out / "protocol.json").write_text(json.dumps(record, indent=2) + "\n")
    text, summary = _report(rows, out, seed, not args.no_figure)
    print(text)
    if args.replot:
        print(f"\nslopes, tables and figures of {len(rows)} fits redone in {out}/")
    else:
        print(f"\n{len(rows)} fits in {wall:.1f} s wall time (n_jobs={args.n_jobs}; "
              f"{record['cpu_seconds_in_fits']:.0f} CPU seconds inside the fits) at "
              f"{state['describe']}; results in {out}/")
    print(summary)
    return 0

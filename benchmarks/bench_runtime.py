"""Speed that reaches a user: busy machines, the first fit, parallel searches, memory.

One run measures, each in the same way: the median of ``--repeat`` timed runs,
wall clock, after one untimed run unless the first run is what is measured;
the runs that are compared take turns (:func:`alternating_medians`), so that a
change of the machine's speed during the run falls on all of them alike:

* ``capacity``: how many cores this session gets (two spinning processes
  against one); with autogroup scheduling on a shared machine, the script
  and its joblib workers share one session's part of the CPU;
* ``busy``: ``CosineMoERegressor.fit`` at n = 1e3, 1e4, 1e5 (d = 10, k = 4),
  on the machine as it is and beside two busy processes (pure-Python loops,
  one per core of a 2-core machine) that the script starts before each busy
  run and stops after it; ratio busy / quiet (goal <= 2x).  Twice: with the
  busy processes in this session (the scheduler shares the cores thread by
  thread, as without autogroup scheduling, and as between a search's joblib
  workers: the fit's two threads beside two busy ones get one core, 2x), and in
  sessions of their own, like other programs (with Linux's autogroup
  scheduling the cores are shared by session first: a perfectly parallel
  job of this session gets 2/3 of a core, 3x, a serial one half a core).
  The ``reference`` part times spinning child processes of this session
  (one, and two at once) quiet and beside the same busy processes, under
  the same rule: what the cores the fit gets are worth in each case;
* ``threads``: one loss + gradient evaluation on 1 thread and on 2, at sizes
  around the package's serial threshold (``_parallel.SERIAL_ROWS``);
* ``cold``: the first fit (300 x 4 rows) in a fresh process with an empty
  numba cache (compilation included; goal <= 15 s on 2 quiet cores), and in a
  second process that reads the cache;
* ``search``: ``GridSearchCV`` over 16 candidates x 3 folds, ``n_jobs=1``
  against ``n_jobs=2``: the first search of a fresh process (``--repeat``
  fresh processes for each, alternating; a first ``n_jobs=2`` search starts
  its joblib workers) and a search whose workers are started (in this
  process); goal n_jobs=1 / n_jobs=2 >= 1.6x, never slower.  The same for a
  search of the same length over scikit-learn's own single-threaded
  ``GradientBoostingRegressor``: what joblib gives any estimator on this
  machine and search.  And, in a child
  process, the time two fresh joblib workers take to import the package and
  fit once, and how one fresh process splits that time between
  scikit-learn's imports, the package's import and its first fit;
* ``memory``: peak resident memory of a fit at d = 200, k = 10, n = 1e5
  (``max_iter=3``), measured in a child process, beyond the memory held
  before the fit; goal <= 3x the size of X.

Results go to ``--out`` (default: a new temporary directory, printed at the
end) as ``runtime.md`` and ``runtime.json``, with ``git describe --dirty``.
The script refuses to write into ``benchmarks/results/`` from a dirty tree.

    python benchmarks/bench_runtime.py                 # everything, about 6 min
    python benchmarks/bench_runtime.py --skip search   # leave a part out
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
from _common import timed_fit  # noqa: E402
from _output import git_describe, output_folder  # noqa: E402
PARTS = ("capacity", "reference", "busy", "threads", "cold", "search", "memory")


def child_env(**extra):
    env = dict(os.environ, **extra)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def run_child(code, **env):
    run = subprocess.run([sys.executable, "-c", textwrap.dedent(code)],
                         env=child_env(**env), capture_output=True, text=True,
                         check=True)
    return json.loads(run.stdout.splitlines()[-1]), run.stderr


class BusyProcesses:
    """``n`` processes that keep one core each busy, stopped on exit.

    ``own_sessions``: each starts a session of its own, like another program
    on the machine (Linux's autogroup scheduling shares the CPU between
    sessions first); otherwise they are plain children of this session.
    """

    def __init__(self, n, own_sessions):
        self.n = n
        self.own_sessions = own_sessions

    def __enter__(self):
        self.procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"],
                                       start_new_session=self.own_sessions)
                      for _ in range(self.n)]
        time.sleep(0.5)
        return self

    def __exit__(self, *exc):
        for proc in self.procs:
            proc.kill()
            proc.wait()


#: Where the busy processes run: (key, own sessions?, words for the reports)
REGIMES = (("this_session", False, "in this session"),
           ("own_sessions", True, "in sessions of their own"))


# about a second on a quiet core: long against the scheduler's time slices
_SPIN = ("import time\nt = time.perf_counter()\nfor i in range(20_000_000): pass\n"
         "print(time.perf_counter() - t)")


def _spin_children(n):
    """Mean loop time of ``n`` spinning child processes of this session, run at once."""
    procs = [subprocess.Popen([sys.executable, "-c", _SPIN], stdout=subprocess.PIPE,
                              text=True) for _ in range(n)]
    return statistics.mean(float(proc.communicate()[0]) for proc in procs)


def bench_capacity():
    """Cores this session gets: one spinning process against two at once.

    On a shared machine with autogroup scheduling, processes of one session
    (this script and its joblib workers) share one session's part of the CPU,
    so ``GridSearchCV(n_jobs=2)`` can gain at most this factor.
    """
    one, two = _spin_children(1), _spin_children(2)
    result = {"one_s": one, "two_s": two, "cores": 2 * one / two}
    print(f"capacity: a spinning process takes {one:.2f} s alone, {two:.2f} s two at "
          f"once: this session gets {2 * one / two:.2f} cores", flush=True)
    return result


def model_data(n, d, k, seed=0):
    from sklearn_cosmoe.datasets import make_cosine_moe
    X, y, _ = make_cosine_moe(n, n_features=d, n_experts=k, random_state=seed)
    return X, y


def alternating_medians(jobs, repeat):
    """Median of ``repeat`` times of each job, the jobs taking turns.

    ``jobs`` maps a name to a function that returns the seconds of one run:
    taking turns, a change of the machine's speed during the measurement
    (frequent on a shared machine) falls on every job alike.
    """
    times = {name: [] for name in jobs}
    for _ in range(repeat):
        for name, job in jobs.items():
            times[name].append(job())
    return {name: statistics.median(ts) for name, ts in times.items()}


def _beside_busy(own_sessions, job):
    """``job``, a function that returns seconds, run beside two busy processes."""
    def run():
        with BusyProcesses(2, own_sessions):
            return job()
    return run


def _ratios(quiet, medians):
    return {key: {"busy_s": medians[key], "ratio": medians[key] / quiet}
            for key, _, _ in REGIMES}


def bench_reference(repeat):
    """What a serial and a perfectly parallel job of this session pay beside two busy ones."""
    try:
        result = {"autogroup": Path("/proc/sys/kernel/sched_autogroup_enabled")
                  .read_text().strip() == "1"}
    except OSError:
        result = {"autogroup": None}
    for n in (1, 2):
        spin = lambda n=n: _spin_children(n)  # noqa: E731
        medians = alternating_medians(
            {"quiet": spin, **{key: _beside_busy(own, spin) for key, own, _ in REGIMES}},
            repeat)
        result[f"{n}_jobs"] = row = {"quiet_s": medians["quiet"],
                                     **_ratios(medians["quiet"], medians)}
        for key, _, words in REGIMES:
            print(f"reference: {n} spinning process(es) of this session: quiet "
                  f"{row['quiet_s']:.3f} s, beside 2 busy processes {words} "
                  f"{row[key]['busy_s']:.3f} s: {row[key]['ratio']:.2f}x", flush=True)
    return result


def bench_busy(repeat):
    from sklearn_cosmoe import CosineMoERegressor
    rows = []
    for n in (1_000, 10_000, 100_000):
        X, y = model_data(n, 10, 4)
        reg = CosineMoERegressor(n_experts=4, random_state=0)
        fit = lambda: timed_fit(reg, X, y)  # noqa: E731
        fit()  # untimed: the kernels are loaded
        medians = alternating_medians(
            {"quiet": fit, **{key: _beside_busy(own, fit) for key, own, _ in REGIMES}},
            repeat)
        row = {"n": n, "quiet_s": medians["quiet"], **_ratios(medians["quiet"], medians),
               "n_iter": int(reg.n_iter_)}
        for key, _, words in REGIMES:
            print(f"busy: n={n:>6} quiet {row['quiet_s']:.3f} s, beside 2 busy processes "
                  f"{words} {row[key]['busy_s']:.3f} s: {row[key]['ratio']:.2f}x", flush=True)
        rows.append(row)
    return rows


def bench_threads(repeat):
    from sklearn_cosmoe import _kernels
    from sklearn_cosmoe._model import MoESpec, objective, row_norms
    from sklearn_cosmoe._objective import ArrayObjective
    from sklearn_cosmoe._solver import initial_params
    rows = []
    spec = MoESpec()
    real = _kernels.n_threads
    try:
        for n in (1_000, 2_000, 4_000, 8_000, 16_000):
            X, y = model_data(n, 10, 4)
            w = np.ones(n)
            theta = initial_params(ArrayObjective(X, y, w), spec, 4,
                                   np.random.default_rng(0)).to_vector(spec)
            norms = row_norms(X)

            def evaluations(threads):
                def run():
                    _kernels.n_threads = lambda n_samples, n_blk: min(threads, n_blk)
                    start = time.perf_counter()
                    for _ in range(20):
                        objective(theta, X, y, w, (4, 10), spec, norms)
                    return (time.perf_counter() - start) / 20
                return run

            jobs = {threads: evaluations(threads) for threads in (1, 2)}
            for job in jobs.values():
                job()  # untimed: the pool's threads start
            times = alternating_medians(jobs, repeat)
            rows.append({"n": n, "one_thread_s": times[1], "two_threads_s": times[2],
                         "ratio": times[1] / times[2]})
            print(f"threads: n={n:>6} one evaluation: 1 thread {times[1] * 1e6:.0f} us, "
                  f"2 threads {times[2] * 1e6:.0f} us ({times[1] / times[2]:.2f}x)",
                  flush=True)
    finally:
        _kernels.n_threads = real
    return rows


_FIRST_FIT = """
    import time
    start, cpu = time.perf_counter(), time.process_time()
    import json, numpy as np
    from sklearn_cosmoe import CosineMoERegressor
    rng = np.random.default_rng(0)
    X = rng.standard_normal((300, 4))
    y = X @ [1.0, -1.0, 0.5, 2.0] + np.sin(X[:, 0])
    CosineMoERegressor(n_experts=3, random_state=0).fit(X, y).predict(X)
    print(json.dumps({"wall_s": time.perf_counter() - start,
                      "cpu_s": time.process_time() - cpu}))
"""


def bench_cold():
    with tempfile.TemporaryDirectory() as cache:
        cold, log = run_child(_FIRST_FIT, NUMBA_CACHE_DIR=cache)
        warm, _ = run_child(_FIRST_FIT, NUMBA_CACHE_DIR=cache)
    result = {"cold_wall_s": cold["wall_s"], "cold_cpu_s": cold["cpu_s"],
              "warm_wall_s": warm["wall_s"], "warm_cpu_s": warm["cpu_s"],
              "log": log.strip()}
    print(f"cold: first fit in a fresh process, empty cache: {cold['wall_s']:.1f} s "
          f"({cold['cpu_s']:.1f} s CPU); with the cache: {warm['wall_s']:.2f} s "
          f"(import included). Log: {log.strip()!r}", flush=True)
    return result


_WORKER_START = """
    import json, time
    from joblib import Parallel, delayed

    def first_task():
        import numpy as np
        from sklearn_cosmoe import CosineMoERegressor
        X = np.random.default_rng(0).standard_normal((300, 4))
        CosineMoERegressor(n_experts=2, max_iter=5).fit(X, X[:, 0])

    start = time.perf_counter()
    Parallel(n_jobs=2)(delayed(first_task)() for _ in range(2))
    print(json.dumps({"wall_s": time.perf_counter() - start}))
"""


_START_SPLIT = """
    import time
    start = time.perf_counter()
    import json, warnings
    import numpy as np
    import sklearn.model_selection, sklearn.pipeline, sklearn.preprocessing
    sklearn_done = time.perf_counter()
    from sklearn_cosmoe import CosineMoERegressor
    import_done = time.perf_counter()
    warnings.simplefilter("ignore")
    X = np.random.default_rng(0).standard_normal((300, 4))
    CosineMoERegressor(n_experts=2, max_iter=5).fit(X, X[:, 0])
    fit_done = time.perf_counter()
    print(json.dumps({"scikit_learn_s": sklearn_done - start,
                      "package_import_s": import_done - sklearn_done,
                      "first_fit_s": fit_done - import_done}))
"""


#: The searches of the ``search`` part: the package's, and for reference one
#: of scikit-learn's own single-threaded estimators over as many candidates,
#: its size chosen so that its serial search takes about as long.
SEARCHES = ("package", "scikit-learn")


def search_problem(n_jobs, which="package"):
    """A search of the ``search`` part (its data: ``model_data(2_000, 4, 3)``)."""
    from sklearn.model_selection import GridSearchCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    if which == "package":
        from sklearn_cosmoe import CosineMoERegressor
        estimator = CosineMoERegressor(random_state=0)
        grid = {"n_experts": [2, 3, 4, 5], "temperature": [0.3, 1.0], "alpha": [1e-4, 1e-2]}
    else:
        from sklearn.ensemble import GradientBoostingRegressor
        estimator = GradientBoostingRegressor(n_estimators=30, random_state=0)
        grid = {"max_depth": [2, 3, 4, 5], "learning_rate": [0.05, 0.1],
                "subsample": [0.8, 1.0]}
    pipe = make_pipeline(StandardScaler(), estimator)
    name = pipe.steps[-1][0]
    grid = {f"{name}__{key}": values for key, values in grid.items()}
    return GridSearchCV(pipe, grid, cv=3, n_jobs=n_jobs)


# a user's first search: the imports are done and the data loaded (from a
# file, so that nothing of the package has run before the timed search)
_FIRST_SEARCH = """
    import json, sys, time, warnings
    import numpy as np
    sys.path.insert(0, {benchmarks!r})
    from bench_runtime import search_problem
    warnings.simplefilter("ignore")
    search = search_problem({n_jobs}, {which!r})
    with np.load({data!r}) as data:
        X, y = data["X"], data["y"]
    start = time.perf_counter()
    search.fit(X, y)
    print(json.dumps({{"wall_s": time.perf_counter() - start}}))
"""


def bench_search(repeat):
    result = {}
    X, y = model_data(2_000, 4, 3)
    first = {(which, n_jobs): [] for which in SEARCHES for n_jobs in (1, 2)}
    with tempfile.TemporaryDirectory() as folder:
        data = str(Path(folder) / "search_data.npz")
        np.savez(data, X=X, y=y)
        for _ in range(repeat):  # alternating, so that a change of load falls on all
            for which, n_jobs in first:
                code = _FIRST_SEARCH.format(benchmarks=str(ROOT / "benchmarks"),
                                            n_jobs=n_jobs, which=which, data=data)
                first[which, n_jobs].append(run_child(code)[0]["wall_s"])
    for which in SEARCHES:
        searches = {n_jobs: search_problem(n_jobs, which) for n_jobs in (1, 2)}
        for search in searches.values():
            timed_fit(search, X, y)  # untimed: the workers start
        warm = alternating_medians(
            {n_jobs: lambda s=search: timed_fit(s, X, y) for n_jobs, search in searches.items()},
            repeat)
        row = {f"n_jobs_{n_jobs}": {"first_s": statistics.median(first[which, n_jobs]),
                                    "first_runs_s": first[which, n_jobs],
                                    "warm_s": warm[n_jobs]}
               for n_jobs in (1, 2)}
        one, two = row["n_jobs_1"], row["n_jobs_2"]
        row["ratio_first"] = one["first_s"] / two["first_s"]
        row["ratio_warm"] = one["warm_s"] / two["warm_s"]
        result[which] = row
        print(f"search ({which}): 16 candidates x 3 folds, first search of a fresh "
              f"process: n_jobs=1 {one['first_s']:.2f} s, n_jobs=2 {two['first_s']:.2f} s: "
              f"{row['ratio_first']:.2f}x; workers started: {one['warm_s']:.2f} s against "
              f"{two['warm_s']:.2f} s: {row['ratio_warm']:.2f}x", flush=True)
    # what a first n_jobs=2 search pays before any of its work: two fresh
    # worker processes that import the package and fit once (its kernels load)
    start, _ = run_child(_WORKER_START)
    result["worker_start_s"] = start["wall_s"]
    # what one fresh process spends on each part of that start (imports of
    # NumPy and scikit-learn's model selection, of the package, its first fit)
    result["start_split"] = split = run_child(_START_SPLIT)[0]
    print(f"search: two fresh workers start and fit once in {start['wall_s']:.2f} s; a "
          f"fresh process imports NumPy and scikit-learn in {split['scikit_learn_s']:.2f} s, "
          f"the package in {split['package_import_s']:.2f} s, and fits once (its kernels "
          f"load) in {split['first_fit_s']:.2f} s", flush=True)
    return result


_MEMORY = """
    import json, resource, warnings
    import numpy as np
    from sklearn_cosmoe import CosineMoERegressor
    warnings.simplefilter("ignore")
    rng = np.random.default_rng(0)
    CosineMoERegressor(n_experts=2, max_iter=2).fit(rng.standard_normal((600, 3)),
                                                     rng.standard_normal(600))
    X = rng.standard_normal((100_000, 200))
    y = np.tanh(X[:, :5].sum(axis=1)) + 0.1 * rng.standard_normal(100_000)
    page = resource.getpagesize()
    with open("/proc/self/statm") as f:
        before = int(f.read().split()[1]) * page
    high_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    CosineMoERegressor(n_experts=10, max_iter=3, random_state=0).fit(X, y)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"x_bytes": X.nbytes, "before": before, "high_before": high_before,
                      "peak": peak}))
"""


def bench_memory():
    out, _ = run_child(_MEMORY)
    extra = out["peak"] - out["before"]
    result = dict(out, extra_bytes=extra, ratio=extra / out["x_bytes"])
    print(f"memory: fit at d=200, k=10, n=1e5: peak {out['peak'] / 2**20:.0f} MiB, "
          f"{extra / 2**20:.0f} MiB beyond the {out['before'] / 2**20:.0f} MiB held "
          f"before the fit = {extra / out['x_bytes']:.2f}x X "
          f"({out['x_bytes'] / 2**20:.0f} MiB)", flush=True)
    return result


def write_markdown(path, results):
    lines = [f"# Runtime benchmark at {results['git']}", "",
             f"`{results['command']}`; load average at the start "
             f"{results['load_start']:.1f}, at the end {results['load_end']:.1f}; "
             f"{os.cpu_count()} CPUs.", ""]
    if "capacity" in results:
        c = results["capacity"]
        lines += [f"Cores this session got (two spinning processes against one): "
                  f"{c['cores']:.2f}.", ""]
    if "busy" in results:
        ref = results.get("reference")
        lines += ["## Fit beside two busy processes (d = 10, k = 4)", "",
                  "Busy / quiet, the busy processes in this session (the cores shared "
                  "thread by thread: goal <= 2x) and in sessions of their own (shared "
                  "by session first, where autogroup scheduling is on)"
                  + ("; in brackets, what a spinning child process of this session, "
                     "and two at once, paid beside the same busy processes." if ref else "."),
                  "", "| n | quiet | busy, this session | busy, own sessions |",
                  "|---|---|---|---|"]
        for r in results["busy"]:
            cells = [f"{r[key]['busy_s']:.3f} s: **{r[key]['ratio']:.2f}x**"
                     for key, _, _ in REGIMES]
            lines.append(f"| {r['n']} | {r['quiet_s']:.3f} s | {cells[0]} | {cells[1]} |")
        if ref:
            cells = [f"{ref['1_jobs'][key]['ratio']:.2f}x / {ref['2_jobs'][key]['ratio']:.2f}x"
                     for key, _, _ in REGIMES]
            lines.append(f"| (spinning: one / two) | {ref['1_jobs']['quiet_s']:.3f} s / "
                         f"{ref['2_jobs']['quiet_s']:.3f} s | ({cells[0]}) | ({cells[1]}) |")
        lines.append("")
        if ref:
            lines += ["What the cores are worth: the spinning children are timed under "
                      "the same rule (mean loop time of the children, median of the runs). "
                      "Shared thread by thread, two threads beside two busy ones get one "
                      "core (2x) and one thread 2/3 of a core (1.5x). Autogroup scheduling "
                      f"(on this machine: "
                      f"{ {True: 'on', False: 'off', None: 'unknown'}[ref['autogroup']] }) "
                      "shares the cores between sessions first: beside two busy sessions "
                      "this session's parallel work gets about 2/3 of a core (3x its quiet "
                      "time on two cores) and its serial work half a core (2x).", ""]
    if "threads" in results:
        lines += ["## One evaluation, 1 thread against 2 (d = 10, k = 4)", "",
                  "| n | 1 thread | 2 threads | ratio |", "|---|---|---|---|"]
        lines += [f"| {r['n']} | {r['one_thread_s'] * 1e6:.0f} us | "
                  f"{r['two_threads_s'] * 1e6:.0f} us | {r['ratio']:.2f}x |"
                  for r in results["threads"]]
        lines.append("")
    if "cold" in results:
        c = results["cold"]
        lines += ["## First fit (300 x 4 rows) in a fresh process", "",
                  f"* empty numba cache: {c['cold_wall_s']:.1f} s ({c['cold_cpu_s']:.1f} s "
                  "CPU), compilation included",
                  f"* cache filled: {c['warm_wall_s']:.2f} s", ""]
    if "search" in results:
        s = results["search"]
        lines += ["## GridSearchCV, 16 candidates x 3 folds (2000 x 4 rows)", "",
                  "n_jobs=1 / n_jobs=2 (goal >= 1.6x, never slower), for the package's "
                  "search and, for reference, one over scikit-learn's "
                  "`GradientBoostingRegressor(n_estimators=30)` (single-threaded) whose "
                  "serial search takes about as long. First search: in a fresh process, "
                  "which starts its joblib workers; workers started: a search after one "
                  "untimed search in this process.", "",
                  "| search | n_jobs | first search | workers started |", "|---|---|---|---|"]
        for which in SEARCHES:
            row = s[which]
            for n_jobs in (1, 2):
                t = row[f"n_jobs_{n_jobs}"]
                lines.append(f"| {which} | {n_jobs} | {t['first_s']:.2f} s | "
                             f"{t['warm_s']:.2f} s |")
            lines.append(f"| {which} | 1 / 2 | **{row['ratio_first']:.2f}x** | "
                         f"**{row['ratio_warm']:.2f}x** |")
        lines.append("")
        for which in SEARCHES:
            runs = {n: ", ".join(f"{t:.2f}" for t in s[which][f"n_jobs_{n}"]["first_runs_s"])
                    for n in (1, 2)}
            lines.append(f"First searches of the {which} search (fresh processes, "
                         f"alternating): n_jobs=1 {runs[1]} s; n_jobs=2 {runs[2]} s.")
        sp = s["start_split"]
        lines += ["", f"Two fresh joblib workers (loky) that import the package and fit "
                  f"once take {s['worker_start_s']:.2f} s (in a child process): a first "
                  f"`n_jobs=2` search pays about that before its work. One fresh process "
                  f"imports NumPy and scikit-learn's model selection in "
                  f"{sp['scikit_learn_s']:.2f} s, the package in "
                  f"{sp['package_import_s']:.2f} s, and fits once (300 x 4 rows, its "
                  f"kernels loaded from the cache) in {sp['first_fit_s']:.2f} s.", ""]
    if "memory" in results:
        m = results["memory"]
        lines += ["## Peak memory of a fit at d = 200, k = 10, n = 1e5", "",
                  f"{m['extra_bytes'] / 2**20:.0f} MiB beyond what the process held "
                  f"before the fit: {m['ratio']:.2f}x X ({m['x_bytes'] / 2**20:.0f} MiB).",
                  ""]
    path.write_text("\n".join(lines))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=None,
                        help="output folder (default: a new temporary folder)")
    parser.add_argument("--skip", nargs="*", default=[], choices=PARTS)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    revision = git_describe()
    out = output_folder(args.out, prefix="bench_runtime_")
    results = {"git": revision, "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
               "load_start": os.getloadavg()[0]}
    parts = {"capacity": bench_capacity,
             "reference": lambda: bench_reference(args.repeat),
             "busy": lambda: bench_busy(args.repeat),
             "threads": lambda: bench_threads(args.repeat),
             "cold": bench_cold, "search": lambda: bench_search(args.repeat),
             "memory": bench_memory}
    for name, run in parts.items():
        if name not in args.skip:
            results[name] = run()
    results["load_end"] = os.getloadavg()[0]
    (out / "runtime.json").write_text(json.dumps(results, indent=1))
    write_markdown(out / "runtime.md", results)
    print(f"results: {out / 'runtime.md'}")


if __name__ == "__main__":
    main()

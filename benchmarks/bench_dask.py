"""Scale on a Dask cluster: fits on 1e6 to 3e7 rows, a prediction streamed over 1e8.

On a ``distributed.LocalCluster`` of 2 worker processes with one thread each
(started by the script), for each ``n`` in ``--sizes`` (d = 10, k = 4,
perturbed cosine router, linear experts):

* the data are drawn chunk by chunk on the workers (``dask.array.random``,
  targets from the package's forward pass plus noise): ``--chunks-per-worker``
  chunks per worker;
* ``dask``: :func:`sklearn_cosmoe._solvers.lbfgs_with_restart` runs
  ``--iterations`` L-BFGS iterations (``tol=0``) from a fixed start on the
  Dask objective (rows persisted on the workers, one round of per-chunk tasks
  per evaluation); wall time per iteration;
* ``memory``: the same iterations on the in-memory objective
  (:class:`~sklearn_cosmoe._objective.ArrayObjective`) of the same rows,
  gathered into this process, with the package's threads (all cores); wall
  time per iteration, and the ratio dask / memory; the two final objectives
  after the same iterations, and their relative difference;
* the peak resident memory of each worker (``getrusage``; each size on a
  cluster of its own) against the size of its share of ``X``.

Then a model fitted in memory on a 1e5-row sample predicts ``--predict-rows``
rows drawn chunk by chunk on the workers and never materialised: the time of
``predict(X).sum()`` (drawing and predicting) and of ``X.sum()`` (drawing
alone), medians of three alternating passes each; drawing costs more than
predicting, so the difference of the two is within the noise and is not
reported.  The prediction's own cost is the time of ``predict`` on one chunk
in this process (median of three).

Every time is one timed run (wall clock) after an untimed evaluation that
warms both objectives.  Results go to ``--out`` (default: a new temporary
folder) as ``dask.md`` and ``dask.json``, with ``git describe --dirty``; the
script refuses to write into ``benchmarks/results/`` from a dirty tree.

    python benchmarks/bench_dask.py --sizes 1e6 --predict-rows 1e7   # a quick run
    python benchmarks/bench_dask.py --out benchmarks/results/dask     # all sizes
    python benchmarks/bench_dask.py --sizes --out benchmarks/results/dask_predict
"""

import argparse
import contextlib
import json
import os
import platform
import resource
import time
import warnings

import numpy as np

from _common import git_describe, output_folder, true_params

D, K = 10, 4
PREDICT_ROUNDS = 3


def worker_peak_rss(client):
    """Peak resident memory of each worker process, in bytes (Linux: ru_maxrss in KiB)."""
    peaks = client.run(lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
    return sorted(peaks.values())


def model_rows(n, chunk, params, spec, seed):
    """``X`` (n, D) and ``y`` drawn chunk by chunk on the workers."""
    import dask.array as da

    from sklearn_cosmoe._model import predict

    rng = da.random.default_rng(seed)
    X = rng.standard_normal((n, D), chunks=(chunk, D))
    f = X.map_blocks(predict, params, spec, drop_axis=1, dtype=np.float64,
                     meta=np.empty(0))
    y = f + 0.3 * rng.standard_normal(n, chunks=(chunk,))
    return X, y


def iterations(data, theta, shape, spec, n_iter):
    """Wall time of ``n_iter`` L-BFGS iterations (and the evaluations they took)."""
    from sklearn_cosmoe._solvers import lbfgs_with_restart

    calls = []

    def fun(t):
        calls.append(1)
        return data.loss_and_gradient(t, shape, spec)

    data.loss_and_gradient(theta, shape, spec)  # untimed: warm
    start = time.perf_counter()
    theta, loss, done, _ = lbfgs_with_restart(fun, theta, n_iter, 0.0)
    return time.perf_counter() - start, done, len(calls), float(loss)


def bench_size(client, n, args, params, spec):
    import dask
    import dask.array as da

    from sklearn_cosmoe._dask import DaskObjective
    from sklearn_cosmoe._model import MoEParams
    from sklearn_cosmoe._objective import ArrayObjective

    n_chunks = 2 * args.chunks_per_worker
    X, y = model_rows(n, -(-n // n_chunks), params, spec, seed=n)
    w = da.ones(n, chunks=(X.chunks[0],))
    t0 = time.perf_counter()
    chunks = DaskObjective(X, y, w)
    dask.compute(chunks.X.sum())  # wait for the persisted chunks
    t_persist = time.perf_counter() - t0
    rng = np.random.default_rng(0)
    start = MoEParams(rng.standard_normal((K, D)), np.zeros(K),
                      0.1 * rng.standard_normal((K, D)), np.zeros(K))
    theta = start.to_vector(spec)
    t_dask, it_dask, ev_dask, loss_dask = iterations(chunks, theta, start.shape, spec,
                                                     args.iterations)
    peaks = worker_peak_rss(client)
    X_mem, y_mem = dask.compute(chunks.X, chunks.y)
    memory = ArrayObjective(X_mem, y_mem, np.ones(n))
    t_mem, it_mem, ev_mem, loss_mem = iterations(memory, theta, start.shape, spec,
                                                 args.iterations)
    share = X_mem.nbytes / 2
    del X_mem, y_mem, memory, chunks
    row = {"n": n, "chunks": n_chunks, "persist_s": t_persist,
           "dask_s_per_iter": t_dask / it_dask, "dask_iters": it_dask, "dask_evals": ev_dask,
           "memory_s_per_iter": t_mem / it_mem, "memory_iters": it_mem,
           "memory_evals": ev_mem, "ratio": (t_dask / it_dask) / (t_mem / it_mem),
           "loss_dask": loss_dask, "loss_memory": loss_mem,
           "loss_rel_diff": abs(loss_dask - loss_mem) / abs(loss_mem),
           "worker_peak_rss_bytes": peaks, "x_share_bytes": share}
    print(f"n={n:.0e}: dask {row['dask_s_per_iter']:.3f} s/iter, memory "
          f"{row['memory_s_per_iter']:.3f} s/iter, ratio {row['ratio']:.2f}; "
          f"objective rel. diff {row['loss_rel_diff']:.1e}; worker peaks "
          f"{[f'{p / 2**30:.2f}' for p in peaks]} GiB (X share {share / 2**30:.2f} GiB)",
          flush=True)
    return row


def bench_predict(client, n_rows, args, params, spec):
    import dask.array as da

    from sklearn_cosmoe import CosineMoERegressor
    from sklearn_cosmoe._model import predict

    rng = np.random.default_rng(1)
    X_fit = rng.standard_normal((100_000, D))
    y_fit = predict(X_fit, params, spec) + 0.3 * rng.standard_normal(100_000)
    reg = CosineMoERegressor(n_experts=K, random_state=0).fit(X_fit, y_fit)
    chunk = args.predict_chunk
    X = da.random.default_rng(2).standard_normal((n_rows, D), chunks=(chunk, D))
    # one rule for both: PREDICT_ROUNDS alternating passes each, medians
    draw, both = [], []
    for _ in range(PREDICT_ROUNDS):
        t0 = time.perf_counter()
        X.sum().compute()
        draw.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        total = float(reg.predict(X).sum().compute())
        both.append(time.perf_counter() - t0)
    peaks = worker_peak_rss(client)
    # the prediction of one chunk in this process, for its own cost
    block = np.random.default_rng(3).standard_normal((chunk, D))
    reg.predict(block)
    one = []
    for _ in range(PREDICT_ROUNDS):
        t0 = time.perf_counter()
        reg.predict(block)
        one.append(time.perf_counter() - t0)
    row = {"n": n_rows, "chunk_rows": chunk, "rounds": PREDICT_ROUNDS,
           "draw_s": draw, "draw_and_predict_s": both,
           "one_chunk_predict_s": one, "prediction_sum": total,
           "worker_peak_rss_bytes": peaks}
    print(f"predict {n_rows:.0e} rows: draw {np.median(draw):.1f} s, draw + predict "
          f"{np.median(both):.1f} s (medians of {PREDICT_ROUNDS}); one chunk in process "
          f"{np.median(one):.3f} s; worker peaks {[f'{p / 2**30:.2f}' for p in peaks]} GiB",
          flush=True)
    return row


def write(out, result):
    (out / "dask.json").write_text(json.dumps(result, indent=2))
    lines = [f"# Dask: fits by chunks and a streamed prediction ({result['git']})", "",
             f"{result['machine']}; LocalCluster of 2 worker processes x 1 thread; "
             f"d = {D}, k = {K}, perturbed cosine router, linear experts; "
             f"{result['iterations']} L-BFGS iterations from a fixed start.", "",
             "| n | chunks | dask s/iter | in-memory s/iter | ratio | objective rel. diff "
             "| worker peak RSS (GiB) | X per worker (GiB) |",
             "|---|---|---|---|---|---|---|---|"]
    for r in result["fits"]:
        lines.append(
            f"| {r['n']:.0e} | {r['chunks']} | {r['dask_s_per_iter']:.3f} "
            f"| {r['memory_s_per_iter']:.3f} | {r['ratio']:.2f} | {r['loss_rel_diff']:.1e} "
            f"| {', '.join(f'{p / 2**30:.2f}' for p in r['worker_peak_rss_bytes'])} "
            f"| {r['x_share_bytes'] / 2**30:.2f} |")
    for r in result["predict"]:
        draw, both = np.median(r["draw_s"]), np.median(r["draw_and_predict_s"])
        one = np.median(r["one_chunk_predict_s"])
        lines += ["", f"Prediction streamed over {r['n']:.0e} rows ({r['chunk_rows']:.0e} "
                  f"per chunk, drawn on the workers, never materialised), medians of "
                  f"{r['rounds']} alternating passes: drawing and predicting "
                  f"{both:.1f} s ({r['n'] / both:.2e} rows/s end to end), drawing alone "
                  f"{draw:.1f} s. One chunk predicted in one process: {one:.3f} s "
                  f"({r['chunk_rows'] / one:.2e} rows/s on one thread's share). Worker "
                  f"peak RSS {', '.join(f'{p / 2**30:.2f}' for p in r['worker_peak_rss_bytes'])} "
                  "GiB."]
    for note in result["not_run"]:
        lines += ["", f"Not run: {note}"]
    (out / "dask.md").write_text("\n".join(lines) + "\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=float, nargs="*", default=[1e6, 1e7, 3e7],
                        help="rows of the fits; none for the prediction alone")
    parser.add_argument("--predict-rows", type=float, default=1e8)
    parser.add_argument("--predict-chunk", type=int, default=2_000_000)
    parser.add_argument("--iterations", type=int, default=10)
    parser.add_argument("--chunks-per-worker", type=int, default=4)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    out = output_folder(args.out, prefix="bench_dask_")

    from sklearn_cosmoe._model import MoESpec

    spec = MoESpec()
    params = true_params(D, K, "perturbed_cosine", np.random.default_rng(0))
    result = {"git": git_describe(), "machine": f"{platform.node()}, {os.cpu_count()} cores",
              "iterations": args.iterations, "fits": [], "predict": [], "not_run": []}
    try:
        for n in args.sizes:
            with fresh_cluster() as client:
                result["fits"].append(bench_size(client, int(n), args, params, spec))
            write(out, result)
        if args.predict_rows > 0:
            with fresh_cluster() as client:
                result["predict"].append(bench_predict(client, int(args.predict_rows),
                                                       args, params, spec))
    finally:
        write(out, result)
    print(f"results in {out}")


@contextlib.contextmanager
def fresh_cluster():
    """A new 2-process cluster, so that each worker's peak memory is of one part alone."""
    import distributed

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1,
                                           processes=True, dashboard_address=None)
        client = distributed.Client(cluster)
    try:
        yield client
    finally:
        client.close()
        cluster.close()


if __name__ == "__main__":
    main()

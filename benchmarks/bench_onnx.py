"""ONNX Runtime against ``predict``: one-row latency and 1e5-row throughput.

Fits a few models on data drawn from the mixture (``_common.make_model_data``,
``d = 10``), converts each with :func:`sklearn_cosmoe.onnx.to_onnx` (a double
graph for float64 rows, a float graph for float32 rows) and times, in the
same process:

* *one row*: ``--calls`` calls of ``predict`` (``predict_proba`` for the
  classifier) and of ``InferenceSession.run`` on one row, in ``--rounds``
  alternating rounds (the two take turns, so a busy machine slows both
  alike); the median of the per-call times of each;
* *1e5 rows*: ``--repeat`` calls of each on ``--rows`` rows, taking turns;
  the median, reported as rows per second.

Both run on ``--threads`` threads (ONNX Runtime's ``intra_op_num_threads``;
the package's kernels under ``threadpoolctl``'s OpenMP limit, which they
honour).  The ratios are predict's time over ONNX Runtime's.  Each model's
largest difference between the two outputs on the 1e5 rows, relative to the
largest output, is reported too.

    python benchmarks/bench_onnx.py [--out DIR]

Results go to ``onnx.md`` / ``onnx.json`` in a new temporary folder or in
``--out``; ``--out benchmarks/results`` is refused from a dirty tree.
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import git_describe, make_model_data, output_folder  # noqa: E402

import onnx  # noqa: E402
import onnxruntime as ort  # noqa: E402
import skl2onnx  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

from sklearn_cosmoe import CosineMoEClassifier, CosineMoERegressor  # noqa: E402
from sklearn_cosmoe.onnx import to_onnx  # noqa: E402

D, K, N_TRAIN = 10, 4, 2000
MODELS = {
    "regressor, linear experts": lambda: CosineMoERegressor(n_experts=K),
    "regressor, gelu experts, top_k=2": lambda: CosineMoERegressor(
        n_experts=K, expert="gelu", top_k=2),
    "classifier, 3 classes": lambda: CosineMoEClassifier(n_experts=K),
}


def fitted(name, X, y, max_iter):
    model = MODELS[name]()
    model.set_params(max_iter=max_iter, random_state=0)
    if isinstance(model, CosineMoEClassifier):
        y = np.digitize(y, np.quantile(y, [1 / 3, 2 / 3]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return model.fit(X, y)


def session(model, X, threads):
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    onnx_options = None
    if isinstance(model, CosineMoEClassifier):
        onnx_options = {id(model): {"zipmap": False}}
    proto = to_onnx(model, X[:1], options=onnx_options)
    sess = ort.InferenceSession(proto.SerializeToString(), options,
                                providers=["CPUExecutionProvider"])
    output = 1 if isinstance(model, CosineMoEClassifier) else 0
    names = [sess.get_outputs()[output].name]
    return lambda rows: sess.run(names, {"X": rows})[0]


def per_call_times(fns, calls, rounds):
    """Per-call wall times of each ``fn()``, taking turns by rounds."""
    times = [[] for _ in fns]
    per_round = max(1, calls // rounds)
    for fn in fns:  # warm-up
        fn()
    for _ in range(rounds):
        for fn, out in zip(fns, times):
            for _ in range(per_round):
                t0 = time.perf_counter()
                fn()
                out.append(time.perf_counter() - t0)
    return times


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=2000,
                        help="one-row calls of each (default 2000)")
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--max-iter", type=int, default=50)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    out = output_folder(args.out, prefix="bench_onnx_")
    revision = git_describe()     # at the start: the tree the numbers come from
    X_train, y_train, *_ = make_model_data(N_TRAIN, D, K, seed=0)
    X_big, *_ = make_model_data(args.rows, D, K, seed=0, sample_seed=1)
    rows = []
    for name in MODELS:
        model = fitted(name, X_train, y_train, args.max_iter)
        predict = (model.predict_proba if isinstance(model, CosineMoEClassifier)
                   else model.predict)
        for dtype in (np.float64, np.float32):
            X = X_big.astype(dtype)
            one = X[:1]
            run = session(model, X, args.threads)
            with threadpool_limits(limits=args.threads, user_api="openmp"):
                want = predict(X).reshape(len(X), -1)
                got = run(X).reshape(len(X), -1)
                diff = float(np.max(np.abs(got - want)) / np.max(np.abs(want)))
                t_pred, t_onnx = per_call_times([lambda: predict(one), lambda: run(one)],
                                                args.calls, args.rounds)
                b_pred, b_onnx = per_call_times([lambda: predict(X), lambda: run(X)],
                                                args.repeat, args.repeat)
            row = {"model": name, "dtype": np.dtype(dtype).name,
                   "one_row_predict_s": float(np.median(t_pred)),
                   "one_row_onnx_s": float(np.median(t_onnx)),
                   "one_row_calls": len(t_pred),
                   "rows": args.rows,
                   "batch_predict_s": float(np.median(b_pred)),
                   "batch_onnx_s": float(np.median(b_onnx)),
                   "batch_calls": len(b_pred),
                   "max_relative_difference": diff}
            row["one_row_ratio"] = row["one_row_predict_s"] / row["one_row_onnx_s"]
            row["batch_ratio"] = row["batch_predict_s"] / row["batch_onnx_s"]
            rows.append(row)
            print(f"{name}, {row['dtype']}: one row {row['one_row_predict_s'] * 1e6:.0f} µs "
                  f"vs {row['one_row_onnx_s'] * 1e6:.1f} µs ({row['one_row_ratio']:.1f}x); "
                  f"{args.rows} rows {row['batch_predict_s'] * 1e3:.1f} ms vs "
                  f"{row['batch_onnx_s'] * 1e3:.1f} ms ({row['batch_ratio']:.2f}x); "
                  f"max rel. diff {diff:.1e}", flush=True)
    command = "python benchmarks/bench_onnx.py " + " ".join(
        sys.argv[1:] if argv is None else argv)
    versions = {"numpy": np.__version__, "onnxruntime": ort.__version__,
                "onnx": onnx.__version__, "skl2onnx": skl2onnx.__version__}
    report = {"command": command, "git": revision, "threads": args.threads,
              "cpu_count": os.cpu_count(), "machine": platform.machine(),
              "versions": versions, "d": D, "k": K, "n_train": N_TRAIN,
              "max_iter": args.max_iter, "rows": rows}
    (out / "onnx.json").write_text(json.dumps(report, indent=1))
    L = ["# ONNX Runtime against predict", "",
         f"`{command}`; git describe --dirty: `{revision}`; "
         + ", ".join(f"{k} {v}" for k, v in versions.items())
         + f"; {args.threads} thread(s) each, {os.cpu_count()} cores.", "",
         f"Models fitted on {N_TRAIN} rows drawn from the mixture (d = {D}, k = {K}, "
         f"max_iter = {args.max_iter}). *One row*: median of {rows[0]['one_row_calls']} "
         f"calls each, taking turns in {args.rounds} rounds (`predict`, or "
         "`predict_proba` for the classifier, against `InferenceSession.run`). "
         f"*{args.rows} rows*: median of {args.repeat} calls each, taking turns. "
         "Ratio: predict's time over ONNX Runtime's; the last column is the largest "
         "difference of the two outputs on the batch over the largest output.", "",
         "| model | rows dtype | one row: predict | one row: ONNX Runtime | ratio | "
         f"{args.rows} rows: predict | ONNX Runtime | ratio | max diff / max output |",
         "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        L.append(f"| {r['model']} | {r['dtype']} | {r['one_row_predict_s'] * 1e6:.0f} µs | "
                 f"{r['one_row_onnx_s'] * 1e6:.1f} µs | {r['one_row_ratio']:.1f} | "
                 f"{r['batch_predict_s'] * 1e3:.1f} ms | {r['batch_onnx_s'] * 1e3:.1f} ms | "
                 f"{r['batch_ratio']:.2f} | {r['max_relative_difference']:.1e} |")
    (out / "onnx.md").write_text("\n".join(L) + "\n")
    print(f"wrote {out / 'onnx.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""
==========================================
Export to ONNX and predict in ONNX Runtime
==========================================

A fitted pipeline (a :class:`~sklearn.preprocessing.StandardScaler` and a
:class:`~sklearn_cosmoe.CosineMoERegressor`) is converted to one ONNX graph,
saved, loaded again by ONNX Runtime and used to predict; the predictions are
those of ``predict`` (user guide, :ref:`deployment`).  This example needs the
``onnx`` extra: ``pip install "sklearn-cosmoe[onnx]"``.
"""

# %%
# Fit a pipeline
# --------------
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import skl2onnx
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import sklearn_cosmoe.onnx  # noqa: F401  (registers the converters with skl2onnx)
from sklearn_cosmoe import CosineMoERegressor
from sklearn_cosmoe.datasets import make_cosine_moe

X, y, _ = make_cosine_moe(600, n_features=3, n_experts=3, temperature=0.2, noise=0.1,
                          random_state=0)
pipe = make_pipeline(StandardScaler(),
                     CosineMoERegressor(n_experts=3, temperature=0.2, expert="gelu",
                                        top_k=2, random_state=0))
pipe.fit(X, y)

# %%
# Convert, save, load
# -------------------
# ``skl2onnx.to_onnx`` takes a few rows of the input: float32 rows give a
# float graph, float64 rows a double graph.  The whole pipeline becomes one
# graph with one input, ``X``.
model = skl2onnx.to_onnx(pipe, X[:1].astype(np.float64))
path = Path(tempfile.mkdtemp()) / "cosmoe.onnx"
path.write_bytes(model.SerializeToString())
print(f"{path.name}: {path.stat().st_size} bytes, {len(model.graph.node)} nodes")

session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
print("inputs:", [(i.name, i.type, i.shape) for i in session.get_inputs()])
print("outputs:", [(o.name, o.type, o.shape) for o in session.get_outputs()])

# %%
# Predict
# -------
# ONNX Runtime returns a column ``(n, 1)`` for one output.
X_new = np.random.default_rng(1).standard_normal((1000, 3))
onnx_pred = session.run(None, {"X": X_new})[0][:, 0]
skl_pred = pipe.predict(X_new)
print(f"largest relative difference: "
      f"{np.max(np.abs(onnx_pred - skl_pred) / np.abs(skl_pred).max()):.1e}")

# %%
# One row at a time
# -----------------
# For a single row, ``predict`` spends most of its time checking its input;
# ONNX Runtime runs the graph directly.
row = X_new[:1]


def median_time(fn, calls=300):
    times = []
    for _ in range(calls):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return np.median(times)


t_skl = median_time(lambda: pipe.predict(row))
t_onnx = median_time(lambda: session.run(None, {"X": row}))
print(f"one row: predict {t_skl * 1e6:.0f} µs, ONNX Runtime {t_onnx * 1e6:.0f} µs")

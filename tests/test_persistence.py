"""Saving and loading: skops with only the package's types trusted, and pickle.

``tests/fixtures/cosmoe-0.1.0.skops`` was saved by version 0.1.0 with
:func:`make_fixture` (run this file as a script to write it again, for a new
version under a new name); later versions must keep loading it and predict
what it recorded.
"""

import io
import json
import os
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sklearn_cosmoe import CosineMoEClassifier, CosineMoERegressor, persistence

skops_io = pytest.importorskip("skops.io")

FIXTURES = Path(__file__).resolve().parent / "fixtures"
FIXTURE = FIXTURES / "cosmoe-0.1.0.skops"


def make_fixture(path=FIXTURE):
    """A small fitted model with the inputs and predictions it was saved with."""
    rng = np.random.default_rng(0)
    X = rng.uniform(-1, 1, (60, 3))
    y = np.where(X[:, 0] > 0, X @ [1.0, -2.0, 0.5], X @ [-1.0, 0.5, 2.0]) + 3.0
    reg = CosineMoERegressor(n_experts=2, expert="tanh", top_k=1, tau2=0.5,
                             random_state=0).fit(X, y)
    X_new = rng.uniform(-1, 1, (5, 3))
    record = {"model": reg, "X": X_new, "predict": reg.predict(X_new),
              "predict_gates": reg.predict_gates(X_new)}
    skops_io.dump(record, path)


@pytest.fixture(scope="module")
def fitted():
    rng = np.random.default_rng(1)
    X = rng.standard_normal((80, 3))
    y = np.sin(X[:, 0]) + X[:, 1]
    return make_pipeline(StandardScaler(),
                         CosineMoERegressor(n_experts=2, random_state=0)).fit(X, y), X


def test_skops_roundtrip_predicts_identically(fitted, tmp_path):
    model, X = fitted
    persistence.dump(model, tmp_path / "model.skops")
    loaded = persistence.load(tmp_path / "model.skops")
    assert_array_equal(loaded.predict(X), model.predict(X))
    # the same through skops.io itself, naming the package's types
    skops_io.dump(model[-1], tmp_path / "reg.skops")
    untrusted = skops_io.get_untrusted_types(file=tmp_path / "reg.skops")
    assert untrusted == ["sklearn_cosmoe._estimator.CosineMoERegressor"]
    assert set(untrusted) <= set(persistence.TRUSTED_TYPES)
    reg = skops_io.load(tmp_path / "reg.skops", trusted=persistence.TRUSTED_TYPES)
    assert_array_equal(reg.gate_coef_, model[-1].gate_coef_)


def test_skops_roundtrip_of_the_classifier(tmp_path):
    rng = np.random.default_rng(2)
    X = rng.standard_normal((90, 3))
    labels = np.array(["a", "b", "c"])[np.argmax(X, axis=1)]
    clf = CosineMoEClassifier(n_experts=2, random_state=0, max_iter=50).fit(X, labels)
    persistence.dump(clf, tmp_path / "clf.skops")
    loaded = persistence.load(tmp_path / "clf.skops")
    assert_array_equal(loaded.predict_proba(X), clf.predict_proba(X))
    assert_array_equal(loaded.classes_, clf.classes_)


def _tampered(model):
    """``model``'s skops file with one attribute replaced by ``os.system``."""
    clean = skops_io.dumps(model)
    bait = CosineMoERegressor()
    bait.payload = os.system
    payload = json.loads(zipfile.ZipFile(io.BytesIO(skops_io.dumps(bait))).read("schema.json"))
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(clean)) as src, zipfile.ZipFile(out, "w") as dst:
        for name in src.namelist():
            data = src.read(name)
            if name == "schema.json":
                schema = json.loads(data)
                attributes = schema["content"]["content"]
                attributes["router"] = payload["content"]["content"]["payload"]
                data = json.dumps(schema).encode()
            dst.writestr(name, data)
    return out.getvalue()


def test_tampered_file_with_an_unexpected_type_is_refused(fitted, tmp_path):
    reg = fitted[0][-1]
    path = tmp_path / "tampered.skops"
    path.write_bytes(_tampered(reg))
    untrusted = skops_io.get_untrusted_types(file=path)
    assert any(name.endswith(".system") for name in untrusted)
    with pytest.raises(Exception, match="[Uu]ntrusted types.*system") as info:
        persistence.load(path)
    assert type(info.value).__name__ == "UntrustedTypesFoundException"


def test_pickle_still_works(fitted):
    model, X = fitted
    assert_array_equal(pickle.loads(pickle.dumps(model)).predict(X), model.predict(X))


def test_model_saved_by_version_0_1_0_loads_and_predicts_the_same():
    record = persistence.load(FIXTURE)
    reg = record["model"]
    assert isinstance(reg, CosineMoERegressor)
    assert (reg.expert, reg.top_k, reg.tau2) == ("tanh", 1, 0.5)
    assert_allclose(reg.predict(record["X"]), record["predict"], rtol=1e-12, atol=1e-12)
    assert_allclose(reg.predict_gates(record["X"]), record["predict_gates"], atol=1e-12)
    # saved before the fitted hyperparameters were attributes: they come from
    # the stored ones, and set_params no longer changes the predictions
    assert (reg.router_, reg.expert_, reg.top_k_, reg.tau2_) == (
        "perturbed_cosine", "tanh", 1, 0.5)
    before = reg.predict(record["X"])
    reg.set_params(router="bogus", tau2=float("nan"), temperature=0, top_k=None)
    assert_array_equal(reg.predict(record["X"]), before)


if __name__ == "__main__":
    FIXTURES.mkdir(exist_ok=True)
    make_fixture()
    print(f"wrote {FIXTURE}")

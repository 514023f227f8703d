r"""Parameter-estimation metrics: the Voronoi losses of the user guide's :ref:`voronoi-losses`.

By default both measures are first put in canonical form
(:meth:`sklearn_cosmoe.mixing.MixingMeasure.canonical`), so the losses are
zero for every parameter set that gives the same model by the
transformations of :ref:`identifiability-transformations`.  ``form="raw"``
gives the paper's loss on the raw parameters (:ref:`raw-voronoi-loss`).
Fitted estimators are read by their attributes; this module imports no
estimator class.
"""

import numpy as np

from .mixing import MixingMeasure

_KINDS = ("D1", "D2")
_FORMS = ("canonical", "raw")


def voronoi_loss(fitted, true, kind="D1", *, form="canonical"):
    r"""Voronoi loss between a fitted and a true mixing measure.

    With the weights and atoms :math:`(\pi_i, \omega_i)` of the fitted
    measure ``G`` and :math:`(\pi^*_j, \omega^*_j)` of the true ``G*``, each
    fitted atom joins the Voronoi cell of its nearest true atom,

    .. math::

        A_j = \{ i : \|\omega_i - \omega^*_j\| \le \|\omega_i - \omega^*_l\|
              \ \forall l \},

    and

    .. math::

        D_1(G, G^*) = \sum_j \Bigl| \sum_{i \in A_j} \pi_i - \pi^*_j \Bigr|
                    + \sum_j \sum_{i \in A_j} \pi_i \|\omega_i - \omega^*_j\|.

    :math:`D_2` is the same except that cells holding more than one fitted
    atom (:math:`|A_j| > 1`, over-specified) use the squared distance
    :math:`\|\omega_i - \omega^*_j\|^2`.  An empty cell contributes
    :math:`\pi^*_j`.  The weights and atoms are those of the canonical form
    (:meth:`~sklearn_cosmoe.mixing.MixingMeasure.canonical`) or of the raw
    form (:meth:`~sklearn_cosmoe.mixing.MixingMeasure.raw`).

    Parameters
    ----------
    fitted : CosineMoERegressor or MixingMeasure
        Estimated measure ``G`` (a fitted estimator is converted with
        :meth:`MixingMeasure.from_estimator`).
    true : CosineMoERegressor or MixingMeasure
        Reference measure ``G*``; it may have fewer atoms than ``fitted``.
    kind : {"D1", "D2"}, default="D1"
    form : {"canonical", "raw"}, default="canonical"
        ``"canonical"``: atoms with every symmetry of the model removed, the
        loss is zero between any two parameter sets of the same model;
        ``"raw"``: the gate atom is :math:`\beta_{1i}` itself, as in the
        paper's loss, with the translation of the gates removed (the fitted
        measure is put in the truth's normalisation,
        :meth:`~sklearn_cosmoe.mixing.MixingMeasure.raw`); it sees the length
        of a cosine router's :math:`\beta_{1i}`, which the data do not
        determine.

    Returns
    -------
    float

    Raises
    ------
    ValueError
        If ``kind`` or ``form`` is unknown, or the measures differ in router, ``tau1``
        (perturbed cosine router), expert family or number of features.

    Notes
    -----
    A fitted atom at the same distance from two true atoms joins the cell of
    the one listed first.  The output scale and intercept of feed-forward
    experts are common to all experts and are not atoms: they do not enter
    the loss.  The loss is not symmetric in its arguments.

    Examples
    --------
    >>> from sklearn_cosmoe.mixing import MixingMeasure
    >>> from sklearn_cosmoe.metrics import voronoi_loss
    >>> G = MixingMeasure([[1.0, 0.0], [0.0, 1.0]], [0.0, 0.5],
    ...                   [[1.0, 2.0], [-1.0, 0.0]], [0.0, 1.0])
    >>> float(voronoi_loss(G, G))
    0.0
    """
    if kind not in _KINDS:
        raise ValueError(f"kind must be one of {_KINDS}; got {kind!r}.")
    if form not in _FORMS:
        raise ValueError(f"form must be one of {_FORMS}; got {form!r}.")
    fitted = _as_measure(fitted, "fitted")
    true = _as_measure(true, "true")
    _check_compatible(fitted, true)
    if form == "canonical":
        G, G_true = fitted.canonical(), true.canonical()
    else:  # the fitted measure takes the truth's normalisation of the gates
        G, G_true = fitted.raw(reference=true), true.raw()
    atoms, atoms_true = G.atoms, G_true.atoms
    dist = np.linalg.norm(atoms[:, None, :] - atoms_true[None, :, :], axis=2)
    cell = np.argmin(dist, axis=1)  # ties go to the first true atom
    loss = 0.0
    for j in range(true.n_experts):
        members = np.flatnonzero(cell == j)
        loss += abs(G.weights[members].sum() - G_true.weights[j])
        d = dist[members, j]
        if kind == "D2" and members.size > 1:
            d = d ** 2
        loss += G.weights[members] @ d
    return float(loss)


def _as_measure(value, name):
    if isinstance(value, MixingMeasure):
        return value
    if hasattr(value, "fit") and hasattr(value, "gate_coef_"):
        return MixingMeasure.from_estimator(value)
    raise ValueError(
        f"{name} must be a fitted CosineMoERegressor or a MixingMeasure; got "
        f"{type(value).__name__}."
    )


def _check_compatible(fitted, true):
    if fitted.router != true.router:
        raise ValueError(
            f"fitted and true must use the same router; got fitted.router="
            f"{fitted.router!r} and true.router={true.router!r}."
        )
    if fitted.router == "perturbed_cosine" and fitted.tau1 != true.tau1:
        raise ValueError(
            "fitted and true must use the same tau1 (it defines the gate atoms); "
            f"got {fitted.tau1} and {true.tau1}."
        )
    if fitted.expert != true.expert:
        raise ValueError(
            f"fitted and true must use the same expert; got fitted.expert="
            f"{fitted.expert!r} and true.expert={true.expert!r}."
        )
    if fitted.n_features != true.n_features:
        raise ValueError(
            "fitted and true must have the same number of features; got "
            f"{fitted.n_features} and {true.n_features}."
        )

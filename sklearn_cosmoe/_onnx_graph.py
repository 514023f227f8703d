"""ONNX graph pieces of the mixture: router scores, gates, experts, mixture.

Used by :mod:`sklearn_cosmoe.onnx` (which registers the converters with
skl2onnx); nothing else in the package imports this module.  Each function
adds nodes to a skl2onnx container through a :class:`GraphBuilder` and
returns the name of the result, so the graph mirrors the kernels of
:mod:`sklearn_cosmoe._jit_tiles` step by step (user guide, :ref:`deployment`):

* scores: ``beta1_i . x`` by a ``MatMul`` with the gate atoms
  ``beta1_i / (|beta1_i| + tau1)`` (0 where that denominator is 0, as
  :func:`~sklearn_cosmoe._jit_tiles.gate_inverse_norms`), times
  ``1 / ((|x| + tau2) T)`` from ``ReduceL2 + Add + Div``, where a zero
  denominator gives 0 (``Where``): a zero row under the cosine router has a
  cosine term of 0, never NaN;
* gates: ``Softmax``, or ``TopK + Softmax + ScatterElements`` for top-K gates;
  ``TopK`` breaks ties in favour of the lower index, as the kernels do;
* experts: ``MatMul + Add`` and ``Tanh``, ``Sigmoid`` or ``z Phi(z)`` with
  ``Erf`` (float) or, in double graphs, where ONNX Runtime has no ``Erf``,
  Cody's rational approximations of ``erf`` (:func:`erf_double`);
* mixture: ``Mul + ReduceSum`` over the experts.
"""

import numpy as np
from onnx import TensorProto, numpy_helper

# ONNX opsets where the reductions' ``axes`` moved from an attribute to an input
_AXES_INPUT_SINCE = {"ReduceSum": 13, "ReduceL2": 18}
# the oldest opset the converters write: TopK with K as an input (10) and
# ScatterElements (11)
MIN_OPSET = 11

# W. J. Cody, "Rational Chebyshev approximations for the error function",
# Math. Comp. 23 (1969) 631-637: erf on |x| <= 0.46875, erfc on
# 0.46875 < |x| <= 4 and on |x| > 4 (coefficients of his CALERF routine)
_ERF_THRESHOLD = 0.46875
_ERFC_MIDDLE_END = 4.0
_ERF_A = (3.16112374387056560e00, 1.13864154151050156e02, 3.77485237685302021e02,
          3.20937758913846947e03, 1.85777706184603153e-1)
_ERF_B = (2.36012909523441209e01, 2.44024637934444173e02, 1.28261652607737228e03,
          2.84423683343917062e03)
_ERF_C = (5.64188496988670089e-1, 8.88314979438837594e00, 6.61191906371416295e01,
          2.98635138197400131e02, 8.81952221241769090e02, 1.71204761263407058e03,
          2.05107837782607147e03, 1.23033935479799725e03, 2.15311535474403846e-8)
_ERF_D = (1.57449261107098347e01, 1.17693950891312499e02, 5.37181101862009858e02,
          1.62138957456669019e03, 3.29079923573345963e03, 4.36261909014324716e03,
          3.43936767414372164e03, 1.23033935480374942e03)
_ERF_P = (3.05326634961232344e-1, 3.60344899949804439e-1, 1.25781726111229246e-1,
          1.60837851487422766e-2, 6.58749161529837803e-4, 1.63153871373020978e-2)
_ERF_Q = (2.56852019228982242e00, 1.87295284992346725e00, 5.27905102951428412e-1,
          6.05183413124413191e-2, 2.33520497626869185e-3)
_INV_SQRT_PI = 5.6418958354775628695e-1
# erfc(x) underflows beyond this: erf(x) = 1 (which also holds at infinity)
_ERFC_ZERO_FROM = 26.543
_SQRT2 = float(np.sqrt(2.0))

_ONNX_TYPES = {np.dtype(np.float32): TensorProto.FLOAT,
               np.dtype(np.float64): TensorProto.DOUBLE,
               np.dtype(np.int64): TensorProto.INT64}


class GraphBuilder:
    """Adds nodes and initializers to a skl2onnx container in one float type.

    Parameters
    ----------
    scope, container : skl2onnx's Scope and ModelComponentContainer
    dtype : numpy float dtype of the graph (``float32`` or ``float64``)
    opset : int
        The main domain's target opset.
    """

    def __init__(self, scope, container, dtype, opset):
        self.scope = scope
        self.container = container
        self.dtype = np.dtype(dtype)
        self.opset = opset

    @property
    def double(self):
        return self.dtype == np.float64

    def const(self, value, hint="c", dtype=None):
        """An initializer holding ``value`` (in the graph's float type unless ``dtype``)."""
        array = np.asarray(value, dtype=self.dtype if dtype is None else dtype)
        name = self.scope.get_unique_variable_name(hint)
        self.container.add_initializer(name, _ONNX_TYPES[array.dtype], list(array.shape),
                                       array.ravel().tolist())
        return name

    def strings(self, values, hint="classes"):
        """An initializer of strings."""
        name = self.scope.get_unique_variable_name(hint)
        self.container.add_initializer(name, TensorProto.STRING, [len(values)],
                                       [str(v).encode("utf-8") for v in values])
        return name

    def node(self, op_type, inputs, hint=None, n_outputs=1, output=None, **attrs):
        """Add a node; returns its output name (a list for ``n_outputs > 1``)."""
        if output is not None:
            outputs = [output]
        else:
            outputs = [self.scope.get_unique_variable_name(hint or op_type.lower())
                       for _ in range(n_outputs)]
        self.container.add_node(op_type, list(inputs), outputs,
                                name=self.scope.get_unique_operator_name(op_type), **attrs)
        return outputs[0] if n_outputs == 1 else outputs

    def reduce(self, op_type, x, axis, keepdims):
        """``ReduceSum`` or ``ReduceL2`` over one axis, in the form of the target opset."""
        if self.opset >= _AXES_INPUT_SINCE[op_type]:
            return self.node(op_type, [x, self.const([axis], "axes", np.int64)],
                             keepdims=keepdims)
        return self.node(op_type, [x], axes=[axis], keepdims=keepdims)

    def unsqueeze_last(self, x):
        """``x`` with a new last axis of size 1."""
        if self.opset >= 13:
            return self.node("Unsqueeze", [x, self.const([-1], "axes", np.int64)])
        return self.node("Unsqueeze", [x], axes=[-1])

    def reshape(self, x, shape):
        return self.node("Reshape", [x, self.const(shape, "shape", np.int64)])

    # elementwise shorthands
    def add(self, a, b):
        return self.node("Add", [a, b])

    def mul(self, a, b):
        return self.node("Mul", [a, b])

    def div(self, a, b):
        return self.node("Div", [a, b])

    def where(self, condition, a, b):
        return self.node("Where", [condition, a, b])


def gate_scale(gate_coef, router, tau1):
    """``1 / (|beta1_i| + tau1)`` per expert, 0 where that is 0 (1 for the linear router).

    As :func:`sklearn_cosmoe._jit_tiles.gate_inverse_norms`.
    """
    gate_coef = np.asarray(gate_coef, dtype=np.float64)
    if router == "linear":
        return np.ones(gate_coef.shape[0])
    norms = np.sqrt(np.einsum("ij,ij->i", gate_coef, gate_coef))
    q = norms + (tau1 if router == "perturbed_cosine" else 0.0)
    return np.divide(1.0, q, out=np.zeros_like(q), where=q != 0.0)


def router_scores(g, X, gate_coef, gate_intercept, router, tau1, tau2, temperature):
    """Scores ``s_i(x)``, shape ``(n, k)`` (module docstring)."""
    inv_temp = 1.0 / float(temperature)
    atoms = np.asarray(gate_coef, dtype=np.float64) * gate_scale(gate_coef, router,
                                                                 tau1)[:, None]
    if router == "linear":
        # dot_i / T: the temperature goes into the coefficients
        dots = g.node("MatMul", [X, g.const((atoms * inv_temp).T, "gate_coef")])
        return g.add(dots, g.const(gate_intercept, "gate_intercept"))
    dots = g.node("MatMul", [X, g.const(atoms.T, "gate_atoms")])
    denom = g.reduce("ReduceL2", X, axis=1, keepdims=1)
    tau = float(tau2) if router == "perturbed_cosine" else 0.0
    if tau != 0.0:
        denom = g.add(denom, g.const([tau], "tau2"))
    inv_c = g.div(g.const([inv_temp], "inv_temperature"), denom)
    if tau == 0.0:
        # a zero row: the kernels' zero-denominator rule, a cosine term of 0
        is_zero = g.node("Equal", [denom, g.const([0.0], "zero")])
        inv_c = g.where(is_zero, g.const([0.0], "zero"), inv_c)
    return g.add(g.mul(dots, inv_c), g.const(gate_intercept, "gate_intercept"))


def gates(g, scores, n_experts, top_k):
    """Gate weights ``(n, k)``: the softmax of the scores, or of the ``top_k`` largest."""
    if top_k is None or not 0 < top_k < n_experts:
        return g.node("Softmax", [scores], axis=1)
    values, indices = g.node("TopK", [scores, g.const([top_k], "top_k", np.int64)],
                             n_outputs=2, axis=1, largest=1, sorted=1)
    top_gates = g.node("Softmax", [values], axis=1)
    zero = np.zeros(1, dtype=g.dtype)
    zeros = g.node("ConstantOfShape", [g.node("Shape", [scores])],
                   value=numpy_helper.from_array(zero, "zero"))
    return g.node("ScatterElements", [zeros, indices, top_gates], axis=1)


def affine(g, X, coef, intercept, hint):
    """``X @ coef.T + intercept`` for ``coef`` of shape ``(rows, d)``."""
    coef = np.asarray(coef, dtype=np.float64)
    product = g.node("MatMul", [X, g.const(coef.T, hint + "_coef")])
    return g.add(product, g.const(np.ravel(intercept), hint + "_intercept"))


def activation(g, z, expert):
    """The expert's ``h(z)`` (:mod:`sklearn_cosmoe._experts`), elementwise."""
    if expert == "linear":
        return z
    if expert == "tanh":
        return g.node("Tanh", [z])
    if expert == "sigmoid":
        return g.node("Sigmoid", [z])
    # GELU, exact: z * (0.5 * (1 + erf(z / sqrt 2))), in the kernels' order
    u = g.div(z, g.const([_SQRT2], "sqrt2"))
    erf = erf_double(g, u) if g.double else g.node("Erf", [u])
    cdf = g.mul(g.const([0.5], "half"), g.add(g.const([1.0], "one"), erf))
    return g.mul(z, cdf)


def _cody_horner():
    """Cody's six polynomials as the columns of one Horner table, highest degree first.

    Columns: the numerators of the three ranges (in ``z = x^2``, ``y = |x|``
    and ``w = 1/x^2``, the third with the factor ``w`` folded in), then the
    denominators, padded with leading zeros to degree 8; evaluating a column
    by Horner's rule repeats Cody's loops operation for operation.
    """
    a, b, c, d, p, q = _ERF_A, _ERF_B, _ERF_C, _ERF_D, _ERF_P, _ERF_Q
    columns = [
        [a[4], a[0], a[1], a[2], a[3]],
        [c[8], *c[:8]],
        [p[5], p[0], p[1], p[2], p[3], p[4], 0.0],
        [1.0, b[0], b[1], b[2], b[3]],
        [1.0, *d],
        [1.0, q[0], q[1], q[2], q[3], q[4]],
    ]
    table = np.zeros((9, len(columns)))
    for j, column in enumerate(columns):
        table[9 - len(column):, j] = column
    return table


def erf_double(g, x):
    """``erf(x)`` in float64 from standard ONNX operators (Cody, 1969).

    Within a few units in the last place of :func:`math.erf` (the tests
    measure it): ONNX Runtime has no double ``Erf`` kernel.  Cody's six
    polynomials are evaluated together, by Horner's rule on a stack of their
    variables (:func:`_cody_horner`); all three ranges are computed for
    every element and ``Where`` picks the one that applies.
    """
    def c(value):
        return g.const([value], "erf_const")

    y = g.node("Abs", [x])
    z = g.mul(y, y)
    # 1 / max(|x|, 4)^2: finite, and only used beyond 4
    y_tail = g.node("Max", [y, c(_ERFC_MIDDLE_END)])
    w = g.node("Reciprocal", [g.mul(y_tail, y_tail)])
    variables = [g.unsqueeze_last(v) for v in (z, y, w)]
    stack = g.node("Concat", variables + variables, axis=-1)
    table = _cody_horner()
    acc = g.mul(g.const(table[0], "erf_horner"), stack)
    for row in table[1:-1]:
        acc = g.mul(g.add(acc, g.const(row, "erf_horner")), stack)
    acc = g.add(acc, g.const(table[-1], "erf_horner"))

    def columns(start):
        return g.node("Slice", [acc, g.const([start], "starts", np.int64),
                                g.const([start + 3], "ends", np.int64),
                                g.const([-1], "axes", np.int64)])

    ratios = g.div(columns(0), columns(3))
    ratio_small, ratio_middle, ratio_tail = (
        g.node("Gather", [ratios, g.const(i, "index", np.int64)], axis=-1)
        for i in range(3))
    # |x| <= 0.46875: erf(x) = x P(x^2) / Q(x^2)
    small = g.mul(x, ratio_small)
    # beyond: erfc(|x|) = exp(-x^2) R(|x|), R = P(|x|) / Q(|x|) up to 4, then
    # (1/sqrt(pi) - P(1/x^2) / (x^2 Q(1/x^2))) / |x|
    tail = g.div(g.node("Sub", [c(_INV_SQRT_PI), ratio_tail]), y_tail)
    ratio = g.where(g.node("Greater", [y, c(_ERFC_MIDDLE_END)]), tail, ratio_middle)
    erfc = g.mul(g.node("Exp", [g.node("Neg", [z])]), ratio)
    erfc = g.where(g.node("Greater", [y, c(_ERFC_ZERO_FROM)]), c(0.0), erfc)
    large = g.add(g.node("Sub", [c(0.5), erfc]), c(0.5))
    large = g.where(g.node("Less", [x, c(0.0)]), g.node("Neg", [large]), large)
    return g.where(g.node("Greater", [y, c(_ERF_THRESHOLD)]), large, small)


def mixture(g, gate_weights, outputs, n_experts, n_outputs):
    """``sum_i g_i h_i``: ``(n, 1)`` for one output, ``(n, m)`` for ``m``.

    ``outputs`` is ``(n, k)`` for one output and ``(n, k m)`` (expert-major)
    for ``m``.
    """
    if n_outputs is None:
        return g.reduce("ReduceSum", g.mul(gate_weights, outputs), axis=1, keepdims=1)
    weights = g.reshape(gate_weights, [-1, n_experts, 1])
    outputs = g.reshape(outputs, [-1, n_experts, n_outputs])
    return g.reduce("ReduceSum", g.mul(weights, outputs), axis=1, keepdims=0)

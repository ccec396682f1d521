"""The one table of op cases, shared by the gradient check and the PyTorch parity check.

Each :class:`OpCase` names a scratchnn function, the PyTorch function that means the same, and
makers for its inputs. Both callables take one tensor per input (scratchnn or torch) and return
a tensor or a list/tuple of tensors. Inputs are drawn in float64 from a generator seeded by the
case name; the parity check also runs them in float32.

To add cases for a new op (conv, pooling, norms, attention, ...), write a ``_xxx_cases()``
function next to the others and add it to ``CASES`` at the bottom. Keep inputs small (tens of
elements): the gradient check evaluates the op twice per input element. Keep differentiable
inputs away from kinks and ties (``avoiding``, ``distinct``); put a kink or tie in a case with
``gradcheck=False``, where only the parity check (which fixes the subgradient) applies.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

import scratchnn as sn

Maker = Callable[[np.random.Generator], "np.ndarray | list[np.ndarray]"]

FLOAT_DTYPES = (np.float64, np.float32)


@dataclass(frozen=True)
class OpCase:
    """One op application to test.

    Attributes:
        name: unique; the pytest id and the seed of the case's generator.
        fn: the scratchnn side, one tensor per input.
        torch_fn: the PyTorch side, one torch tensor per input.
        makers: each draws one input array, or a list of arrays drawn jointly.
        differentiable: one flag per input; None means every float input.
        gradcheck: False for kinks, ties and values where central differences cannot work.
        dtypes: the float dtypes of the parity check.
        keeps_dtype: False for ops whose float output dtype differs from the input's (cast).
    """

    name: str
    fn: Callable
    torch_fn: Callable
    makers: tuple[Maker, ...]
    differentiable: tuple[bool, ...] | None = None
    gradcheck: bool = True
    dtypes: tuple[type, ...] = FLOAT_DTYPES
    keeps_dtype: bool = True

    def rng(self) -> np.random.Generator:
        return np.random.default_rng(zlib.crc32(self.name.encode()))

    def make_inputs(self, rng: np.random.Generator, dtype=np.float64) -> list[np.ndarray]:
        """The inputs, float ones in ``dtype`` (masks and indices keep theirs)."""
        arrays: list[np.ndarray] = []
        for make in self.makers:
            made = make(rng)
            arrays.extend(made if isinstance(made, list) else [made])
        arrays = [np.asarray(a) for a in arrays]
        return [a.astype(dtype) if a.dtype.kind == "f" else a for a in arrays]

    def differentiable_flags(self, inputs: Sequence[np.ndarray]) -> list[bool]:
        if self.differentiable is None:
            return [a.dtype.kind == "f" for a in inputs]
        if len(self.differentiable) != len(inputs):
            raise ValueError(f"{self.name}: differentiable flags do not match the inputs")
        return list(self.differentiable)


def case(name: str, fn: Callable, torch_fn: Callable, *makers: Maker, **options) -> OpCase:
    return OpCase(name, fn, torch_fn, tuple(makers), **options)


# --------------------------------------------------------------------------- input makers
def normal(shape: tuple[int, ...], scale: float = 1.0) -> Maker:
    return lambda rng: scale * np.asarray(rng.standard_normal(shape))


def uniform(low: float, high: float, shape: tuple[int, ...]) -> Maker:
    return lambda rng: np.asarray(rng.uniform(low, high, shape))


def positive(shape: tuple[int, ...], low: float = 0.5, high: float = 2.0) -> Maker:
    """For log, sqrt, pow bases and the like."""
    return uniform(low, high, shape)


def avoiding(
    shape: tuple[int, ...],
    points: Sequence[float] = (0.0,),
    margin: float = 0.1,
    low: float = -2.0,
    high: float = 2.0,
) -> Maker:
    """Uniform in [low, high] but at least ``margin`` from every point (kinks, clip bounds)."""

    def make(rng):
        x = np.asarray(rng.uniform(low, high, shape))
        for _ in range(1000):
            near = np.zeros(x.shape, dtype=bool)
            for p in points:
                near |= np.abs(x - p) < margin
            if not near.any():
                return x
            x = np.where(near, rng.uniform(low, high, shape), x)
        raise RuntimeError(f"could not draw values {margin} away from {points}")

    return make


def distinct(*shapes: tuple[int, ...], spacing: float = 0.2) -> Maker:
    """Arrays of these shapes whose values are all at least ``spacing / 2`` apart (no ties)."""

    def make(rng):
        sizes = [int(np.prod(s)) for s in shapes]
        total = sum(sizes)
        jitter = rng.uniform(-spacing / 4, spacing / 4, total)
        values = (rng.permutation(total) - total / 2) * spacing + jitter
        parts = np.split(values, np.cumsum(sizes)[:-1])
        return [p.reshape(s) for p, s in zip(parts, shapes)]

    return make


def const(values, dtype=np.float64) -> Maker:
    return lambda rng: np.array(values, dtype=dtype)


def mask(shape: tuple[int, ...]) -> Maker:
    """A boolean array with at least one True and one False."""

    def make(rng):
        m = rng.random(shape) < 0.5
        m.reshape(-1)[0], m.reshape(-1)[-1] = True, False
        return m

    return make


def ints(high: int, shape: tuple[int, ...]) -> Maker:
    return lambda rng: rng.integers(0, high, shape)


# --------------------------------------------------------------------------- torch helpers
def _dims(axis, ndim: int):
    """scratchnn's ``axis`` (None, int or tuple) as a torch ``dim`` tuple."""
    if axis is None:
        return tuple(range(ndim))
    return (axis,) if isinstance(axis, int) else tuple(axis)


def _t_slices(x: torch.Tensor, index: tuple) -> torch.Tensor:
    """``x[index]`` for a tuple of slices, negative steps included (torch rejects them)."""
    for axis, s in enumerate(index):
        positions = torch.from_numpy(np.arange(x.shape[axis])[s].copy())
        x = x.index_select(axis, positions)
    return x


def _shape_name(*shapes) -> str:
    return "_".join("x".join(map(str, s)) or "0d" for s in shapes)


# --------------------------------------------------------------------------- elementwise
def _elementwise_cases() -> list[OpCase]:
    cases = []
    binary = [("add", sn.add, torch.add), ("sub", sn.sub, torch.sub), ("mul", sn.mul, torch.mul)]
    shape_pairs = [((3, 4), (3, 4)), ((3, 1), (1, 4)), ((2, 3), (3,)), ((), (2, 3)),
                   ((2, 1, 3), (4, 1)), ((1,), (1, 1)), ((), ())]
    for name, fn, tfn in binary:
        for sa, sb in shape_pairs:
            cases.append(case(f"{name}_{_shape_name(sa, sb)}", fn, tfn, normal(sa), normal(sb)))
    for sa, sb in shape_pairs[:5]:
        cases.append(case(f"div_{_shape_name(sa, sb)}", sn.div, torch.div,
                          normal(sa), avoiding(sb, margin=0.5)))
    cases += [
        # Python and NumPy scalars on either side.
        case("add_py_float", lambda x: sn.add(x, 2.5), lambda x: x + 2.5, normal((2, 3))),
        case("radd_py_float", lambda x: sn.add(2.5, x), lambda x: 2.5 + x, normal((2, 3))),
        case("sub_np_float64", lambda x: sn.sub(x, np.float64(0.25)), lambda x: x - 0.25,
             normal((2, 3))),
        case("rsub_py_float", lambda x: sn.sub(1.5, x), lambda x: 1.5 - x, normal((2, 3))),
        case("mul_np_float64", lambda x: sn.mul(x, np.float64(3.0)), lambda x: x * 3.0,
             normal((2, 3))),
        case("rmul_py_int", lambda x: sn.mul(-2, x), lambda x: -2 * x, normal((2, 3))),
        case("div_py_float", lambda x: sn.div(x, 4.0), lambda x: x / 4.0, normal((2, 3))),
        case("rdiv_py_float", lambda x: sn.div(3.0, x), lambda x: 3.0 / x,
             avoiding((2, 3), margin=0.5)),
        # The Tensor operators route to the same ops.
        case("operators_binary", lambda a, b: (a + b) * a - b / a,
             lambda a, b: (a + b) * a - b / a, avoiding((2, 3), margin=0.5), normal((2, 3))),
        case("operators_reflected", lambda a: 2.0 - 3.0 / a + 1.0 * a,
             lambda a: 2.0 - 3.0 / a + 1.0 * a, avoiding((3,), margin=0.5)),
        case("neg_2x3", sn.neg, torch.neg, normal((2, 3))),
        case("neg_0d", lambda x: -x, lambda x: -x, normal(())),
        # pow: the scalar-exponent path and the tensor ** tensor path.
        case("pow_scalar_2", lambda x: sn.pow(x, 2), lambda x: x**2, normal((2, 3))),
        case("pow_scalar_3_negative_base", lambda x: x**3, lambda x: x**3, normal((2, 3))),
        case("pow_scalar_half", lambda x: sn.pow(x, 0.5), lambda x: x**0.5, positive((2, 3))),
        case("pow_np_float64_exponent", lambda x: x ** np.float64(1.5), lambda x: x**1.5,
             positive((2, 3))),
        case("pow_scalar_neg_1_5", lambda x: sn.pow(x, -1.5), lambda x: x**-1.5,
             positive((2, 3))),
        case("pow_scalar_0", lambda x: sn.pow(x, 0), lambda x: x**0, avoiding((2, 3))),
        case("pow_scalar_0_at_zero", lambda x: sn.pow(x, 0), lambda x: x**0,
             const([0.0, 1.0, -2.0]), gradcheck=False),
        case("pow_tensor_tensor_zero_base", sn.pow, torch.pow, const([0.0, 0.0, 1.0, 2.0]),
             const([0.0, 2.0, 0.0, 0.5]), gradcheck=False),
        case("pow_tensor_tensor", sn.pow, torch.pow, positive((3, 4)), normal((3, 4))),
        case("pow_tensor_tensor_3x1_1x4", sn.pow, torch.pow, positive((3, 1)), normal((1, 4))),
        case("pow_tensor_0d_exponent", sn.pow, torch.pow, positive((2, 3)), normal(())),
        case("pow_scalar_base", lambda x: sn.pow(2.0, x), lambda x: torch.pow(2.0, x),
             normal((2, 3))),
        case("rpow_operator", lambda x: 3.0**x, lambda x: 3.0**x, normal((4,))),
        # exp, log, sqrt, abs.
        case("exp_3x4", sn.exp, torch.exp, normal((3, 4), scale=2.0)),
        case("exp_0d", sn.exp, torch.exp, normal(())),
        # Central differences cannot resolve exp(-80) next to exp(80) in one projected sum.
        case("exp_extreme", sn.exp, torch.exp, const([-80.0, -20.0, 0.0, 20.0, 80.0]),
             gradcheck=False),
        case("log_3x4", sn.log, torch.log, positive((3, 4), 0.1, 5.0)),
        case("log_extreme", sn.log, torch.log, const([1e-30, 1e-10, 1.0, 1e10, 1e30]),
             gradcheck=False),
        case("sqrt_3x4", sn.sqrt, torch.sqrt, positive((3, 4), 0.1, 5.0)),
        case("sqrt_extreme", sn.sqrt, torch.sqrt, const([1e-30, 1e-10, 1e10, 1e30]),
             gradcheck=False),
        case("abs_3x4", sn.abs, torch.abs, avoiding((3, 4))),
        case("abs_operator", lambda x: abs(x), lambda x: abs(x), avoiding((5,))),
        case("abs_at_zero", sn.abs, torch.abs, const([-1.0, 0.0, 2.0]), gradcheck=False),
        # maximum / minimum: ties split the gradient evenly, as in torch.
        case("maximum_3x4", sn.maximum, torch.maximum, distinct((3, 4), (3, 4))),
        case("maximum_3x1_1x4", sn.maximum, torch.maximum, distinct((3, 1), (1, 4))),
        case("maximum_py_float", lambda x: sn.maximum(x, 0.0),
             lambda x: torch.clamp_min(x, 0.0), avoiding((2, 3))),
        case("maximum_ties", sn.maximum, torch.maximum, const([1.0, 2.0, 3.0]),
             const([1.0, 0.0, 3.0]), gradcheck=False),
        case("minimum_3x4", sn.minimum, torch.minimum, distinct((3, 4), (3, 4))),
        case("minimum_2x3_3", sn.minimum, torch.minimum, distinct((2, 3), (3,))),
        case("minimum_ties", sn.minimum, torch.minimum, const([1.0, 2.0, 3.0]),
             const([1.0, 0.0, 3.0]), gradcheck=False),
        # where: the condition carries no gradient.
        case("where_3x4", sn.where, torch.where, mask((3, 4)), normal((3, 4)), normal((3, 4))),
        case("where_broadcast", sn.where, torch.where, mask((3, 1)), normal((1, 4)),
             normal(())),
        case("where_py_float", lambda c, x: sn.where(c, x, 0.5),
             lambda c, x: torch.where(c, x, 0.5), mask((2, 3)), normal((2, 3))),
        # clip: the gradient passes where min <= x <= max, bounds included (as torch.clamp).
        case("clip_both", lambda x: sn.clip(x, -0.5, 0.5), lambda x: torch.clamp(x, -0.5, 0.5),
             avoiding((3, 4), (-0.5, 0.5), 0.05, -1.0, 1.0)),
        case("clip_min_only", lambda x: sn.clip(x, min=0.2), lambda x: torch.clamp(x, min=0.2),
             avoiding((3, 4), (0.2,), 0.05)),
        case("clip_max_only", lambda x: sn.clip(x, max=-0.3),
             lambda x: torch.clamp(x, max=-0.3), avoiding((3, 4), (-0.3,), 0.05)),
        case("clip_array_bounds_broadcast", sn.clip, torch.clamp,
             avoiding((4,), (-0.5, 0.0, 0.3, 0.8), 0.05, -1.0, 1.0),
             const([[-0.5], [0.0], [0.3]]), const(0.8), differentiable=(True, False, False)),
        case("clip_at_bounds", lambda x: sn.clip(x, -0.5, 0.5),
             lambda x: torch.clamp(x, -0.5, 0.5), const([-1.0, -0.5, 0.0, 0.5, 1.0]),
             gradcheck=False),
        # cast: float-to-float casts pass the gradient through in the input's dtype.
        case("cast_to_float64", lambda x: sn.cast(x, np.float64),
             lambda x: x.to(torch.float64), normal((2, 3)), keeps_dtype=False),
        case("cast_to_float32", lambda x: sn.cast(x, np.float32),
             lambda x: x.to(torch.float32), normal((2, 3)), keeps_dtype=False,
             gradcheck=False),  # rounding to float32 defeats a 1e-6 central difference
        case("cast_to_int64", lambda x: sn.cast(x, np.int64), lambda x: x.to(torch.int64),
             normal((2, 3), scale=3.0), differentiable=(False,), keeps_dtype=False),
        case("astype_method", lambda x: x.astype(np.float64) * 2.0,
             lambda x: x.to(torch.float64) * 2.0, normal((3,)), keeps_dtype=False),
    ]
    return cases


# --------------------------------------------------------------------------- linear algebra
def _matmul_cases() -> list[OpCase]:
    shape_pairs = [((3, 4), (4, 2)), ((2, 3, 4), (2, 4, 5)), ((2, 1, 3, 4), (5, 4, 2)),
                   ((3, 4), (2, 4, 2)), ((4,), (4, 3)), ((3, 4), (4,)), ((4,), (4,)),
                   ((2, 3, 4), (4,)), ((4,), (2, 4, 3)), ((1, 1), (1, 1))]
    cases = [case(f"matmul_{_shape_name(sa, sb)}", sn.matmul, torch.matmul, normal(sa),
                  normal(sb)) for sa, sb in shape_pairs]
    cases.append(case("matmul_operator", lambda a, b: a @ b, lambda a, b: a @ b,
                      normal((2, 3)), normal((3, 2))))
    cases.append(case("matmul_constant_rhs", sn.matmul, torch.matmul, normal((2, 3)),
                      normal((3, 2)), differentiable=(True, False)))
    return cases


# --------------------------------------------------------------------------- reductions
_TORCH_REDUCE = {"sum": torch.sum, "mean": torch.mean, "max": torch.amax, "min": torch.amin}


def _reduction_case(op: str, shape, axis, keepdims: bool, make=None, **options) -> OpCase:
    """``op`` over ``axis``; ``shape`` is a label when ``make`` is given."""
    sn_op, t_op = getattr(sn, op), _TORCH_REDUCE[op]
    label = shape if isinstance(shape, str) else _shape_name(shape)
    name = f"{op}_{label}_axis{axis}_keep{int(keepdims)}".replace(" ", "")
    make = make or (distinct(shape) if op in ("max", "min") else normal(shape))
    return case(name, lambda x: sn_op(x, axis, keepdims),
                lambda x: t_op(x, dim=_dims(axis, x.ndim), keepdim=keepdims), make, **options)


def _var_case(shape, axis, keepdims: bool, correction: int) -> OpCase:
    name = f"var_{_shape_name(shape)}_axis{axis}_keep{int(keepdims)}_corr{correction}"
    return case(name.replace(" ", ""), lambda x: sn.var(x, axis, keepdims, correction),
                lambda x: torch.var(x, dim=_dims(axis, x.ndim), correction=correction,
                                    keepdim=keepdims),
                normal(shape))


def _reduction_cases() -> list[OpCase]:
    cases = []
    for op in ("sum", "mean", "max", "min"):
        for axis in (None, 0, -1, (0, 2), (2, -3)):
            for keepdims in (False, True):
                cases.append(_reduction_case(op, (2, 3, 4), axis, keepdims))
        cases.append(_reduction_case(op, (), None, False))
        cases.append(_reduction_case(op, (1, 3), 0, False))
        cases.append(_reduction_case(op, (1, 3), None, True))
    # Tied extremes share the gradient evenly, as torch.amax / amin.
    ties = const([[1.0, 3.0, 3.0], [2.0, 2.0, 0.0]])
    for op in ("max", "min"):
        cases.append(_reduction_case(op, "ties", None, False, ties, gradcheck=False))
        cases.append(_reduction_case(op, "ties", 1, True, ties, gradcheck=False))
    for axis, keepdims, correction in [(None, False, 1), (None, True, 0), (1, False, 1),
                                       (1, True, 0), (-1, False, 0), ((0, 2), True, 1),
                                       ((0, 2), False, 0)]:
        cases.append(_var_case((2, 3, 4), axis, keepdims, correction))
    cases.append(_var_case((5,), 0, False, 1))
    cases.append(case("sum_method", lambda x: x.sum(axis=1), lambda x: x.sum(dim=1),
                      normal((2, 3))))
    return cases


# --------------------------------------------------------------------------- shape and indexing
def _shape_cases() -> list[OpCase]:
    x234 = normal((2, 3, 4))
    return [
        case("reshape_2x3x4_to_4x6", lambda x: sn.reshape(x, (4, 6)),
             lambda x: x.reshape(4, 6), x234),
        case("reshape_to_flat", lambda x: sn.reshape(x, -1), lambda x: x.reshape(-1), x234),
        case("reshape_method_infer", lambda x: x.reshape(2, -1, 2),
             lambda x: x.reshape(2, -1, 2), x234),
        case("reshape_0d_to_1x1", lambda x: sn.reshape(x, (1, 1)),
             lambda x: x.reshape(1, 1), normal(())),
        case("reshape_1_to_0d", lambda x: sn.reshape(x, ()), lambda x: x.reshape(()),
             normal((1,))),
        case("transpose_2d", sn.transpose, lambda x: x.T, normal((3, 4))),
        case("transpose_T_property", lambda x: x.T, lambda x: x.T, normal((2, 5))),
        case("transpose_3d_reverse", sn.transpose, lambda x: x.permute(2, 1, 0), x234),
        case("transpose_swap_0_2", lambda x: sn.transpose(x, 0, 2),
             lambda x: torch.transpose(x, 0, 2), x234),
        case("transpose_swap_negative", lambda x: sn.transpose(x, -1, -2),
             lambda x: x.transpose(-1, -2), x234),
        case("permute_2_0_1", lambda x: sn.permute(x, 2, 0, 1), lambda x: x.permute(2, 0, 1),
             x234),
        case("permute_tuple_negative", lambda x: sn.permute(x, (-2, -1, 0)),
             lambda x: x.permute(-2, -1, 0), x234),
        case("expand_3x1_to_3x4", lambda x: sn.expand(x, 3, 4), lambda x: x.expand(3, 4),
             normal((3, 1))),
        case("expand_new_leading_dims", lambda x: sn.expand(x, (2, 3, 4)),
             lambda x: x.expand(2, 3, 4), normal((4,))),
        case("expand_keep_size", lambda x: x.expand(3, -1), lambda x: x.expand(3, -1),
             normal((1, 4))),
        case("expand_0d", lambda x: sn.expand(x, 2, 3), lambda x: x.expand(2, 3), normal(())),
        case("squeeze_all", sn.squeeze, torch.squeeze, normal((1, 3, 1, 2))),
        case("squeeze_axis0", lambda x: sn.squeeze(x, 0), lambda x: x.squeeze(0),
             normal((1, 3, 1, 2))),
        case("squeeze_axis_tuple", lambda x: sn.squeeze(x, (0, -2)),
             lambda x: x.squeeze((0, -2)), normal((1, 3, 1, 2))),
        case("squeeze_non_singleton", lambda x: sn.squeeze(x, 1), lambda x: x.squeeze(1),
             normal((1, 3, 1, 2))),
        case("unsqueeze_0", lambda x: sn.unsqueeze(x, 0), lambda x: x.unsqueeze(0),
             normal((2, 3))),
        case("unsqueeze_middle", lambda x: sn.unsqueeze(x, 1), lambda x: x.unsqueeze(1),
             normal((2, 3))),
        case("unsqueeze_negative", lambda x: x.unsqueeze(-1), lambda x: x.unsqueeze(-1),
             normal((2, 3))),
        case("unsqueeze_0d", lambda x: sn.unsqueeze(x, 0), lambda x: x.unsqueeze(0),
             normal(())),
        case("flatten_all", sn.flatten, torch.flatten, x234),
        case("flatten_from_1", lambda x: sn.flatten(x, 1), lambda x: torch.flatten(x, 1),
             x234),
        case("flatten_0_to_1", lambda x: x.flatten(0, 1), lambda x: x.flatten(0, 1), x234),
        case("flatten_0d", sn.flatten, torch.flatten, normal(())),
        # concat / stack / split: several inputs or several outputs.
        case("concat_axis0_three", lambda a, b, c: sn.concat([a, b, c], 0),
             lambda a, b, c: torch.cat([a, b, c], 0), normal((2, 3)), normal((4, 3)),
             normal((1, 3))),
        case("concat_axis_negative", lambda a, b: sn.concat([a, b], axis=-1),
             lambda a, b: torch.cat([a, b], -1), normal((2, 1)), normal((2, 3))),
        case("cat_alias_one_constant", lambda a, b: sn.cat([a, b], 1),
             lambda a, b: torch.cat([a, b], 1), normal((2, 2, 2)), normal((2, 1, 2)),
             differentiable=(True, False)),
        case("stack_axis0", lambda a, b, c: sn.stack([a, b, c]),
             lambda a, b, c: torch.stack([a, b, c]), normal((2, 3)), normal((2, 3)),
             normal((2, 3))),
        case("stack_axis1", lambda a, b: sn.stack([a, b], 1),
             lambda a, b: torch.stack([a, b], 1), normal((2, 3)), normal((2, 3))),
        case("stack_axis_negative", lambda a, b: sn.stack([a, b], axis=-1),
             lambda a, b: torch.stack([a, b], -1), normal((2, 3)), normal((2, 3))),
        case("stack_0d", lambda a, b: sn.stack([a, b]), lambda a, b: torch.stack([a, b]),
             normal(()), normal(())),
        case("split_sizes_axis1", lambda x: sn.split(x, [1, 3, 2], 1),
             lambda x: torch.split(x, [1, 3, 2], 1), normal((2, 6))),
        case("split_int_with_remainder", lambda x: sn.split(x, 2),
             lambda x: torch.split(x, 2), normal((5, 3))),
        case("split_axis_negative", lambda x: sn.split(x, [2, 2], axis=-1),
             lambda x: torch.split(x, [2, 2], -1), normal((3, 4))),
    ]


def _getitem_cases() -> list[OpCase]:
    x45, x234 = normal((4, 5)), normal((2, 3, 4))

    def item(index, make=x45):
        return (lambda x: sn.getitem(x, index)), (lambda x: x[index]), make

    return [
        case("getitem_int", *item(1)),
        case("getitem_negative_int_to_0d", *item((-1, 2))),
        case("getitem_slices", *item((slice(1, 3), slice(None, None, 2)))),
        case("getitem_slice_operator", lambda x: x[1:, :-1], lambda x: x[1:, :-1], x45),
        case("getitem_negative_steps", lambda x: x[::-1, 4:0:-2],
             lambda x: _t_slices(x, (slice(None, None, -1), slice(4, 0, -2))), x45),
        case("getitem_negative_step_3d", lambda x: x[:, ::-2, 1:],
             lambda x: _t_slices(x, (slice(None), slice(None, None, -2), slice(1, None))),
             x234),
        case("getitem_int_list_repeats", *item([0, 2, 0, 3])),
        case("getitem_negative_int_list", *item([-1, 0, -1])),
        case("getitem_int_list_axis1", lambda x: x[:, [1, 1, 4, 0]],
             lambda x: x[:, [1, 1, 4, 0]], x45),
        case("getitem_int_lists_pair", lambda x: x[[0, 1, 1, 3], [2, 2, 4, 0]],
             lambda x: x[[0, 1, 1, 3], [2, 2, 4, 0]], x45),
        case("getitem_int_array_2d", lambda x: x[np.array([[0, 1], [1, 1]])],
             lambda x: x[torch.tensor([[0, 1], [1, 1]])], x45),
        case("getitem_index_tensor", sn.getitem, lambda x, i: x[i], x45, ints(4, (6,))),
        case("getitem_slice_and_list", lambda x: x[:, [2, 0, 2], 1:3],
             lambda x: x[:, [2, 0, 2], 1:3], normal((2, 4, 5))),
        case("getitem_bool_mask_full", sn.getitem, lambda x, m: x[m], x45, mask((4, 5))),
        case("getitem_bool_mask_rows", sn.getitem, lambda x, m: x[m], x45, mask((4,))),
        case("getitem_bool_mask_axis1", lambda x, m: x[:, m], lambda x, m: x[:, m], x45,
             mask((5,))),
        case("getitem_none_ellipsis", lambda x: x[None, ..., 1:3],
             lambda x: x[None, ..., 1:3], x234),
        case("getitem_ellipsis_int", lambda x: x[..., 0], lambda x: x[..., 0], x234),
        case("getitem_ellipsis_none_int", lambda x: x[..., None, -1],
             lambda x: x[..., None, -1], x234),
        case("getitem_int_none_slice_step", lambda x: x[1, None, :, ::2],
             lambda x: x[1, None, :, ::2], x234),
        case("getitem_ellipsis_list", lambda x: x[..., [3, 3, 0]],
             lambda x: x[..., [3, 3, 0]], x234),
    ]


# --------------------------------------------------------------------------- activations
def _activation_cases() -> list[OpCase]:
    extreme = const([-1000.0, -50.0, -1.0, 0.0, 1.0, 50.0, 1000.0])
    x234 = normal((2, 3, 4), scale=2.0)
    cases = [
        case("relu_3x4", sn.relu, torch.relu, avoiding((3, 4))),
        case("relu_method_0d", lambda x: x.relu(), torch.relu, avoiding(())),
        case("relu_at_zero", sn.relu, torch.relu, const([-1.0, 0.0, 1.0]), gradcheck=False),
        case("leaky_relu_default", sn.leaky_relu, F.leaky_relu, avoiding((3, 4))),
        case("leaky_relu_slope_0_2", lambda x: sn.leaky_relu(x, 0.2),
             lambda x: F.leaky_relu(x, 0.2), avoiding((3, 4))),
        case("leaky_relu_at_zero", lambda x: sn.leaky_relu(x, 0.2),
             lambda x: F.leaky_relu(x, 0.2), const([-1.0, 0.0, 1.0]), gradcheck=False),
        case("sigmoid_3x4", sn.sigmoid, torch.sigmoid, normal((3, 4), scale=3.0)),
        case("sigmoid_extreme", sn.sigmoid, torch.sigmoid, extreme),
        case("tanh_3x4", sn.tanh, torch.tanh, normal((3, 4), scale=2.0)),
        case("tanh_extreme", sn.tanh, torch.tanh, extreme),
        case("gelu_exact", sn.gelu, F.gelu, normal((3, 4), scale=2.0)),
        case("gelu_tanh", lambda x: sn.gelu(x, approximate="tanh"),
             lambda x: F.gelu(x, approximate="tanh"), normal((3, 4), scale=2.0)),
        case("gelu_exact_extreme", sn.gelu, F.gelu, extreme),
        case("gelu_tanh_extreme", lambda x: sn.gelu(x, approximate="tanh"),
             lambda x: F.gelu(x, approximate="tanh"), extreme),
        case("softplus_default", sn.softplus, F.softplus, normal((3, 4), scale=3.0)),
        # beta * x crosses the threshold (a small jump, as in torch): stay away from it.
        case("softplus_beta2_threshold5", lambda x: sn.softplus(x, beta=2.0, threshold=5.0),
             lambda x: F.softplus(x, beta=2.0, threshold=5.0),
             avoiding((4, 5), (2.5,), 0.05, -6.0, 6.0)),
        case("softplus_beta_half", lambda x: sn.softplus(x, 0.5),
             lambda x: F.softplus(x, 0.5), avoiding((4, 5), (40.0,), 0.05, -60.0, 60.0)),
        case("softplus_extreme", sn.softplus, F.softplus, extreme),
    ]
    for name, fn, tfn in [("softmax", sn.softmax, torch.softmax),
                          ("log_softmax", sn.log_softmax, torch.log_softmax)]:
        for axis in (-1, 0, 1):
            cases.append(case(f"{name}_axis{axis}", lambda x, f=fn, a=axis: f(x, a),
                              lambda x, f=tfn, a=axis: f(x, a), x234))
        cases += [
            case(f"{name}_1d", lambda x, f=fn: f(x, 0), lambda x, f=tfn: f(x, 0),
                 normal((5,))),
            case(f"{name}_singleton_axis", lambda x, f=fn: f(x, 1),
                 lambda x, f=tfn: f(x, 1), normal((3, 1))),
            case(f"{name}_extreme", lambda x, f=fn: f(x, -1), lambda x, f=tfn: f(x, -1),
                 const([[1000.0, 0.0], [-1000.0, 0.0], [1e4, -1e4]])),
            # -inf logits, as from an attention mask.
            case(f"{name}_masked_neg_inf", lambda x, f=fn: f(x, -1),
                 lambda x, f=tfn: f(x, -1),
                 const([[-np.inf, 0.5, -1.0], [2.0, -np.inf, -np.inf]]), gradcheck=False),
            # x + 1e-6 == x at 1e30: only the parity check can judge these gradients.
            case(f"{name}_huge_logits", lambda x, f=fn: f(x, -1), lambda x, f=tfn: f(x, -1),
                 const([[1e30, 0.0, -1e30], [-1e35, 1e35, 0.0]]), gradcheck=False),
        ]
    cases.append(case("softmax_method", lambda x: x.softmax(0), lambda x: x.softmax(0),
                      normal((3, 2))))
    cases.append(case("log_softmax_method", lambda x: x.log_softmax(), lambda x: x.log_softmax(-1),
                      normal((3, 2))))
    return cases


# Families in files of their own (one table all the same): each module exposes ``cases()``.
# Imported here, after the helpers above exist, because those modules use them.
import op_cases_attention  # noqa: E402
import op_cases_conv  # noqa: E402
import op_cases_nn  # noqa: E402
import op_cases_norm  # noqa: E402
import op_cases_rnn  # noqa: E402

CASES: list[OpCase] = [
    *_elementwise_cases(),
    *_matmul_cases(),
    *_reduction_cases(),
    *_shape_cases(),
    *_getitem_cases(),
    *_activation_cases(),
    *op_cases_nn.cases(),
    *op_cases_conv.cases(),
    *op_cases_norm.cases(),
    *op_cases_rnn.cases(),
    *op_cases_attention.cases(),
]

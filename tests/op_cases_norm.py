"""Op cases for the norm family and embedding; part of the one case table (``op_cases.CASES``).

Batch norm in training updates its running statistics in place: each case makes fresh buffers
on both sides (the gradient check calls the op many times), and one parity-only case returns
the updated buffers as extra outputs so that the update itself is compared with PyTorch.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as TF

import scratchnn as sn
import scratchnn.nn.functional as F
from op_cases import OpCase, case, const, ints, normal, positive

EPS = 1e-5


# --------------------------------------------------------------------------- layer norm
def _layer_norm_cases() -> list[OpCase]:
    def ln(shape):
        return (lambda x, *p: F.layer_norm(x, shape, *p),
                lambda x, *p: TF.layer_norm(x, shape, *p))

    return [
        case("layer_norm_last_dim", *ln((5,)), normal((3, 5)), normal((5,)), normal((5,))),
        case("layer_norm_two_dims", *ln((3, 4)), normal((2, 3, 4)), normal((3, 4)),
             normal((3, 4))),
        case("layer_norm_no_affine", *ln((6,)), normal((4, 6), 3.0)),
        case("layer_norm_weight_only", *ln((5,)), normal((2, 2, 5)), normal((5,))),
        case("layer_norm_1d_input", *ln((4,)), normal((4,)), normal((4,)), normal((4,))),
        case("layer_norm_int_shape", lambda x: F.layer_norm(x, 4),
             lambda x: TF.layer_norm(x, (4,)), normal((3, 4))),
        # Far from zero: E[x²] - E[x]² would lose every digit; two passes do not. float64
        # only: in float32 the mean itself is off by up to half an ulp of 1e3 (3e-5), in
        # PyTorch as here, so the two differ by more than the float32 tolerance.
        case("layer_norm_large_offset", *ln((6,)),
             lambda rng: 1e3 + rng.standard_normal((2, 6)), normal((6,)), normal((6,)),
             gradcheck=False, dtypes=(np.float64,)),
        # A constant row: var = 0, x̂ = 0 and the gradient is scaled by 1/√eps.
        case("layer_norm_constant_row", *ln((3,)), const([[2.0, 2.0, 2.0], [1.0, -1.0, 0.5]]),
             normal((3,)), normal((3,)), gradcheck=False),
    ]


# --------------------------------------------------------------------------- batch norm
def _fresh_stats(c: int, dtype, lib):
    if lib is sn:
        return sn.zeros(c, dtype=dtype), sn.ones(c, dtype=dtype)
    return torch.zeros(c, dtype=dtype), torch.ones(c, dtype=dtype)


def _bn_train(momentum: float = 0.1, stats: bool = True):
    """Training mode on fresh running buffers (or none), affine parameters optional."""

    def ours(x, *p):
        rm, rv = _fresh_stats(x.shape[1], x.dtype, sn) if stats else (None, None)
        return F.batch_norm(x, rm, rv, *p, training=True, momentum=momentum, eps=EPS)

    def theirs(x, *p):
        rm, rv = _fresh_stats(x.shape[1], x.dtype, torch) if stats else (None, None)
        return TF.batch_norm(x, rm, rv, *p, training=True, momentum=momentum, eps=EPS)

    return ours, theirs


def _bn_running_stats(x, w, b, rm, rv, momentum=0.3):
    """The output and both running buffers after two training steps, on copies of rm, rv."""
    if isinstance(x, sn.Tensor):
        rm, rv = sn.tensor(rm.data.copy(), dtype=rm.dtype), sn.tensor(rv.data.copy(),
                                                                         dtype=rv.dtype)
        F.batch_norm(x * 2.0 + 1.0, rm, rv, w, b, training=True, momentum=momentum)
        return [F.batch_norm(x, rm, rv, w, b, training=True, momentum=momentum), rm, rv]
    rm, rv = rm.clone(), rv.clone()
    TF.batch_norm(x * 2.0 + 1.0, rm, rv, w, b, training=True, momentum=momentum)
    return [TF.batch_norm(x, rm, rv, w, b, training=True, momentum=momentum), rm, rv]


def _bn_eval(x, rm, rv, *p):
    if isinstance(x, sn.Tensor):
        return F.batch_norm(x, rm, rv, *p, training=False, eps=EPS)
    return TF.batch_norm(x, rm, rv, *p, training=False, eps=EPS)


def _batch_norm_cases() -> list[OpCase]:
    c = 3
    affine = (normal((c,)), normal((c,)))
    stats = (normal((c,)), positive((c,), 0.3, 2.0))
    return [
        case("batch_norm_train_NC", *_bn_train(), normal((5, c)), *affine),
        case("batch_norm_train_NCL", *_bn_train(), normal((4, c, 2)), *affine),
        case("batch_norm_train_NCHW", *_bn_train(), normal((2, c, 2, 2)), *affine),
        case("batch_norm_train_batch_2", *_bn_train(), normal((2, c)), *affine),
        case("batch_norm_train_no_affine_no_stats", *_bn_train(stats=False),
             normal((4, c, 2), 2.0)),
        case("batch_norm_train_momentum_1", *_bn_train(momentum=1.0),
             normal((3, c, 2)), *affine),
        case("batch_norm_running_stats", _bn_running_stats, _bn_running_stats,
             normal((4, c, 2)), *affine, *stats,
             differentiable=(True, True, True, False, False), gradcheck=False),
        case("batch_norm_eval_NC", _bn_eval, _bn_eval, normal((4, c)), *stats, *affine,
             differentiable=(True, False, False, True, True)),
        case("batch_norm_eval_NCHW", _bn_eval, _bn_eval, normal((2, c, 2, 2)), *stats,
             *affine, differentiable=(True, False, False, True, True)),
        case("batch_norm_eval_no_affine", _bn_eval, _bn_eval, normal((2, c, 3)), *stats,
             differentiable=(True, False, False)),
    ]


# --------------------------------------------------------------------------- group norm
def _gn(groups: int):
    return (lambda x, *p: F.group_norm(x, groups, *p, eps=EPS),
            lambda x, *p: TF.group_norm(x, groups, *p, eps=EPS))


def _group_norm_cases() -> list[OpCase]:
    return [
        case("group_norm_NCL", *_gn(3), normal((2, 6, 3)), normal((6,)), normal((6,))),
        case("group_norm_NCHW", *_gn(2), normal((2, 4, 2, 2)), normal((4,)), normal((4,))),
        # Groups of 4 or more: with 2 elements a group, dx is ~eps-sized and cancels away in
        # float32 (PyTorch's error there is larger than ours, both above the tolerance).
        case("group_norm_NC", *_gn(2), normal((3, 8)), normal((8,)), normal((8,))),
        case("group_norm_one_group", *_gn(1), normal((2, 3, 2)), normal((3,)), normal((3,))),
        # One channel per group: instance normalisation.
        case("group_norm_instance_no_affine", *_gn(4), normal((2, 4, 3), 2.0)),
    ]


# --------------------------------------------------------------------------- embedding
def _shuffled(values, rng):
    return rng.permutation(np.array(values))


def _emb(padding_idx=None):
    return (lambda i, w: F.embedding(i, w, padding_idx=padding_idx),
            lambda i, w: TF.embedding(i, w, padding_idx=padding_idx))


def _embedding_cases() -> list[OpCase]:
    with_pad = lambda rng: _shuffled([0, 2, 0, 1, 3, 2, 0, 4], rng).reshape(2, 4)  # noqa: E731
    # Index 1 more than 16 times: the reduceat path of the scatter-add, next to the rounds.
    frequent = lambda rng: _shuffled([1] * 20 + [0, 2, 2, 3, 3, 3], rng)  # noqa: E731
    return [
        case("embedding_repeated", *_emb(), ints(5, (3, 4)), normal((5, 3))),
        case("embedding_1d", *_emb(), const([3, 0, 3, 1], dtype=np.int64), normal((4, 2))),
        case("embedding_0d_index", *_emb(), const(2, dtype=np.int64), normal((4, 3))),
        case("embedding_frequent_index", *_emb(), frequent, normal((4, 2))),
        # The padding row gets no gradient: not the true derivative, so parity only.
        case("embedding_padding_idx", *_emb(0), with_pad, normal((5, 3)), gradcheck=False),
        case("embedding_negative_padding_idx", *_emb(-1), with_pad, normal((5, 3)),
             gradcheck=False),
    ]


def cases() -> list[OpCase]:
    return [
        *_layer_norm_cases(),
        *_batch_norm_cases(),
        *_group_norm_cases(),
        *_embedding_cases(),
    ]

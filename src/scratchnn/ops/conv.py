"""Convolution (1-d and 2-d, strided, padded, dilated, grouped) as im2col plus one matmul.

The padded input is viewed as strided windows (no copy), the windows are gathered once into a
column matrix ``cols`` (C·kh·kw, N·Ho·Wo), and the output is ``weight @ cols`` — one matrix
multiply (batched over groups). The output is returned as a (N, O, Ho, Wo) view of that
(O, N·Ho·Wo) product: channel-major memory, so no transpose copy is made, and the next conv
or pool reads it in the order it needs. Backward is two more matmuls and a col2im scatter-add
over the kh·kw kernel offsets.

A 1-d convolution runs as a 2-d one with a height of 1; an unbatched input gets a batch of 1.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from scratchnn.autograd.function import Function
from scratchnn.autograd.tensor import Tensor
from scratchnn.backend import xp
from scratchnn.ops._operands import ensure_tensor

as_strided = xp.lib.stride_tricks.as_strided


# --------------------------------------------------------------------------- argument helpers
def ntuple(value, n: int, name: str) -> tuple[int, ...]:
    """``value`` (an int or a sequence of ``n`` ints) as an ``n``-tuple of ints."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return (int(value),) * n
    if isinstance(value, Sequence) and len(value) == n and all(
        isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in value
    ):
        return tuple(int(v) for v in value)
    raise ValueError(f"{name} must be an int or a tuple of {n} ints, got {value!r}")


def positive(value, n: int, name: str) -> tuple[int, ...]:
    out = ntuple(value, n, name)
    if any(v < 1 for v in out):
        raise ValueError(f"{name} must be >= 1, got {value!r}")
    return out


def conv_padding(padding, kernel: tuple[int, ...], stride: tuple[int, ...],
                 dilation: tuple[int, ...]) -> tuple[tuple[int, int], ...]:
    """(before, after) zero padding per spatial dim from an int, a tuple, "valid" or "same".

    "same" puts the odd unit of an odd total on the far side, as PyTorch does.
    """
    n = len(kernel)
    if isinstance(padding, str):
        if padding == "valid":
            return ((0, 0),) * n
        if padding == "same":
            if any(s != 1 for s in stride):
                raise ValueError(f"padding='same' needs stride 1, got stride {stride}")
            totals = [d * (k - 1) for d, k in zip(dilation, kernel)]
            return tuple((t // 2, t - t // 2) for t in totals)
        raise ValueError(f"padding must be 'valid', 'same', an int or a tuple, got {padding!r}")
    pads = ntuple(padding, n, "padding")
    if any(p < 0 for p in pads):
        raise ValueError(f"padding must be >= 0, got {padding!r}")
    return tuple((p, p) for p in pads)


def out_size(size: int, k: int, s: int, d: int, pad: int) -> int:
    """Output length of a window sweep over ``size + pad`` (total padding) positions."""
    return (size + pad - d * (k - 1) - 1) // s + 1


def memory_order(x) -> tuple[int, ...]:
    """``x``'s axes from outermost to innermost in memory (by stride)."""
    return tuple(sorted(range(x.ndim), key=lambda a: -abs(x.strides[a])))


def alloc(shape: tuple[int, ...], dtype, order: tuple[int, ...], fill=0):
    """A new array of ``shape`` laid out in memory ``order``, filled (None: uninitialised)."""
    stored = [shape[a] for a in order]
    buf = xp.empty(stored, dtype) if fill is None else xp.full(stored, fill, dtype)
    return buf.transpose([order.index(a) for a in range(len(order))])


def in_order(a, order: tuple[int, ...]):
    """``a`` itself if laid out in memory ``order``, else a copy that is."""
    if memory_order(a) == order:
        return a
    out = alloc(a.shape, a.dtype, order, None)
    out[...] = a
    return out


def alloc_like(x, shape: tuple[int, ...], fill=0):
    """A new array of ``shape`` whose memory order follows ``x``'s (zeros or ``fill``)."""
    return alloc(shape, x.dtype, memory_order(x), fill)


def pad2d(x, pads: tuple[tuple[int, int], tuple[int, int]], fill=0):
    """``x`` (..., H, W) padded with zeros (or ``fill``) in its own memory order."""
    (top, bottom), (left, right) = pads
    if not (top or bottom or left or right):
        return x
    h, w = x.shape[-2:]
    out = alloc_like(x, x.shape[:-2] + (h + top + bottom, w + left + right), fill)
    out[..., top:top + h, left:left + w] = x
    return out


# --------------------------------------------------------------------------- the op
class Conv(Function):
    """Cross-correlation of x (N, C, [H,] W) with weight (O, C/groups, [kh,] kw), plus bias.

    ``stride`` and ``dilation`` are 2-tuples, ``padding`` is ((top, bottom), (left, right));
    1-d inputs use the second entries (the first are 1, 1 and (0, 0)).
    """

    @staticmethod
    def forward(ctx, x, weight, bias, stride, padding, dilation, groups):
        spatial = weight.ndim - 2
        unbatched = x.ndim == spatial + 1
        # The weight array itself, not a view of it, so an in-place change is caught.
        need_w = len(ctx.needs_input_grad) > 1 and ctx.needs_input_grad[1]
        saved_weight = weight
        if unbatched:
            x = x[None]  # (1, C, ...)
        if spatial == 1:
            x, weight = x[:, :, None], weight[:, :, None]  # (N, C, 1, L), (O, Cg, 1, k)
        n, c, h, w = x.shape
        o, cg, kh, kw = weight.shape
        (sh, sw), (dh, dw), g = stride, dilation, groups
        xpad = pad2d(x, padding)
        ho = out_size(h, kh, sh, dh, sum(padding[0]))
        wo = out_size(w, kw, sw, dw, sum(padding[1]))
        # Strided windows of the padded input, ordered (C, kh, kw, N, Ho, Wo): a view.
        s_n, s_c, s_h, s_w = xpad.strides
        windows = as_strided(
            xpad, (c, kh, kw, n, ho, wo),
            (s_c, s_h * dh, s_w * dw, s_n, s_h * sh, s_w * sw), writeable=False,
        )
        cols = xp.ascontiguousarray(windows).reshape(g, cg * kh * kw, n * ho * wo)
        w_mat = weight.reshape(g, o // g, cg * kh * kw)  # (G, Og, Cg·kh·kw)
        out = _bmm(w_mat, cols)  # (G, Og, N·Ho·Wo)
        if bias is not None:
            out += bias.reshape(g, o // g, 1)
        # cols (as big as the input times kh·kw) is only needed for the weight's gradient.
        ctx.save_for_backward(cols if need_w else None, saved_weight)
        ctx.geometry = (xpad.shape, padding, stride, dilation, g, spatial, unbatched)
        out = out.reshape(o, n, ho, wo).transpose(1, 0, 2, 3)  # (N, O, Ho, Wo), O-major memory
        if spatial == 1:
            out = out[:, :, 0]  # (N, O, Lo)
        return out[0] if unbatched else out

    @staticmethod
    def backward(ctx, grad):
        cols, weight = ctx.saved
        pad_shape, padding, stride, dilation, g, spatial, unbatched = ctx.geometry
        need_x, need_w, need_b = ctx.needs_input_grad
        if unbatched:
            grad = grad[None]
        if spatial == 1:
            grad, weight = grad[:, :, None], weight[:, :, None]  # (N, O, 1, Lo), (O, Cg, 1, k)
        n, o, ho, wo = grad.shape
        _, cg, kh, kw = weight.shape
        # A free view when grad is O-major (as this op's own output is); else one copy.
        g_mat = grad.transpose(1, 0, 2, 3).reshape(g, o // g, n * ho * wo)  # (G, Og, M)
        grad_x = grad_w = grad_b = None
        if need_b:
            grad_b = g_mat.sum(axis=2).reshape(o)
        if need_w:
            # (cols @ g.T).T, not g @ cols.T: OpenBLAS splits the long N·Ho·Wo sum poorly
            # when the small output has few rows (measured several times slower).
            grad_w = _bmm(cols, g_mat.transpose(0, 2, 1))  # (G, Cg·kh·kw, Og)
            grad_w = grad_w.transpose(0, 2, 1).reshape(weight.shape)  # (O, Cg, kh, kw)
            if spatial == 1:
                grad_w = grad_w[:, :, 0]
        if need_x:
            w_mat = weight.reshape(g, o // g, cg * kh * kw)
            grad_cols = _bmm(w_mat.transpose(0, 2, 1), g_mat)  # (G, Cg·kh·kw, M)
            grad_cols = grad_cols.reshape(g * cg, kh, kw, n, ho, wo)  # (C, kh, kw, N, Ho, Wo)
            grad_x = _col2im(grad_cols, pad_shape, stride, dilation)
            (top, bottom), (left, right) = padding
            grad_x = grad_x[:, :, top:pad_shape[2] - bottom, left:pad_shape[3] - right]
            if spatial == 1:
                grad_x = grad_x[:, :, 0]
            if unbatched:
                grad_x = grad_x[0]
        return grad_x, grad_w, grad_b, None, None, None, None


def _bmm(a, b):
    """``a @ b`` over a leading group axis; one plain 2-d BLAS call when there is one group."""
    if a.shape[0] == 1:
        return xp.matmul(a[0], b[0])[None]
    return xp.matmul(a, b)


def _col2im(grad_cols, pad_shape, stride, dilation):
    """Scatter-add (C, kh, kw, N, Ho, Wo) window gradients into a padded (N, C, Hp, Wp) input."""
    c, kh, kw, n, ho, wo = grad_cols.shape
    (sh, sw), (dh, dw) = stride, dilation
    buf = xp.zeros((c, n) + tuple(pad_shape[2:]), dtype=grad_cols.dtype)  # (C, N, Hp, Wp)
    h_span, w_span = sh * (ho - 1) + 1, sw * (wo - 1) + 1
    for i in range(kh):
        for j in range(kw):
            rows = slice(i * dh, i * dh + h_span, sh)
            cols = slice(j * dw, j * dw + w_span, sw)
            buf[:, :, rows, cols] += grad_cols[:, i, j]
    return buf.transpose(1, 0, 2, 3)  # (N, C, Hp, Wp)


# --------------------------------------------------------------------------- functional forms
def _conv(x, weight, bias, stride, padding, dilation, groups, spatial: int) -> Tensor:
    name = f"conv{spatial}d"
    x, weight = ensure_tensor(x), ensure_tensor(weight)
    if weight.ndim != spatial + 2:
        raise ValueError(f"{name} expected a {spatial + 2}-d weight (out, in/groups, *kernel), "
                         f"got shape {tuple(weight.shape)}")
    if x.ndim not in (spatial + 1, spatial + 2):
        raise ValueError(f"{name} expected a {spatial + 1}-d (unbatched) or {spatial + 2}-d "
                         f"(batched) input, got shape {tuple(x.shape)}")
    if isinstance(groups, bool) or not isinstance(groups, (int, np.integer)) or groups < 1:
        raise ValueError(f"groups must be a positive int, got {groups!r}")
    out_ch, cg = weight.shape[:2]
    if out_ch % groups:
        raise ValueError(f"out_channels ({out_ch}) must be divisible by groups ({groups})")
    channels = x.shape[-spatial - 1]
    if channels != cg * groups:
        raise ValueError(f"{name} expected input with {cg * groups} channels "
                         f"(weight {tuple(weight.shape)}, groups={groups}), "
                         f"got shape {tuple(x.shape)}")
    if bias is not None:
        bias = ensure_tensor(bias)
        if tuple(bias.shape) != (out_ch,):
            raise ValueError(f"{name} expected bias of shape ({out_ch},), "
                             f"got {tuple(bias.shape)}")
    if x.dtype != weight.dtype:
        if x.dtype.kind == "f":
            raise TypeError(f"input dtype {x.dtype} does not match weight dtype {weight.dtype};"
                            f" convert the input explicitly (scratchnn never upcasts silently)")
        x = Tensor._wrap(xp.asarray(x.data, dtype=weight.dtype), False)
    kernel = tuple(weight.shape[2:])
    stride = positive(stride, spatial, "stride")
    dilation = positive(dilation, spatial, "dilation")
    pads = conv_padding(padding, kernel, stride, dilation)
    sizes = x.shape[-spatial:]
    for size, k, d, (p0, p1) in zip(sizes, kernel, dilation, pads):
        if size + p0 + p1 < d * (k - 1) + 1:
            raise ValueError(
                f"{name}: padded input size {tuple(s + a + b for s, (a, b) in zip(sizes, pads))}"
                f" is smaller than the dilated kernel size "
                f"{tuple(d * (k - 1) + 1 for k, d in zip(kernel, dilation))}"
            )
    if spatial == 1:
        stride, dilation, pads = (1,) + stride, (1,) + dilation, ((0, 0),) + pads
    return Conv.apply(x, weight, bias, stride=stride, padding=pads, dilation=dilation,
                      groups=int(groups))


def conv1d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups: int = 1) -> Tensor:
    """1-d cross-correlation with PyTorch's layout and arguments.

    Shape: x (N, C, L) or (C, L); weight (O, C/groups, k); bias (O,) → (N, O, Lo) or (O, Lo).
    ``padding``: int, 1-tuple, "valid" or "same" (stride 1 only).
    """
    return _conv(x, weight, bias, stride, padding, dilation, groups, 1)


def conv2d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups: int = 1) -> Tensor:
    """2-d cross-correlation with PyTorch's layout and arguments.

    Shape: x (N, C, H, W) or (C, H, W); weight (O, C/groups, kh, kw); bias (O,)
    → (N, O, Ho, Wo) or (O, Ho, Wo). ``padding``: int, pair, "valid" or "same" (stride 1 only).
    """
    return _conv(x, weight, bias, stride, padding, dilation, groups, 2)

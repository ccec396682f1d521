"""Max, average and adaptive average pooling over the last one or two dims.

Max and average pooling sweep the kh·kw kernel offsets: each offset is one strided view of the
padded input with the output's shape, so a pass is a handful of whole-array operations and
there is no loop over output positions. Max pooling keeps the offset of each window's maximum
(the first one on ties, NaN winning as in PyTorch) and backward routes the gradient there,
accumulating where windows overlap. Adaptive average pooling is two small matrix products
with averaging matrices, ``P_h @ x @ P_w.T``.
"""

from __future__ import annotations

import numpy as np

from scratchnn.autograd.function import Function
from scratchnn.autograd.tensor import Tensor
from scratchnn.backend import xp
from scratchnn.ops._operands import ensure_tensor
from scratchnn.ops.conv import alloc, in_order, memory_order, ntuple, pad2d, positive
from scratchnn.ops.reduce import mean


def _offset_view(a, i: int, j: int, out_hw, stride, dilation):
    """The (..., Ho, Wo) view of ``a`` that kernel offset (i, j) of every window reads."""
    (ho, wo), (sh, sw), (dh, dw) = out_hw, stride, dilation
    return a[..., i * dh:i * dh + sh * (ho - 1) + 1:sh, j * dw:j * dw + sw * (wo - 1) + 1:sw]


def _geometry(shape, kernel, stride, padding, dilation, ceil_mode):
    """Output size and (before, after) padding per dim; ``after`` grows for ceil_mode."""
    out_hw, pads = [], []
    for size, k, s, p, d in zip(shape[-2:], kernel, stride, padding, dilation):
        extent = d * (k - 1) + 1
        span = size + 2 * p - extent
        n = (span + (s - 1 if ceil_mode else 0)) // s + 1
        if ceil_mode and (n - 1) * s >= size + p:
            n -= 1  # the last window must start inside the input or the left padding
        out_hw.append(n)
        pads.append((p, max(p, (n - 1) * s + extent - size - p)))
    return tuple(out_hw), tuple(pads)


class MaxPool(Function):
    """Max over each window of x (..., H, W); windows that overlap share the gradient."""

    @staticmethod
    def forward(ctx, x, kernel, stride, padding, dilation, ceil_mode):
        out_hw, pads = _geometry(x.shape, kernel, stride, padding, dilation, ceil_mode)
        xpad = pad2d(x, pads, fill=-xp.inf)
        views = [_offset_view(xpad, i, j, out_hw, stride, dilation)
                 for i in range(kernel[0]) for j in range(kernel[1])]
        best, arg = _max_and_argmax(views, nan_aware=False)
        if xp.isnan(best).any():
            best, arg = _max_and_argmax(views, nan_aware=True)
        ctx.save_for_backward(arg)
        ctx.geometry = (xpad.shape, pads, out_hw, stride, dilation, kernel, memory_order(x))
        return best

    @staticmethod
    def backward(ctx, grad):
        (arg,) = ctx.saved
        pad_shape, pads, out_hw, stride, dilation, kernel, order = ctx.geometry
        overlap, tiled = _coverage(pad_shape, out_hw, kernel, stride, dilation)
        grad = in_order(grad, memory_order(arg))  # mixed layouts make every op below crawl
        # In the input's memory order, so the ops before this one (relu, conv) see one layout.
        buf = alloc(pad_shape, grad.dtype, order, None if tiled else 0)
        hit = xp.empty_like(arg, dtype=bool)
        routed = xp.empty_like(grad) if overlap else None
        for k in range(kernel[0] * kernel[1]):
            view = _offset_view(buf, k // kernel[1], k % kernel[1], out_hw, stride, dilation)
            # A multiply by the 0/1 mask: masked ufuncs (where=) are several times slower.
            xp.equal(arg, k, out=hit)
            if overlap:
                view += xp.multiply(grad, hit, out=routed)
            else:  # each input element is in at most one window: write, don't accumulate
                xp.multiply(grad, hit, out=view)
        return _unpad(buf, pads), None, None, None, None, None


def _coverage(pad_shape, out_hw, kernel, stride, dilation) -> tuple[bool, bool]:
    """(windows overlap, windows tile the padded input exactly) for these sizes."""
    dims = list(zip(pad_shape[-2:], out_hw, kernel, stride, dilation))
    overlap = any(s < d * (k - 1) + 1 for _, _, k, s, d in dims)
    tiled = all(d == 1 and s == k and n * s == size for size, n, k, s, d in dims)
    return overlap, tiled


def _max_and_argmax(views, nan_aware: bool):
    """Elementwise max over the offset views and the first offset reaching it (NaN wins)."""
    best = views[0].copy(order="K")
    arg = xp.zeros_like(best, dtype=xp.uint8 if len(views) <= 256 else xp.int32)
    better = xp.empty_like(best, dtype=bool)
    # Offsets come in increasing order, so "the last offset that beat the running max" is
    # max_k(k · better_k): no masked writes, which NumPy runs several times slower.
    step = better.view(xp.uint8) if arg.dtype == xp.uint8 else xp.empty_like(arg)
    for k, v in enumerate(views[1:], 1):
        xp.greater(v, best, out=better)
        if nan_aware:
            better |= xp.isnan(v)
        xp.maximum(best, v, out=best)
        if step.dtype != xp.uint8:
            step[...] = better
        xp.multiply(step, k, out=step)  # k where v beat the running max, else 0
        xp.maximum(arg, step, out=arg)
    return best, arg


class AvgPool(Function):
    """Mean over each window of x (..., H, W), divided by the per-window ``divisor`` (Ho, Wo)."""

    @staticmethod
    def forward(ctx, x, kernel, stride, padding, ceil_mode, divisor):
        out_hw, pads = _geometry(x.shape, kernel, stride, padding, (1, 1), ceil_mode)
        xpad = pad2d(x, pads)
        offsets = [(i, j) for i in range(kernel[0]) for j in range(kernel[1])]
        total = _offset_view(xpad, 0, 0, out_hw, stride, (1, 1)).copy(order="K")
        for i, j in offsets[1:]:
            total += _offset_view(xpad, i, j, out_hw, stride, (1, 1))
        divisor = xp.asarray(divisor, dtype=x.dtype)  # (Ho, Wo), host geometry → device
        total /= divisor
        ctx.geometry = (xpad.shape, pads, out_hw, kernel, stride, divisor, memory_order(x))
        return total

    @staticmethod
    def backward(ctx, grad):
        pad_shape, pads, out_hw, kernel, stride, divisor, order = ctx.geometry
        overlap, tiled = _coverage(pad_shape, out_hw, kernel, stride, (1, 1))
        g = in_order(grad, order) / divisor  # the output shares the input's memory order
        buf = alloc(pad_shape, grad.dtype, order, None if tiled else 0)
        for i in range(kernel[0]):
            for j in range(kernel[1]):
                view = _offset_view(buf, i, j, out_hw, stride, (1, 1))
                if overlap:
                    view += g
                else:
                    view[...] = g
        return _unpad(buf, pads), None, None, None, None, None


def _unpad(buf, pads):
    (top, bottom), (left, right) = pads
    h, w = buf.shape[-2:]
    return buf[..., top:h - bottom, left:w - right]


def _avg_divisor(shape, kernel, stride, padding, out_hw, count_include_pad):
    """(Ho, Wo) element counts of each window, clipped as PyTorch clips them."""
    counts = []
    for size, k, s, p, n in zip(shape[-2:], kernel, stride, padding, out_hw):
        start = np.arange(n) * s - p
        end = np.minimum(start + k, size + p)
        if not count_include_pad:
            start, end = np.maximum(start, 0), np.minimum(end, size)
        counts.append(end - start)
    return np.outer(counts[0], counts[1])  # integer counts, exact in any float dtype


class AdaptiveAvgPool(Function):
    """``P_h @ x @ P_w.T`` with averaging matrices P (out, in) over x (..., H, W)."""

    @staticmethod
    def forward(ctx, x, output_size):
        ph, pw = (_averaging_matrix(n, out, x.dtype) for n, out in zip(x.shape[-2:],
                                                                        output_size))
        ctx.save_for_backward(ph, pw)
        return xp.matmul(ph, xp.matmul(x, pw.T))  # (..., oh, ow)

    @staticmethod
    def backward(ctx, grad):
        ph, pw = ctx.saved
        return xp.matmul(ph.T, xp.matmul(grad, pw)), None  # (..., H, W)


def _averaging_matrix(size: int, out: int, dtype):
    """(out, size) rows averaging PyTorch's adaptive windows [⌊i·size/out⌋, ⌈(i+1)·size/out⌉)."""
    i = np.arange(out)
    start = (i * size) // out
    end = -((-(i + 1) * size) // out)
    pos = np.arange(size)
    inside = (pos >= start[:, None]) & (pos < end[:, None])
    return xp.asarray(inside / (end - start)[:, None], dtype=dtype)


# --------------------------------------------------------------------------- functional forms
def _check_input(x, name: str, spatial: int) -> Tensor:
    x = ensure_tensor(x)
    if x.ndim not in (spatial + 1, spatial + 2):
        raise ValueError(f"{name} expected a {spatial + 1}-d (unbatched) or {spatial + 2}-d "
                         f"(batched) input, got shape {tuple(x.shape)}")
    if x.dtype.kind != "f":
        raise TypeError(f"{name} needs a floating-point input, got dtype {x.dtype}")
    return x


def _pool_args(name, x, spatial, kernel_size, stride, padding, dilation, ceil_mode):
    """Validated 2-d (kernel, stride, padding, dilation); 1-d pools get a leading 1 / 0."""
    kernel = positive(kernel_size, spatial, "kernel_size")
    stride = kernel if stride is None or stride == () else positive(stride, spatial, "stride")
    padding = ntuple(padding, spatial, "padding")
    dilation = positive(dilation, spatial, "dilation")
    for k, p, d in zip(kernel, padding, dilation):
        if not 0 <= p <= (d * (k - 1) + 1) // 2:
            raise ValueError(f"{name}: padding must be >= 0 and at most half the kernel size, "
                             f"got padding={padding} for kernel_size={kernel}")
    if spatial == 1:
        kernel, stride, padding, dilation = ((1,) + kernel, (1,) + stride, (0,) + padding,
                                             (1,) + dilation)
    shape = tuple(x.shape) if spatial == 2 else tuple(x.shape[:-1]) + (1, x.shape[-1])
    out_hw, _ = _geometry(shape, kernel, stride, padding, dilation, ceil_mode)
    if min(out_hw) < 1:
        raise ValueError(f"{name}: input of shape {tuple(x.shape)} is too small for "
                         f"kernel_size={kernel_size}, padding={padding}, dilation={dilation}")
    return shape, kernel, stride, padding, dilation


def _max_pool(x, spatial, kernel_size, stride, padding, dilation, ceil_mode) -> Tensor:
    name = f"max_pool{spatial}d"
    x = _check_input(x, name, spatial)
    _, kernel, stride, padding, dilation = _pool_args(
        name, x, spatial, kernel_size, stride, padding, dilation, ceil_mode)
    if spatial == 1:
        x = x.unsqueeze(-2)  # (..., 1, L)
    out = MaxPool.apply(x, kernel=kernel, stride=stride, padding=padding, dilation=dilation,
                        ceil_mode=bool(ceil_mode))
    return out.squeeze(-2) if spatial == 1 else out


def _avg_pool(x, spatial, kernel_size, stride, padding, ceil_mode, count_include_pad,
              divisor_override) -> Tensor:
    name = f"avg_pool{spatial}d"
    x = _check_input(x, name, spatial)
    shape, kernel, stride, padding, _ = _pool_args(
        name, x, spatial, kernel_size, stride, padding, 1, ceil_mode)
    out_hw, _ = _geometry(shape, kernel, stride, padding, (1, 1), ceil_mode)
    if divisor_override is not None:
        if isinstance(divisor_override, bool) or not divisor_override > 0:
            raise ValueError(f"divisor_override must be > 0, got {divisor_override!r}")
        divisor = np.full(out_hw, divisor_override)
    else:
        divisor = _avg_divisor(shape, kernel, stride, padding, out_hw, count_include_pad)
    if spatial == 1:
        x = x.unsqueeze(-2)  # (..., 1, L)
    out = AvgPool.apply(x, kernel=kernel, stride=stride, padding=padding,
                        ceil_mode=bool(ceil_mode), divisor=divisor)
    return out.squeeze(-2) if spatial == 1 else out


def max_pool1d(x, kernel_size, stride=None, padding=0, dilation=1,
               ceil_mode: bool = False) -> Tensor:
    """Max over sliding windows of the last dim: (N, C, L) or (C, L) → (..., Lo).

    ``stride`` defaults to ``kernel_size``; padding (at most half the kernel) is -inf.
    """
    return _max_pool(x, 1, kernel_size, stride, padding, dilation, ceil_mode)


def max_pool2d(x, kernel_size, stride=None, padding=0, dilation=1,
               ceil_mode: bool = False) -> Tensor:
    """Max over sliding windows of the last two dims: (N, C, H, W) or (C, H, W) → (..., Ho, Wo).

    ``stride`` defaults to ``kernel_size``; padding (at most half the kernel) is -inf.
    """
    return _max_pool(x, 2, kernel_size, stride, padding, dilation, ceil_mode)


def avg_pool1d(x, kernel_size, stride=None, padding=0, ceil_mode: bool = False,
               count_include_pad: bool = True) -> Tensor:
    """Mean over sliding windows of the last dim: (N, C, L) or (C, L) → (..., Lo).

    Zero padding counts in the mean unless ``count_include_pad=False`` (PyTorch's rule).
    """
    return _avg_pool(x, 1, kernel_size, stride, padding, ceil_mode, count_include_pad, None)


def avg_pool2d(x, kernel_size, stride=None, padding=0, ceil_mode: bool = False,
               count_include_pad: bool = True, divisor_override: int | None = None) -> Tensor:
    """Mean over sliding windows of the last two dims: (N, C, H, W) or (C, H, W) → (..., Ho, Wo).

    Zero padding counts in the mean unless ``count_include_pad=False`` (PyTorch's rule).
    """
    return _avg_pool(x, 2, kernel_size, stride, padding, ceil_mode, count_include_pad,
                     divisor_override)


def adaptive_avg_pool2d(x, output_size) -> Tensor:
    """Average over PyTorch's adaptive windows: (N, C, H, W) or (C, H, W) → (..., oh, ow).

    ``output_size``: an int or a pair (None keeps that input dim). Output cell i along a dim of
    size n averages ``[floor(i·n/out), ceil((i+1)·n/out))``.
    """
    x = _check_input(x, "adaptive_avg_pool2d", 2)
    if isinstance(output_size, (tuple, list)) and len(output_size) == 2:
        output_size = tuple(n if o is None else o for o, n in zip(output_size, x.shape[-2:]))
    size = positive(output_size, 2, "output_size")
    return AdaptiveAvgPool.apply(x, output_size=size)


def global_avg_pool2d(x, keepdims: bool = False) -> Tensor:
    """Mean over the last two dims: (N, C, H, W) → (N, C), or (N, C, 1, 1) with keepdims."""
    x = _check_input(x, "global_avg_pool2d", 2)
    return mean(x, axis=(-2, -1), keepdims=keepdims)

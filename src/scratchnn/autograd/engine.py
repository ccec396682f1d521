"""Reverse-mode differentiation: walk the recorded graph and accumulate gradients."""

from __future__ import annotations

from scratchnn.autograd import grad_mode
from scratchnn.backend import xp


def unbroadcast(grad, shape: tuple[int, ...]):
    """Sum ``grad`` down to ``shape``, undoing NumPy broadcasting. The one place it is undone."""
    if grad.shape == shape:
        return grad
    extra = grad.ndim - len(shape)
    if extra:
        grad = grad.sum(axis=tuple(range(extra)))
    axes = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    if axes:
        grad = grad.sum(axis=axes, keepdims=True)
    return grad.reshape(shape)


def _topological_order(root_node) -> list:
    """Nodes reachable from ``root_node``, each after every node that consumes its output."""
    order = []
    # A node counts as visited once expanded, not once pushed: marking at push time lets a
    # node be emitted before an input it reaches by a longer path (a diamond), which would
    # process that input before all of its gradient has arrived.
    visited = set()
    stack = [(root_node, False)]
    while stack:
        node, expanded = stack.pop()
        if expanded:
            order.append(node)
            continue
        if id(node) in visited:
            continue
        visited.add(id(node))
        if node._freed:
            raise RuntimeError(
                "backward through a graph whose saved arrays were already freed by an earlier "
                "backward(); call backward(retain_graph=True) the first time to go through it "
                "again"
            )
        stack.append((node, True))
        for x in node.inputs:
            child = getattr(x, "_node", None)
            if child is not None and id(child) not in visited:
                stack.append((child, False))
    order.reverse()
    return order


def _check_versions(node) -> None:
    for tensor, version in node._versions:
        if tensor._version != version:
            raise RuntimeError(
                f"an array saved for backward by {node.fn.__name__} was modified in place "
                f"(a tensor of shape {tuple(tensor.shape)} is at version {tensor._version}, "
                f"expected {version}); use an out-of-place op instead"
            )


def backward(root, grad=None, retain_graph: bool = False) -> None:
    """Accumulate d(root)/d(leaf) into ``leaf.grad`` for every leaf that requires grad."""
    from scratchnn.autograd.tensor import Tensor

    if not root.requires_grad:
        raise RuntimeError(
            "backward() on a tensor that does not require grad and has no graph; "
            "did you create it under no_grad() or from tensors with requires_grad=False?"
        )
    if grad is None:
        if root._data.size != 1:
            raise RuntimeError(
                f"backward() without a gradient needs a single-element output, got shape "
                f"{tuple(root.shape)}; pass grad= of the same shape"
            )
        grad = xp.ones_like(root._data)
    else:
        grad = grad._data if isinstance(grad, Tensor) else xp.asarray(grad, root.dtype)
        if grad.shape != root._data.shape:
            raise ValueError(
                f"grad has shape {grad.shape} but the output has shape {root._data.shape}"
            )
    if root._node is None:  # a leaf
        _accumulate_leaf(root, grad)
        return

    grads = {id(root._node): grad}
    with grad_mode.no_grad():
        for node in _topological_order(root._node):
            g = grads.pop(id(node), None)
            if g is None:
                continue
            _check_versions(node)
            in_grads = node.fn.backward(node, g)
            if not isinstance(in_grads, tuple):
                in_grads = (in_grads,)
            for x, ig, needed in zip(node.inputs, in_grads, node.needs_input_grad):
                if not needed or ig is None:
                    continue
                if ig.shape != x._data.shape:
                    ig = unbroadcast(ig, x._data.shape)
                child = x._node
                if child is None:
                    _accumulate_leaf(x, ig)
                else:
                    key = id(child)
                    prev = grads.get(key)
                    # Out of place: ``ig`` may be shared with another input or node.
                    grads[key] = ig if prev is None else prev + ig
            if not retain_graph:
                node.saved = ()
                node._versions = ()
                node._freed = True


def _accumulate_leaf(leaf, grad) -> None:
    from scratchnn.autograd.tensor import Tensor

    if grad.dtype != leaf._data.dtype:
        grad = grad.astype(leaf._data.dtype)
    if leaf.grad is None:
        # A copy the leaf owns: ``grad`` may be shared with other leaves, and optimizers and
        # gradient clipping update ``.grad`` in place.
        leaf.grad = Tensor._wrap(xp.array(grad, copy=True), False)
    else:
        leaf.grad._data += grad

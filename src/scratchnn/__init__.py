"""scratchnn: a deep-learning framework written from scratch on NumPy."""

from scratchnn.autograd import Function, Tensor, enable_grad, is_grad_enabled, no_grad, tensor
from scratchnn.ops import *  # noqa: F403 - the op functions are the top-level API
from scratchnn.ops import __all__ as _ops_all
from scratchnn.random import default_generator, manual_seed

__version__ = "0.1.0"

float32 = "float32"
float64 = "float64"
int64 = "int64"


def zeros(*shape, dtype=None, requires_grad: bool = False) -> Tensor:
    """A tensor of zeros (float32 unless ``dtype`` is given)."""
    import numpy as np

    shape = shape[0] if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape
    return Tensor(np.zeros(shape, dtype=dtype or np.float32), requires_grad=requires_grad)


def ones(*shape, dtype=None, requires_grad: bool = False) -> Tensor:
    """A tensor of ones (float32 unless ``dtype`` is given)."""
    import numpy as np

    shape = shape[0] if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape
    return Tensor(np.ones(shape, dtype=dtype or np.float32), requires_grad=requires_grad)


def from_pretrained(path, tokenizer: bool = True, pad_token=None):
    """Load a Hugging Face GPT-2 / BERT folder (see ``scratchnn.interop.from_pretrained``)."""
    # Imported here so that ``import scratchnn`` stays fast (no tokenizers, no model code).
    from scratchnn.interop import from_pretrained as _from_pretrained

    return _from_pretrained(path, tokenizer=tokenizer, pad_token=pad_token)


__all__ = [
    "from_pretrained",
    "Function", "Tensor", "default_generator", "enable_grad", "is_grad_enabled",
    "manual_seed", "no_grad", "ones", "tensor", "zeros", *_ops_all,
]

"""The array module behind every op.

Ops import ``xp`` from here instead of importing NumPy for math, so that a GPU array library
with the NumPy API (CuPy) can slot in later by changing this one file.
"""

from __future__ import annotations

import numpy as np
from scipy import special as _special

xp = np

#: The dtype of tensors made from Python floats and float arrays unless asked otherwise.
DEFAULT_FLOAT = np.dtype(np.float32)

#: The complementary error function ``1 - erf``, which NumPy lacks; exact GELU's normal CDF
#: needs it (``erfc`` keeps both tails exact, ``1 + erf`` cancels in the lower one). SciPy is
#: already required by scikit-learn, and ``cupyx.scipy.special.erfc`` is its GPU counterpart.
erfc = _special.erfc


def is_float_dtype(dtype: np.dtype) -> bool:
    """True for floating-point dtypes (the only ones that carry gradients)."""
    return np.dtype(dtype).kind == "f"

"""Pure array operations: ``<op>_forward(x, ...) -> (y, saved)`` and ``<op>_backward(dy, saved) -> grads``.

One file per op family. No autograd here: these functions take and return
NumPy arrays, so they can be read, tested and benchmarked on their own.
Hot loops are compiled with Numba (``cache=True``; compiled on first call,
never at import), serially or in parallel by the policy of ``_threading``.
"""

from normlab.ops import _threading  # noqa: F401  (sets the OpenMP environment before any kernel loads)

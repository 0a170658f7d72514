"""Pure array operations: ``<op>_forward(x, ...) -> (y, saved)`` and ``<op>_backward(dy, saved) -> grads``.

One file per op family. No autograd here: these functions take and return
NumPy arrays, so they can be read, tested and benchmarked on their own.
Hot loops are compiled with Numba (``cache=True``; compiled on first call,
never at import).
"""

import os

# Why: Numba's parallel kernels run on OpenMP workers that, by default, spin
# while idle; on a small machine they starve the BLAS threads of the next
# matmul. Measured on 2 cores: a conv/BN/pool/linear training step took
# 53.8 ms with spinning workers and 7.1 ms with passive ones, and a BatchNorm
# MLP trained 30x slower. OpenMP reads this when it first loads (at the first
# parallel kernel, after this line); a value the user set wins. Torch's own
# OpenMP timings were unchanged by it (within noise) when measured the same way.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

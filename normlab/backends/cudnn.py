"""``normlab.backends.cudnn``: the flags torch scripts set (``deterministic``, ``benchmark``, ``enabled``).

They are plain attributes with torch's defaults; setting them changes
nothing, as on a torch build without CUDA. normlab's results do not depend
on them: its kernels are deterministic for a given thread count.
"""

enabled = True
benchmark = False
deterministic = False
allow_tf32 = True


def is_available() -> bool:
    return False


def version():
    """None: no cuDNN, as torch reports without one."""
    return None

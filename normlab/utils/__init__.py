"""``normlab.utils``: torch.utils' paths (``normlab.utils.data``)."""
from normlab.utils import data  # noqa: F401

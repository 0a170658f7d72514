"""Placeholder: filled by the convolution work."""
__all__: list[str] = []

"""Placeholder: filled by the normalization work."""
__all__: list[str] = []

"""Placeholder: filled by the pooling work."""
__all__: list[str] = []

"""Placeholder: gradient clipping (clip_grad_norm_, clip_grad_value_) is filled by the optim/utils work."""
__all__: list[str] = []

"""Placeholder: SGD, Adam, AdamW are filled by the optim work."""

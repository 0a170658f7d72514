"""Placeholder: safetensors checkpoints (save/load) are filled by the checkpoint work."""


def save(state_dict, path):  # pragma: no cover - placeholder
    raise NotImplementedError("normlab.save is not implemented yet")


def load(path):  # pragma: no cover - placeholder
    raise NotImplementedError("normlab.load is not implemented yet")

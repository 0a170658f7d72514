"""Optimizers with torch.optim's names, defaults and update rules: SGD, Adam, AdamW.

>>> import normlab, normlab.nn as nn
>>> model = nn.Linear(4, 2)
>>> opt = normlab.optim.AdamW(model.parameters(), lr=1e-3)
>>> loss = model(normlab.randn(8, 4)).pow(2).mean()
>>> opt.zero_grad(); loss.backward(); opt.step()
"""
from normlab.optim.adam import Adam, AdamW
from normlab.optim.optimizer import Optimizer
from normlab.optim.sgd import SGD

__all__ = ["Optimizer", "SGD", "Adam", "AdamW"]

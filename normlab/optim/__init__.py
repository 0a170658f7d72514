"""Optimizers and learning-rate schedules with torch.optim's names, defaults and update rules.

>>> import normlab, normlab.nn as nn
>>> model = nn.Linear(4, 2)
>>> opt = normlab.optim.AdamW(model.parameters(), lr=1e-3)
>>> sched = normlab.optim.lr_scheduler.StepLR(opt, step_size=10, gamma=0.5)
>>> loss = model(normlab.randn(8, 4)).pow(2).mean()
>>> opt.zero_grad(); loss.backward(); opt.step(); sched.step()
"""
from normlab.optim import lr_scheduler
from normlab.optim.adadelta import Adadelta
from normlab.optim.adagrad import Adagrad
from normlab.optim.adam import Adam, AdamW
from normlab.optim.adamax import Adamax
from normlab.optim.lbfgs import LBFGS
from normlab.optim.nadam import NAdam
from normlab.optim.optimizer import Optimizer
from normlab.optim.radam import RAdam
from normlab.optim.rmsprop import RMSprop
from normlab.optim.sgd import SGD

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "Adadelta", "Adamax", "NAdam", "RAdam",
           "LBFGS", "lr_scheduler"]

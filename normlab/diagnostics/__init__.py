"""Diagnostics for training: ``GradientMonitor`` watches gradient flow, activations and updates per layer.

Usable on any ``normlab.nn.Module``, in or outside the lab::

    monitor = GradientMonitor(model)      # attaches hooks
    for x, y in loader:
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad(); loss.backward(); optimizer.step()
        monitor.step()                    # closes the step
    print(monitor.summary())              # vanishing / exploding / dead / saturated layers, in words
    monitor.plot("gradients.png")
    monitor.detach()                      # no hooks left: costs nothing

See ``normlab.diagnostics.monitor`` for what is recorded.
"""
from normlab.diagnostics.monitor import GradientMonitor

__all__ = ["GradientMonitor"]

"""``SyncBatchNorm``: BatchNorm whose batch is the global batch of every process again.

With data parallelism each process sees a slice of the batch, and plain
BatchNorm normalizes with that slice's statistics: the noisier the fewer
samples per process (Wu & He, 2018). SyncBatchNorm (Peng et al., MegDet,
2018; torch's ``nn.SyncBatchNorm``) reduces the statistics across processes,
so output, gradients and running statistics are those of BatchNorm on the
concatenated batch, whatever the split.

Communication per training step and layer: one allgather of each process's
(count, mean, sum of squared deviations) per channel in forward, merged with
Chan et al.'s formula on every process in rank order (so every process holds
bitwise the same statistics), and one allreduce of two per-channel sums in
backward. Statistics and sums are float64 whatever the input dtype.

The per-channel kernels are SyncBatchNorm's own (``normlab.ops.sync_batch_norm``);
the single-process and eval paths are BatchNorm's (``F.batch_norm``).
"""
from __future__ import annotations

import numpy as np

from normlab import distributed as dist
from normlab._checks import check_float, check_same_dtype
from normlab.autograd.function import Function
from normlab.autograd.tensor import Tensor, as_tensor
from normlab.nn.modules.module import Module
from normlab.nn.modules.normalization import BatchNorm1d, BatchNorm2d, _BatchNorm
from normlab.ops import sync_batch_norm as ops

__all__ = ["SyncBatchNorm"]


class _SyncBatchNorm(Function):
    """y = weight * x_hat + bias with x_hat = (x - mean) * rstd from the global batch's statistics."""

    def forward(self, x, weight, bias, *, mean, rstd, count, group):
        y3, self.x_hat3 = ops.normalize(ops.channel_view(x), mean, rstd, weight, bias)
        self.rstd, self.count, self.group, self.weight = rstd, count, group, weight
        return y3.reshape(x.shape)

    def backward(self, dy):
        """Gradients through the global statistics; one allreduce of two per-channel sums.

        With g = dy * weight and n values per channel over all processes:
            dbias   = sum(dy)                 (this process's part; DDP sums the parts)
            dweight = sum(dy * x_hat)         (likewise)
            dx      = rstd * (g - sum_all(g) / n - x_hat * sum_all(g * x_hat) / n)
        x moves x_hat directly (rstd), through the global mean (hence the
        global mean of g) and through the global variance (hence the x_hat term);
        sum_all needs every process's sums: that is the allreduce.
        """
        dy3 = ops.channel_view(dy)
        sum_dy, sum_dy_x_hat = ops.channel_sums(dy3, self.x_hat3)
        needs_x, needs_weight, needs_bias = self.needs_input_grad
        grad_weight = sum_dy_x_hat.astype(self.weight.dtype) if needs_weight else None
        grad_bias = sum_dy.astype(self.weight.dtype) if needs_bias else None
        grad_x = None
        if needs_x:
            sums = np.concatenate([sum_dy, sum_dy_x_hat])
            dist.all_reduce(sums, group=self.group)
            mean_dy, mean_dy_x_hat = np.split(sums / self.count, 2)
            scale = self.rstd if self.weight is None else self.rstd * self.weight
            grad_x = ops.input_gradient(dy3, self.x_hat3, scale, mean_dy, mean_dy_x_hat).reshape(dy.shape)
        return grad_x, grad_weight, grad_bias


class SyncBatchNorm(_BatchNorm):
    """Batch Normalization over the global batch of all processes (Peng et al., MegDet, 2018).

    Same as ``torch.nn.SyncBatchNorm``: training normalizes each channel with
    the mean and biased variance of the concatenated batch of every process
    of ``process_group`` (default: all), and updates ``running_mean`` /
    ``running_var`` (unbiased over the global count) and
    ``num_batches_tracked`` exactly as BatchNorm on that batch. Per-process
    batches may differ in size, be one sample or empty, as long as the global
    batch has more than one value per channel. In eval mode, or with one
    process (or no process group), it is BatchNorm.

    Every process must call forward and backward in step (the statistics and
    the input gradient are collectives).

    Shapes: (N, C, *) -> same shape.

    >>> import normlab, normlab.nn as nn
    >>> sbn = nn.SyncBatchNorm(3)             # one process: BatchNorm
    >>> sbn(normlab.randn(4, 3, 5)).shape
    (4, 3, 5)
    """

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1, affine: bool = True,
                 track_running_stats: bool = True, process_group=None, device=None, dtype=None) -> None:
        super().__init__(num_features, eps, momentum, affine, track_running_stats, device, dtype)
        self.process_group = process_group

    def _check_input(self, x: Tensor) -> None:
        """Local checks (dtypes, rank, channels), as BatchNorm's; the batch size is checked on the global batch."""
        check_float("SyncBatchNorm", x._data)
        if x.ndim < 2:
            raise ValueError(f"SyncBatchNorm: expected at least 2D input (N, C, *), got {x.ndim}D input of "
                             f"shape {tuple(x.shape)}")
        self._check_channels(x)
        state = {"running_mean": self.running_mean, "weight": self.weight, "bias": self.bias}
        check_same_dtype("SyncBatchNorm", x._data, **{k: None if t is None else t._data for k, t in state.items()})

    def _group(self):
        """The process group to synchronise over, or None when this forward is plain BatchNorm."""
        if not self.training:
            return None
        if self.process_group is None and not dist.is_initialized():
            return None
        group = dist.process_group.resolve(self.process_group)
        return group if group.size() > 1 else None

    def forward(self, input):
        x = as_tensor(input if isinstance(input, (Tensor, np.ndarray)) else np.asarray(input))
        self._check_input(x)
        group = self._group()
        if group is None:
            return super().forward(x)
        return self._forward_synchronised(x, group)

    def _forward_synchronised(self, x: Tensor, group) -> Tensor:
        row = ops.local_moments(ops.channel_view(x._data))
        table = np.empty((group.size(), row.size), dtype=np.float64)
        dist.all_gather_into_tensor(table.reshape(-1), row, group=group)
        global_count = int(table[:, 0].sum())
        if global_count <= 1:  # every process holds the same table, so every process raises here
            raise ValueError(f"SyncBatchNorm: Expected more than 1 value per channel when training, got "
                             f"{global_count} value(s) per channel in the global batch of {group.size()} "
                             f"processes (input size {tuple(x.shape)} on this process)")
        count, mean, m2 = ops.merge_moments(table)
        variance = m2 / count
        if self.track_running_stats:  # every check has passed: now the state moves
            factor = self._factor()
            for buffer, batch_value in ((self.running_mean, mean), (self.running_var, m2 / (count - 1))):
                buffer._data[...] = (1.0 - factor) * buffer._data + factor * batch_value
            self._count_batch()
        rstd = 1.0 / np.sqrt(variance + self.eps)
        return _SyncBatchNorm.apply(x, self.weight, self.bias, mean=mean, rstd=rstd, count=count, group=group)

    @classmethod
    def convert_sync_batchnorm(cls, module: Module, process_group=None) -> Module:
        """Replace every BatchNorm1d/2d in ``module`` by a SyncBatchNorm sharing its parameters and buffers.

        Returns the converted module (a new object when ``module`` itself is a
        BatchNorm). BatchRenorm is left alone: its correction is not BatchNorm's.

        >>> import normlab.nn as nn
        >>> net = nn.SyncBatchNorm.convert_sync_batchnorm(nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3)))
        >>> type(net[1]).__name__
        'SyncBatchNorm'
        """
        converted = module
        if isinstance(module, (BatchNorm1d, BatchNorm2d)):
            converted = cls(module.num_features, module.eps, module.momentum, module.affine,
                            module.track_running_stats, process_group)
            converted.weight = module.weight
            converted.bias = module.bias
            for name in ("running_mean", "running_var", "num_batches_tracked"):
                setattr(converted, name, getattr(module, name))
            converted.train(module.training)
        for name, child in list(module.named_children()):
            converted.add_module(name, cls.convert_sync_batchnorm(child, process_group))
        return converted

"""Autograd wrappers of the activation ops, shared by Tensor methods and ``nn.functional``."""
from __future__ import annotations

from normlab.autograd.function import from_op
from normlab.ops import activation as ops

Sigmoid = from_op("Sigmoid", ops.sigmoid_forward, ops.sigmoid_backward)
Tanh = from_op("Tanh", ops.tanh_forward, ops.tanh_backward)
ReLU = from_op("ReLU", ops.relu_forward, ops.relu_backward)
LeakyReLU = from_op("LeakyReLU", ops.leaky_relu_forward, ops.leaky_relu_backward)
ELU = from_op("ELU", ops.elu_forward, ops.elu_backward)
SELU = from_op("SELU", ops.selu_forward, ops.selu_backward)
SiLU = from_op("SiLU", ops.silu_forward, ops.silu_backward)
Softplus = from_op("Softplus", ops.softplus_forward, ops.softplus_backward)
GELU = from_op("GELU", ops.gelu_forward, ops.gelu_backward)
Softmax = from_op("Softmax", ops.softmax_forward, ops.softmax_backward)
LogSoftmax = from_op("LogSoftmax", ops.log_softmax_forward, ops.log_softmax_backward)

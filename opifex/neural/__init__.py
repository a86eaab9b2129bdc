"""Neural network models."""

from opifex.neural.base import StandardMLP as StandardMLP

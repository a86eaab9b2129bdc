"""Opifex: physics-informed scientific machine learning on JAX, Flax NNX and Optax."""

__version__ = "0.1.0"

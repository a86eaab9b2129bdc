"""Mechanism: the training engine, configs, losses and physics math."""

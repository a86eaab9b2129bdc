"""Physics math: derivatives, physics-informed losses, weighting rules, problems."""

"""Built-in benchmark problems with exact or reference solutions."""

"""Shipped run configs (YAML): paper, tiny, world."""

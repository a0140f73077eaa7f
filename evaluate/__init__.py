"""Evaluation: judges, the benchmark runner, tables and the speed benchmark.

Note: Hugging Face's ``evaluate`` library uses the same top-level name; this package is
the one installed by actionbench (tests check ``evaluate.__file__``).
"""

"""Across version sets: install a set, run the suites in it, matrix, history, bisect, sweeps, the gate."""

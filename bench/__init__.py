"""Benchmarks (`make bench`): each module bench/bench_NAME.py prints a table and writes JSON."""

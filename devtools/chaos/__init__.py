"""Jepsen-style chaos run (`make chaos`): fault-injecting proxy, nemesis, workload, checker.

A dev tool beside the benchmark: the validator never imports it.
"""

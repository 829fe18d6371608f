"""Mutation testing of the safety-critical modules (cosmic-ray), and the CI set of known mutants.

``python -m tests.mutation run [--target NAME ...]`` mutates each target listed in
``targets.toml`` and runs its fast test selection against every mutant;
``python -m tests.mutation report`` writes ``build/mutation/report.md``. ``make mutate``
does both (long; not in CI). ``known.py`` is a catalogue of hand-written mutants of the
worst kind, which ``test_known_mutants.py`` applies one by one in CI: each must make its
named tests fail. docs/testing.md explains both and records the scores.
"""

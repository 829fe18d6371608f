"""How long a test waits for what should happen at once before it calls it a hang: a
guard against a hang, never a timing assertion.

``HANG_S`` is generous, so that a loaded machine never trips it. The known mutants' runs
(tests/mutation/test_known_mutants.py) set ``LEDGER_TEST_HANG_S`` lower: a mutant that
makes a test hang waits out the whole guard, and there are many such mutants. Their
control runs the same named tests with the same setting, which shows the lower guard
suffices for the unmutated code.
"""

from __future__ import annotations

import os

HANG_S = float(os.environ.get("LEDGER_TEST_HANG_S", "10"))

"""The catalogue of known mutants: hand-written bugs of the worst kind that CI must catch.

``test_known_mutants.py`` applies each one to a copy of the repository and runs the named
tests there: they must FAIL (pytest exit code 1). Adding a mutant is one entry:

    Mutant("short-id", "path/to/file.py",
           old="exact text, found exactly once in the file",
           new="its replacement",
           breaks="what goes wrong in production",
           tests=["tests/unit/test_x.py::test_that_catches_it"]),

Choose ``old`` long enough to be unique; keep the mutant one rule broken, no more; check
by hand that the named tests pass without it (the control test runs them all).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Mutant:
    id: str
    file: str
    old: str
    new: str
    breaks: str
    tests: list[str]


_M = "tests/unit/test_core_mutants.py::"

# fmt: off
MUTANTS: list[Mutant] = [
    Mutant("cert-q-minus-1", "node/core/signing.py",
           old="len(indexes) >= q and", new="len(indexes) >= q - 1 and",
           breaks="a commit or prepare certificate (and a TC) of q - 1 signatures is accepted",
           tests=[_M + "test_a_certificate_needs_q_signatures_and_q_minus_1_is_refused"]),
    Mutant("replica-cert-q-minus-1", "node/core/replica.py",
           old="verify_certificate(qc, self.cfg.chain_id, self.n, self.q, self._verifier)",
           new="verify_certificate(qc, self.cfg.chain_id, self.n, self.q - 1, self._verifier)",
           breaks="a replica commits on a commit certificate of q - 1 signatures",
           tests=[_M + "test_a_commit_certificate_of_q_minus_1_signatures_does_not_commit"]),
    Mutant("cert-duplicate-signer", "node/core/signing.py",
           old="and len(set(indexes)) == len(indexes) ", new="",
           breaks="one validator's signature repeated q times makes a certificate",
           tests=[_M + "test_a_signer_counted_twice_does_not_make_a_quorum"]),
    Mutant("cert-outsider-signer", "node/core/signing.py",
           old="all(0 <= i < n for i in indexes)", new="all(0 <= i for i in indexes)",
           breaks="a signature by a key outside the validator set counts toward q",
           tests=[_M + "test_a_signature_from_outside_the_validator_set_is_not_counted"]),
    Mutant("tc-q-minus-1", "node/core/signing.py",
           old="for e in tc.entries], n, q)", new="for e in tc.entries], n, q - 1)",
           breaks="a timeout certificate of q - 1 timeouts moves replicas to the next view",
           tests=[_M + "test_a_timeout_certificate_needs_q_distinct_timeouts",
                  _M + "test_a_replica_does_not_change_view_on_q_minus_1_timeouts"]),
    Mutant("tc-lock-ignored-by-voters", "node/core/replica.py",
           old="        return tc.high_lock.block_hash == p.block.hash", new="        return True",
           breaks="after a view change replicas vote for a block conflicting with the TC's lock",
           tests=[_M + "test_a_proposal_ignoring_the_lock_in_its_tc_gets_no_vote"]),
    Mutant("tc-lock-dropped-when-formed", "node/core/replica.py",
           old="max(locks, key=lambda qc: qc.view, default=None)", new="None",
           breaks="a timeout certificate forgets the locks its timeouts report",
           tests=[_M + "test_after_a_view_change_the_locked_block_is_the_one_committed"]),
    Mutant("double-vote-guard-off", "node/core/replica.py",
           old="if p.view <= max(self.safety.prepare_view, self.safety.timeout_view):",
           new="if False:",
           breaks="a replica votes PREPARE twice in one view (for an equivocating leader)",
           tests=[_M + "test_an_equivocating_leader_gets_one_prepare_vote_per_replica"]),
    Mutant("commit-on-prepare-cert", "node/core/replica.py",
           old="        return ok and qc.phase == phase", new="        return ok",
           breaks="a prepare certificate is taken as a commit certificate (catch-up commits it)",
           tests=[_M + "test_a_prepare_certificate_does_not_commit"]),
    Mutant("tc-commit-ignored-by-voters", "node/core/replica.py",
           old="if p.block.height < top + 1:", new="if False:",
           breaks="a lagging replica votes for a block at a height its TC proves committed",
           tests=[_M + "test_a_lagging_replica_refuses_a_block_the_tc_proves_committed"]),
    Mutant("sync-unverified-commit-cert", "node/core/replica.py",
           old="if cert.height != block.height or not",
           new="if cert.height != block.height and not",
           breaks="catch-up commits a block whose commit certificate is forged",
           tests=[_M + "test_catch_up_refuses_a_block_without_its_commit_certificate"]),
    Mutant("timeout-unverified-commit-cert", "node/core/replica.py",
           old="            or not self._verify_qc(t.commit_cert, Phase.COMMIT)",
           new="            and not self._verify_qc(t.commit_cert, Phase.COMMIT)",
           breaks="a timeout's committed height is taken on a forged commit certificate",
           tests=[_M + "test_a_timeout_with_a_forged_commit_certificate_is_refused"]),
    Mutant("classic-quorum-off-by-one", "node/core/quorum.py",
           old="return (2 * n) // 3 + 1", new="return (2 * n) // 3",
           breaks="the classic quorum is floor(2n/3): two quorums may share no honest validator",
           tests=["tests/unit/test_quorum.py::test_classic_quorum"]),
]
# fmt: on

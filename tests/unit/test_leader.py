"""The leader schedule: skips validators that failed to lead, deterministic from committed
headers, and never tries validators adjacent in index order one after another."""

from __future__ import annotations

import random
from math import gcd

import pytest

from node.config import VALIDATORS_MAX, VIEW_TIMEOUT_BASE_MS
from node.core import Replica
from node.core.leader import LeaderSchedule, stride
from tests.sim.harness import HashSigner
from tests.unit.test_core_replica import Net


@pytest.mark.parametrize("m", range(1, 60))
def test_stride_is_coprime_so_every_candidate_leads_once_per_rotation(m: int) -> None:
    s = stride(m)
    assert 0 < s <= max(1, m - 1) and gcd(s, m) == 1
    sched = LeaderSchedule(m, 0)
    assert sorted(sched.leader(v) for v in range(m)) == list(range(m))


def test_no_two_consecutive_views_fall_in_any_run_of_ten_adjacent_validators() -> None:
    """26 validators, any n - q = 10 adjacent ones down: never two dead leaders in a row."""
    sched = LeaderSchedule(26, 10)
    for first in range(26):
        dead = {(first + k) % 26 for k in range(10)}
        for v in range(200):
            assert not (sched.leader(v) in dead and sched.leader(v + 1) in dead)


def _commit(sched: LeaderSchedule, view: int, proposer: int) -> None:
    """A block first proposed in ``view`` whose parent was certified in its own view."""
    last = sched.last_view
    sched.committed(view, proposer, parent_view=0 if last is None else last)


def _commit_views(sched: LeaderSchedule, views: list[int]) -> None:
    """Blocks first proposed in these views, each by the leader the schedule names."""
    for view in views:
        _commit(sched, view, sched.leader(view))


def test_validators_that_failed_to_lead_are_skipped_at_most_n_minus_q() -> None:
    sched = LeaderSchedule(7, 2)
    _commit_views(sched, [0, 1])
    failed = {sched.leader(v) for v in range(2, 6)}
    _commit_views(sched, [6])  # views 2..5 failed
    assert len(sched.excluded) == 2 and sched.excluded <= failed
    assert all(sched.leader(v) not in sched.excluded for v in range(50))


def test_changes_at_tells_whether_a_commit_would_change_the_leaders_and_changes_nothing() -> None:
    """The probe a pipelining replica asks (ADR 0012): a block in the next view changes
    nothing; one after a failed view, the penalty's end, and the child of a penalised
    validator's certified block do. Asking never moves the schedule itself."""
    sched = LeaderSchedule(4, 1, penalty_base=2, penalty_max=2)
    _commit_views(sched, [0])
    before = (sched.candidates, [sched.leader(v) for v in range(8)])
    assert not sched.changes_at(1, sched.leader(1), parent_view=0)
    assert sched.changes_at(2, sched.leader(2), parent_view=0)  # view 1 failed: charged
    assert (sched.candidates, [sched.leader(v) for v in range(8)]) == before
    dead = sched.leader(1)
    _commit_views(sched, [2])
    assert sched.excluded == {dead}
    _commit(sched, 3, dead)  # its block, certified in view 3 as the next header will say
    assert sched.changes_at(4, sched.leader(4), parent_view=3)  # it is trusted again
    assert sched.changes_at(5, sched.leader(5), parent_view=3)  # view 4 failed
    assert sched.excluded == {dead}


def test_asking_the_probe_leaves_no_trace_in_the_schedule() -> None:
    """However often the probe is asked, about failures and re-proposals, the schedule
    goes on exactly as one never asked: every field, after every commit."""
    asked = LeaderSchedule(7, 2, penalty_base=2, penalty_max=8)
    never = LeaderSchedule(7, 2, penalty_base=2, penalty_max=8)
    left_out: set[int] = set()
    for view in [0, 1, 4, 5, 9, 10, 11]:  # views 2-3 and 6-8 failed
        last = asked.last_view
        for ahead in range(1, 4):  # the next view, or one or two failed first
            nxt = view + ahead
            asked.changes_at(nxt, asked.leader(nxt), parent_view=view)
            asked.changes_at(nxt, asked.leader(nxt), parent_view=view + 1)  # re-proposed
        asked.committed(view, asked.leader(view), parent_view=0 if last is None else last)
        never.committed(view, never.leader(view), parent_view=0 if last is None else last)
        assert vars(asked) == vars(never), view
        left_out |= never.excluded
    assert left_out  # the failures were charged: there was something to leak


def test_a_validator_that_leads_again_is_trusted_again_and_a_penalty_ends() -> None:
    sched = LeaderSchedule(4, 1, penalty_base=8, penalty_max=8)
    _commit_views(sched, [0])
    dead = sched.leader(1)
    _commit_views(sched, [2])
    assert sched.excluded == {dead}
    _commit(sched, 3, dead)  # it proposed a block; certified in its view, as the child says:
    _commit_views(sched, [4])
    assert sched.excluded == frozenset()  # back in
    dead = sched.leader(5)
    _commit_views(sched, [6])
    assert sched.excluded == {dead}
    _commit_views(sched, list(range(7, 7 + 8)))  # eight blocks since: its penalty is over
    assert sched.excluded == frozenset()


def test_a_validator_failing_again_sits_out_twice_as_long() -> None:
    sched = LeaderSchedule(26, 10, penalty_base=4)
    dead = 5
    view, sat_out = 0, []
    for _ in range(200):
        view += 1
        while sched.leader(view) == dead:
            view += 1  # its view times out
            sat_out.append(0)
        _commit(sched, view, sched.leader(view))
        if sat_out:
            sat_out[-1] += dead in sched.excluded
    assert sat_out[:4] == [4, 8, 16, 32]


def test_a_failure_stays_charged_to_the_leader_of_its_time() -> None:
    """The cascade this rule prevents: recomputing old gaps with today's candidates moved
    failures onto live validators (seen at 26/16 with 10 down, once the window turned)."""
    sched = LeaderSchedule(26, 10, penalty_base=16)
    dead = set(range(14, 24))
    view = 0
    for _ in range(300):
        view += 1
        while sched.leader(view) in dead:
            view += 1  # a dead leader's view times out
        _commit(sched, view, sched.leader(view))
        assert sched.excluded <= dead, (view, sorted(sched.excluded))


def test_a_restarted_replica_computes_the_schedule_the_others_have() -> None:
    """Replayed from block 1 at start, from the headers in storage: every leader agrees."""
    net = Net(n=7, q=5)
    net.down, now = {2, 4}, 0
    for k in range(30):
        net.nodes[k % 7 if k % 7 not in (2, 4) else 0].submit(b"trade-%d" % k)
        for _ in range(4):
            now += 300
            net.tick(now)
    live = net.nodes[0]
    assert live.schedule.excluded, "the dead validators were charged"
    restarted = Replica(
        live.cfg,
        HashSigner(0),
        net.verifier,
        net.disks[0],
        executed_root=live.executed_root,
        results_root=live.executed_results,
    )
    assert restarted.schedule.candidates == live.schedule.candidates
    assert [restarted.leader(v) for v in range(60)] == [live.leader(v) for v in range(60)]


def test_ten_validators_down_together_cost_one_timeout_then_none() -> None:
    """26/16 with the 10 leaders of views 0-9 of the old round-robin down: the first commit
    comes after one view timeout, and once each dead validator has failed once, blocks
    follow without timeouts."""
    net = Net(n=26, q=16)
    net.down = set(range(10))
    now, heights = 0, []
    for k in range(40):
        net.nodes[10 + k % 16].submit(b"trade-%d" % k)
        net.run()
        for _ in range(4):
            now += VIEW_TIMEOUT_BASE_MS // 4
            net.tick(now)
        heights.append(net.disks[12].committed_height())
    assert heights[0] >= 1  # within one base timeout
    # Later trades commit without a timeout each: at least one block per trade in the second
    # half, where a timeout per dead leader would have cost a second per rotation.
    assert heights[-1] - heights[19] >= 20
    assert net.nodes[12].schedule.excluded <= set(range(10))


def test_stride_is_the_coprime_step_nearest_half_the_candidates() -> None:
    """As far from 1 as possible: among the steps coprime to m, the nearest to m/2 (the
    lower of two equally near), so adjacent validators lead views far apart."""
    for m in range(1, VALIDATORS_MAX + 1):
        coprime = [s for s in range(1, m) if gcd(s, m) == 1]
        nearest = min(coprime, key=lambda s: (abs(2 * s - m), s), default=1)
        assert stride(m) == nearest, m


@pytest.mark.parametrize(
    ("n", "excluded_max", "base", "top"),
    [
        (0, 0, 1, 1),
        (4, -1, 1, 1),
        (4, 4, 1, 1),
        (4, 5, 1, 1),
        (4, 1, 0, 1),
        (4, 1, -1, 1),
        (4, 1, 3, 2),
    ],
)
def test_a_schedule_refuses_impossible_sizes_and_penalties(
    n: int, excluded_max: int, base: int, top: int
) -> None:
    with pytest.raises(ValueError):
        LeaderSchedule(n, excluded_max, penalty_base=base, penalty_max=top)


def test_a_schedule_takes_the_smallest_sizes_and_equal_penalties() -> None:
    assert LeaderSchedule(1, 0, penalty_base=1, penalty_max=1).leader(7) == 0
    assert LeaderSchedule(4, 3, penalty_base=5, penalty_max=5).candidates == (0, 1, 2, 3)


def test_validator_0_leading_a_committed_block_is_trusted_again() -> None:
    sched = LeaderSchedule(4, 1, penalty_base=8, penalty_max=8)
    view = next(v for v in range(1, 9) if sched.leader(v) == 0)
    _commit_views(sched, list(range(view)))
    _commit(sched, view + 1, sched.leader(view + 1))  # 0's view failed
    assert sched.excluded == {0}
    _commit(sched, view + 2, 0)
    _commit(sched, view + 3, sched.leader(view + 3))  # 0's block was certified in its view
    assert sched.excluded == frozenset()


def test_a_proposer_outside_the_validator_set_credits_nobody() -> None:
    sched = LeaderSchedule(4, 1, penalty_base=8, penalty_max=8)
    view = next(v for v in range(1, 9) if sched.leader(v) == 3)
    _commit_views(sched, list(range(view)))
    _commit(sched, view + 1, sched.leader(view + 1))  # 3's view failed
    assert sched.excluded == {3}
    for k, proposer in enumerate([-1, 4, 5, -4]):
        _commit(sched, view + 2 + k, proposer)
        assert sched.excluded == {3}, proposer  # -1 is not validator 3, nor -4 validator 0


@pytest.mark.parametrize("views", [[0, 2], [1, 2, 4]])
def test_a_gap_is_charged_to_the_last_candidate_too(views: list[int]) -> None:
    """With one candidate left, the views it failed to lead still count against it: the
    same block credits it for its parent's view and charges it for the later ones, and
    the charge, the later outcome, stands (at an odd and an even height)."""
    sched = LeaderSchedule(2, 1, penalty_base=8, penalty_max=8)
    _commit_views(sched, views)  # the odd view before the last, validator 1's, failed
    assert sched.candidates == (0,)
    last = views[-1]
    _commit(sched, last + 3, 1)  # the two views before, led by 0, failed; 1 proposed again
    assert sched.excluded == {0}


def test_a_long_re_proposal_charges_every_view_after_the_excused_one() -> None:
    """Far into a chain (views in the hundreds): block B, first proposed in view 300, is
    certified only in view 306. Its proposer and the leaders of views 302 to 305 are
    charged, the leader of view 301 is excused, the one of 306 credited."""
    sched = LeaderSchedule(26, 10)
    _commit_views(sched, [298, 299, 300])
    leaders = {v: sched.leader(v) for v in range(300, 308)}
    sched.committed(307, leaders[307], parent_view=306)
    charged = {leaders[v] for v in (300, 302, 303, 304, 305)}
    assert len(charged) == 5 and sched.excluded == charged
    assert leaders[301] not in sched.excluded and leaders[306] not in sched.excluded


@pytest.mark.parametrize("proposer", [-1, 4, 5])
def test_a_re_proposed_block_of_a_proposer_outside_the_set_charges_nobody(proposer: int) -> None:
    """A header naming no validator as its proposer (beyond the safety bound): when its
    block is certified late, no validator is charged for it (-1 is not validator 3, and 4
    or 5 do not crash the schedule)."""
    sched = LeaderSchedule(4, 1, penalty_base=8, penalty_max=8)
    _commit_views(sched, [0, 1, 2, 3, 4])
    _commit(sched, 5, proposer)
    assert sched.leader(6) != 3  # the view certifying it; -1 read as an index is 3
    sched.committed(7, sched.leader(7), parent_view=6)  # certified in view 6
    assert sched.excluded == frozenset()


def test_the_parent_view_is_passed_by_keyword_only() -> None:
    """Three views side by side: by position they would be easy to swap."""
    sched = LeaderSchedule(4, 1)
    with pytest.raises(TypeError):
        sched.committed(1, 0, 0)  # type: ignore[misc]
    with pytest.raises(TypeError):
        sched.changes_at(1, 0, 0)  # type: ignore[misc]


def test_the_penalties_are_passed_by_keyword_only() -> None:
    """Two ints of the same kind side by side: by position they would be easy to swap."""
    with pytest.raises(TypeError):
        LeaderSchedule(4, 1, 8, 16)  # type: ignore[misc]
    assert LeaderSchedule(n=4, excluded_max=1, penalty_base=8).candidates == (0, 1, 2, 3)


def test_fewer_failing_than_the_bound_are_all_excluded() -> None:
    sched = LeaderSchedule(7, 3)
    _commit_views(sched, [0, 1])
    failed = {sched.leader(2), sched.leader(3)}
    _commit_views(sched, [4])  # views 2 and 3 failed: two validators, bound three
    assert sched.excluded == failed


def test_a_validator_trusted_again_starts_its_penalties_from_the_base() -> None:
    sched = LeaderSchedule(4, 1, penalty_base=2, penalty_max=64)
    _commit_views(sched, [0, 1])
    _commit_views(sched, [3])  # view 2 (validator 2) failed
    _commit(sched, 4, 2)  # it leads a committed block: trusted again
    _commit_views(sched, list(range(5, 10)))
    view = next(v for v in range(10, 20) if sched.leader(v) == 2)
    _commit_views(sched, list(range(10, view)))
    _commit_views(sched, [view + 1])  # it fails again: a first failure, base penalty
    assert sched.excluded == {2}
    _commit_views(sched, [view + 2])
    assert sched.excluded == {2}
    _commit_views(sched, [view + 3])  # two blocks since: over
    assert sched.excluded == frozenset()


def test_a_block_certified_after_a_view_change_charges_its_proposer_not_the_next_leader() -> None:
    """ADR 0022. Block B, first proposed in view 2, gets a prepare certificate and no
    commit certificate; view 3's leader has nothing to propose on and its view times out;
    view 4's leader re-proposes B, certified there, as B's child's header says. The
    proposer of view 2 is charged, the leader of view 3 is excused, the one of view 4 is
    credited. Certified only in view 5, the leader of view 4 is charged too."""
    for certified, charged_views in ((4, (2,)), (5, (2, 4))):
        sched = LeaderSchedule(7, 3)
        _commit_views(sched, [0, 1])
        leaders = {v: sched.leader(v) for v in range(8)}
        _commit(sched, 2, leaders[2])  # B
        sched.committed(certified + 1, leaders[certified + 1], parent_view=certified)
        assert sched.excluded == {leaders[v] for v in charged_views}, certified
        assert leaders[3] not in sched.excluded and leaders[certified] not in sched.excluded


def test_the_views_of_a_re_proposal_are_charged_to_the_leaders_they_ran_under() -> None:
    """The views between B's first proposal and its certificate ran before B committed,
    under the schedule B's commit then changed: they are charged to the leaders of that
    schedule, not of today's."""
    sched = LeaderSchedule(7, 4)
    _commit_views(sched, [0])
    ran_under = {v: sched.leader(v) for v in range(10)}
    _commit_views(sched, [2])  # B, in view 2; view 1 failed: its leader is left out now
    assert sched.excluded == {ran_under[1]}
    today = {v: sched.leader(v) for v in range(10)}
    charged = {ran_under[v] for v in (1, 2, 4, 5)}  # view 3 excused
    misread = {ran_under[1], ran_under[2], today[4], today[5]}
    assert misread != charged, "the test needs the schedule to have changed"
    sched.committed(7, today[7], parent_view=6)  # B was certified in view 6
    assert sched.excluded == charged


@pytest.mark.parametrize(("view", "parent_view"), [(5, 1), (5, 5), (5, 9), (2, 9)])
def test_a_parent_view_no_certificate_can_have_reads_as_on_time(
    view: int, parent_view: int
) -> None:
    """A certificate of B is of B's view or later, and its child is proposed after it;
    headers claiming otherwise (beyond the safety bound) read as a parent certified in its
    own view, so only the views between are charged, as before ADR 0022."""
    sched = LeaderSchedule(7, 3)
    _commit_views(sched, [0, 1, 2])
    expected = LeaderSchedule(7, 3)
    _commit_views(expected, [0, 1, 2, view])
    sched.committed(view, sched.leader(view), parent_view=parent_view)
    assert sched.excluded == expected.excluded


def test_the_leader_that_certifies_a_re_proposal_is_credited_after_a_view_it_failed() -> None:
    """Review r-pview (ADR 0022): outcomes are applied in the order of their views, so a
    leader charged for a view between a block's first proposal and its certificate, and
    credited for the view that certified it, ends with the success. At 4 validators
    (stride 1) block B, first proposed in view 2, is certified only in view 11: views 4
    to 10 are charged (3 is excused) and every validator led one of them; the leader of
    view 11 also led view 7. It stays a candidate, the other three are left out."""
    sched = LeaderSchedule(4, 3)
    _commit_views(sched, [0, 1, 2])
    c = 11
    crediting = sched.leader(c)
    assert crediting in {sched.leader(v) for v in range(4, c)}
    sched.committed(c + 1, sched.leader(c + 1), parent_view=c)
    assert sched.excluded == frozenset(range(4)) - {crediting}


def test_changes_at_is_what_committing_the_same_header_does() -> None:
    """Review r-pview (ADR 0022): the pipelining probe predicts a commit, re-proposals
    included, so it needs the candidates the last block's views ran under, not only
    today's. Random headers (parent views from the parent's own view to the block's):
    the probe says the candidates change exactly when committing the header changes them."""
    rng = random.Random(22)
    for _ in range(300):
        sched = LeaderSchedule(7, 2, penalty_base=2, penalty_max=8)
        view = 0
        for _ in range(12):
            last = sched.last_view
            view += rng.choice([1, 1, 2, 3, 5])
            parent_view = 0 if last is None else rng.choice([last, *range(last, view)])
            proposer = sched.leader(view)
            before = sched.candidates
            predicted = sched.changes_at(view, proposer, parent_view=parent_view)
            sched.committed(view, proposer, parent_view=parent_view)
            assert predicted == (sched.candidates != before), (view, parent_view)

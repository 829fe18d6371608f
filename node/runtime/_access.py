"""The client port's gate: verify each call's signed identity, refuse replays.

The rules of who may read what are pure (node/access.py); this module adds what needs a
clock and memory: a request is taken only when its timestamp is within
REQUEST_CLOCK_SKEW_MS of this node's clock, and only once (its participant and nonce are
remembered until the timestamp has left the window, in at most REQUEST_NONCES_MAX
entries, of which one participant holds at most REQUEST_NONCES_PER_PARTICIPANT_MAX, so
one participant's flood is refused to it alone). The verified caller of the call being
served is kept in a context variable, set by the one request parser
(node/runtime/_handlers.py) before the method runs, and read with
:func:`current_caller`; gRPC runs each call in its own task, so callers never mix.
"""

from __future__ import annotations

import contextvars
import heapq
from collections.abc import Callable, Iterable

from node.access import AccessError, Caller, parse_claim, verify_claim
from node.config import (
    REQUEST_CLOCK_SKEW_MS,
    REQUEST_NONCES_MAX,
    REQUEST_NONCES_PER_PARTICIPANT_MAX,
)
from node.settlement import Registry

__all__ = ["Gate", "GateFullError", "current_caller"]

_CALLER: contextvars.ContextVar[Caller] = contextvars.ContextVar("ledger_caller")


def current_caller() -> Caller:
    """The verified caller of the call being served (set before any method runs)."""
    return _CALLER.get()


class GateFullError(RuntimeError):
    """The node's (REQUEST_NONCES_MAX) or the caller's (REQUEST_NONCES_PER_PARTICIPANT_MAX)
    nonces inside the window are at their limit: refuse (RESOURCE_EXHAUSTED) rather than
    forget one and let its request be replayed. ``limit`` names the limit reached."""

    def __init__(self, limit: str, message: str) -> None:
        super().__init__(message)
        self.limit = limit


class Gate:
    def __init__(
        self,
        registry: Callable[[], Registry],
        clock_ms: Callable[[], int],
        node: str,
        *,
        skew_ms: int = REQUEST_CLOCK_SKEW_MS,
        nonces_max: int = REQUEST_NONCES_MAX,
        participant_nonces_max: int = REQUEST_NONCES_PER_PARTICIPANT_MAX,
    ) -> None:
        # The reference data at the node's head, read per call: a participant added by
        # governance is served and a rotated key refused without a restart (ADR 0016).
        self._registry, self._clock_ms = registry, clock_ms
        self._node = node  # this validator's genesis id: a call signed for another is refused
        self._skew_ms, self._nonces_max = skew_ms, nonces_max
        self._participant_nonces_max = participant_nonces_max
        self._seen: set[tuple[str, bytes]] = set()
        # nonces each participant holds in _seen; only verified callers with one or more
        # are keys, so at most min(nonces_max, participants) entries
        self._held: dict[str, int] = {}
        self._expiry: list[tuple[int, str, bytes]] = []  # heap: when each seen nonce may go
        # The latest clock reading nonces were forgotten at: a request timed before it, less
        # the skew, may be one of them. The wall clock can step back (an NTP correction):
        # a call forgotten at the later reading then passed the window again and was
        # taken twice (review 34t).
        self._forgotten_at_ms = 0

    def admit(
        self, method: str, request: bytes, metadata: Iterable[tuple[str, str | bytes]] | None
    ) -> Caller:
        """The caller this call proves, recorded so it cannot be replayed; AccessError
        (UNAUTHENTICATED) or GateFullError."""
        claim = parse_claim(metadata or ())
        now = self._clock_ms()
        if abs(claim.time_ms - now) > self._skew_ms:
            raise AccessError(
                f"request time {claim.time_ms} ms is {claim.time_ms - now:+d} ms from this "
                f"node's clock; the window is +-{self._skew_ms} ms: check the client's clock"
            )
        if claim.time_ms + self._skew_ms < self._forgotten_at_ms:
            raise AccessError(
                f"request time {claim.time_ms} ms is before what this node's replay memory "
                "still covers (its clock stepped back); sign a new call"
            )
        # before any memory: a call that does not verify takes no nonce
        caller = verify_claim(claim, self._registry(), self._node, method, request)
        self._forget(now)
        key = (claim.participant, claim.nonce)
        if key in self._seen:
            raise AccessError("replayed request: this nonce was used already; sign a new call")
        held = self._held.get(claim.participant, 0)
        if held >= self._participant_nonces_max:  # this caller's flood is refused to it alone
            raise GateFullError(
                "request nonces per participant",
                f"{held} recent requests of {claim.participant} remembered, its limit; retry later",
            )
        if len(self._seen) >= self._nonces_max:
            raise GateFullError(
                "request nonces", f"{self._nonces_max} recent requests remembered; retry later"
            )
        self._seen.add(key)
        self._held[claim.participant] = held + 1
        heapq.heappush(self._expiry, (claim.time_ms + self._skew_ms, *key))
        return caller

    def _forget(self, now: int) -> None:
        """Drop nonces whose timestamp left the window: a replay of them is refused by time."""
        self._forgotten_at_ms = max(self._forgotten_at_ms, now)
        while self._expiry and self._expiry[0][0] < now:
            _, participant, nonce = heapq.heappop(self._expiry)
            self._seen.remove((participant, nonce))
            left = self._held[participant] - 1
            if left:
                self._held[participant] = left
            else:
                del self._held[participant]

    def __len__(self) -> int:
        return len(self._seen)

    @staticmethod
    def enter(caller: Caller) -> None:
        """Make ``caller`` the current caller of this call's task."""
        _CALLER.set(caller)

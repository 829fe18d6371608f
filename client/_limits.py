"""Every limit and default of the SDK, in one place (house rule 3; units named last).

Each retry loop in the client is bounded by one of these, so a call either returns, or
raises a typed error within a known time; nothing retries forever.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

from node.config import (
    ADMINS_MAX,
    ATTESTATIONS_KEPT,
    BACKINGS_MAX,
    BLOCK_BYTES_MAX,
    BLOCK_TXS_MAX,
    ELIGIBLE_COLLATERAL_MAX,
    FREEZES_MAX,
    INSTRUMENTS_MAX,
    LOCK_DEFAULTERS_MAX,
    LOCKS_MAX,
    MERKLE_PATH_LEN_MAX,
    PARTICIPANTS_MAX,
    PENDING_MAX,
    PRICE_SOURCES_MAX,
    REPO_LAPSES_PER_BLOCK_MAX,
    REPO_LIST_MAX,
    SCHEDULE_PERIODS_MAX,
    TX_BYTES_MAX,
    VALIDATORS_MAX,
    WAIT_TIMEOUT_MAX_MS,
)
from node.config import TIMELINE_SPAN_MAX as _NODE_TIMELINE_SPAN_MAX
from node.settlement import Role

# --- transactions ------------------------------------------------------------------------
TTL_DEFAULT_S: Final = 600  # a built transaction expires this long after it is built
TTL_MAX_S: Final = 7 * 24 * 3600  # longer-lived signed offers are a liability if leaked
NONCE_BITS: Final = 63  # random nonces: a collision needs ~3e9 txs with equal terms
# A transaction or trade file (JSON) is read only up to this many characters, before it is
# parsed (review 35d): one that the SDK writes, readable terms and all, is at most ~7x its
# TX_BYTES_MAX envelope (31 KB for compliance tables of 256 rows of one-letter ids), while
# a hostile counterparty's 256 MB file of empty lists parsed to gigabytes of objects.
TRADE_JSON_CHARS_MAX: Final = 16 * TX_BYTES_MAX
# A buyer refuses an offer whose expiry or settlement deadline is further away than
# TTL_MAX_S, by more than this slack for the two parties' clocks (review 35d): the ledger
# bounds neither, so a co-signed trade expiring in years was a free option for whoever
# held the file (the seller could settle it whenever the price suited).
OFFER_CLOCK_SLACK_S: Final = 300

# --- connections -------------------------------------------------------------------------
ENDPOINTS_MAX: Final = VALIDATORS_MAX  # one client talks to at most every validator
# One unary call at one node (not the finality wait): a node that has not answered by then
# is left for the next one. A healthy node answers in milliseconds.
RPC_TIMEOUT_DEFAULT_S: Final = 2.0
BULK_RPC_TIMEOUT_S: Final = 10.0  # one GetTimeline answer (up to TIMELINE_SPAN_MAX heights)
# A GetBlock or StreamBlocks reply carries a whole block (gRPC's default cap is 4 MiB).
# The channel's cap, for every method: gRPC holds an answer up to this size before the SDK
# sees it. What the SDK then does with it is bounded by ANSWER_ENTRIES_MAX below; the two
# answers that outgrow it at the node's limits are read in pages (below). The largest
# answer read whole is a party-filtered full block whose every transaction names the
# reader: 6.1 MB at the node's limits (BLOCK_TXS_MAX transactions filling
# BLOCK_BYTES_MAX, each with two Merkle paths; tests/unit/test_filtered_block_size.py
# builds it from a real node's answer). Before session 33 the cap was 5 MiB and each
# receipt of a filtered block repeated the block's header and certificate (up to 148 MB):
# such a reader could not read such a block at all.
RECEIVE_MESSAGE_BYTES_MAX: Final = BLOCK_BYTES_MAX + 3 * 1024 * 1024

TIMELINE_SPAN_MAX: Final = _NODE_TIMELINE_SPAN_MAX  # heights per GetTimeline call (node cap)

# --- paged answers (GetReference, GetAttestations; docs/sdk.md "Paged answers") -----------
# At the node's limits these answers outgrew the cap above (reference data 5.13 MB then,
# attestations 36 MB; review 32): every node's answer was refused RESOURCE_EXHAUSTED by
# this client's own channel. They are read in pages of at most ANSWER_PAGE_BYTES (3 MiB
# under the cap), all from one node, and merged into the one answer the call returns. An
# honest node fills each page but the last to within one entry (at most ~36 KB, one
# instrument's attestations), so the largest answer takes 9 pages; a node sending more
# than ANSWER_PAGES_MAX, or more entries in all than the bound of one answer
# (ANSWER_ENTRIES_MAX), is a bad response. A read whose data changed between its pages
# (ABORTED, PAGE_STALE: governance, an attestation, a mint or burn) starts again from
# the first page, at most PAGE_RESTARTS_MAX times, then goes to the next node.
ANSWER_PAGE_BYTES: Final = BLOCK_BYTES_MAX
ANSWER_PAGES_MAX: Final = 16
PAGE_RESTARTS_MAX: Final = 3

# --- replay (holders at a past height) ------------------------------------------------------
# ``holders_at`` replays blocks 1..H on the client: each is one block read and one
# apply_block, so H is bounded (a ledger at 20 blocks/s passes this in ~1.4 hours), and a
# long replay reports its progress every REPLAY_PROGRESS_BLOCKS blocks.
REPLAY_BLOCKS_MAX: Final = 100_000
REPLAY_PROGRESS_BLOCKS: Final = 1_000

# --- block streams (blocks(), events(), holders_at) ------------------------------------------
# A block stream that brings nothing for BLOCK_STREAM_CHECK_S asks every endpoint's status:
# when more than f of them (an honest one among them) report the chain
# BLOCK_STREAM_BEHIND_BLOCKS or more past the block the stream owes, its node withholds it
# and is left for the next (review 32). An idle chain, or f liars claiming heights, keep
# it. The margin: an honest node sends a block once its successor commits, so a chain one
# block past it may have just got there.
BLOCK_STREAM_CHECK_S: Final = 5.0
BLOCK_STREAM_BEHIND_BLOCKS: Final = 2

# --- failover and retries -----------------------------------------------------------------
FAILOVER_ROUNDS_MAX: Final = 2  # each endpoint is tried at most this often per call
FAILOVER_ROUND_BACKOFF_S: Final = 0.25  # pause between two rounds over all endpoints
BUSY_RETRIES_MAX: Final = 6  # RESOURCE_EXHAUSTED retries (each on the next node) before BusyError
BUSY_BACKOFF_BASE_S: Final = 0.05  # first pause after RESOURCE_EXHAUSTED; doubles
BUSY_BACKOFF_MAX_S: Final = 2.0  # cap of that backoff

# Admission control (RESOURCE_EXHAUSTED with a retry-after hint, docs/sdk.md "Overload"): a
# submission waits the node's hint, capped, times a random factor in [1, 1 + jitter] so the
# clients it refused do not all come back at once, and retries while that fits in its
# deadline, at most this many times; then OverloadedError.
OVERLOAD_RETRIES_MAX: Final = 3
OVERLOAD_WAIT_MAX_S: Final = 5.0
OVERLOAD_JITTER: Final = 0.5

# A refusal's structured details (ADR 0020) as a node sent them: a stream event's are bounded
# only by the message size, so details beyond these (no honest refusal comes near: its
# metadata is a few names, ids and numbers) are treated as none (docs/sdk.md).
DETAILS_METADATA_MAX: Final = 32  # entries of ErrorInfo.metadata
DETAILS_TEXT_CHARS_MAX: Final = 1_024  # the reason, and each metadata key and value

# --- answers, before they are parsed (review 32; client/_answers.py, docs/sdk.md) -----------
# Protobuf builds one object per entry of a repeated field: a 5 MiB answer of 2.6 million
# empty entries parsed to ~400 MB, and the SDK's dataclasses built from them to as much
# again and ~10 s of CPU (GetPending, GetLocks: +780 MB each), so one lying validator
# spiked a bank's client by hundreds of MB per call. Every answer's bytes are therefore
# walked first (without building anything): a repeated field with more entries than an
# honest node can send, here, per field and per message it is in, refuses the answer as
# BadResponseError (the next node is asked) before protobuf parses it. Each bound is the
# node's own limit, so they move together; the walk also refuses a message with more
# fields than its known ones, its repeated fields' entries and ANSWER_UNKNOWN_FIELDS_MAX,
# so the walk itself costs at most what an honest maximal answer costs.
ANSWER_ENTRIES_MAX: Final[Mapping[str, int]] = MappingProxyType(
    {
        "Receipt.tx_path": MERKLE_PATH_LEN_MAX,
        "ResultProof.path": MERKLE_PATH_LEN_MAX,
        "EventProof.path": MERKLE_PATH_LEN_MAX,
        "MerklePath.hashes": MERKLE_PATH_LEN_MAX,
        "Balances.balances": INSTRUMENTS_MAX,  # an account's balances: one per instrument
        "BlockInfo.results": BLOCK_TXS_MAX,
        # At most one event per pending instruction and one per repo lapsed, a block
        # (review 32: the lapses' events came after this bound; a block with more than
        # PENDING_MAX events was refused from every node).
        "BlockInfo.events": PENDING_MAX + REPO_LAPSES_PER_BLOCK_MAX,
        "BlockInfo.receipts": BLOCK_TXS_MAX,  # a filtered block's: at most its transactions
        "BlockInfo.result_paths": BLOCK_TXS_MAX,  # one per result
        "InstrumentState.holders": PARTICIPANTS_MAX,
        "InstrumentState.paid": SCHEDULE_PERIODS_MAX,
        "PendingBook.instructions": PENDING_MAX,
        "NodeStatus.peers": VALIDATORS_MAX,
        "Timeline.blocks": _NODE_TIMELINE_SPAN_MAX,
        # An honest refusal's metadata is a few names (node/wire/errors.py); the SDK reads
        # none beyond DETAILS_METADATA_MAX (above), so a stream event with more is refused.
        "SubmitStreamError.metadata": DETAILS_METADATA_MAX,
        "FreezeList.freezes": FREEZES_MAX,
        "AttestationList.instruments": BACKINGS_MAX,
        "BackedInstrument.attestations": ATTESTATIONS_KEPT,
        "Reference.participants": PARTICIPANTS_MAX,
        "ReferenceParticipant.roles": len(Role),
        "Reference.instruments": INSTRUMENTS_MAX,
        "Reference.admins": ADMINS_MAX,
        "LockList.locks": LOCKS_MAX,
        "LockInfo.defaulted": LOCK_DEFAULTERS_MAX,
        "RepoList.repos": REPO_LIST_MAX,
        "PriceList.instruments": ELIGIBLE_COLLATERAL_MAX,
        "InstrumentPrices.prices": PRICE_SOURCES_MAX,
    }
)
# Fields one message of an answer may carry beyond those it declares (a newer node's
# additions: protobuf keeps them as bytes, which costs no more than their size).
ANSWER_UNKNOWN_FIELDS_MAX: Final = 16

# --- finality ------------------------------------------------------------------------------
SUBMIT_TIMEOUT_DEFAULT_S: Final = 30.0  # waiting for a receipt after submitting
# A finality wait whose node has said nothing for SILENCE_CHECK_S asks it for its status
# (one probe per node at a time, and none while it answered within SILENCE_FRESH_S); no
# answer within SILENCE_PROBE_TIMEOUT_S and the wait moves on, resubmitting the same bytes
# to the next node (idempotent by tx id). A paused, partitioned or stuck node is left:
SILENCE_CHECK_S: Final = 1.0
SILENCE_FRESH_S: Final = 0.5
SILENCE_PROBE_TIMEOUT_S: Final = 0.5
# ... within this long of its last answer, whether the client was sending (Submit's
# per-attempt deadline) or waiting (a check, at most SILENCE_FRESH_S of trust, a probe).
SILENT_NODE_FAILOVER_S: Final = max(
    RPC_TIMEOUT_DEFAULT_S, SILENCE_CHECK_S + SILENCE_FRESH_S + SILENCE_PROBE_TIMEOUT_S
)
# A submit stream that breaks reopens on the next endpoint and resends what is in flight;
# this many reopens in a row without an answer and its open submissions fail.
STREAM_REOPENS_MAX: Final = 2 * FAILOVER_ROUNDS_MAX
WAIT_TIMEOUT_MAX_S: Final = WAIT_TIMEOUT_MAX_MS / 1000  # the node caps one wait at this
# A node's "not final in time" that comes more than this before the wait's deadline is not
# believed (an honest node waits what it is asked, and no wait asks past its cap).
FINALITY_EARLY_TOLERANCE_S: Final = 0.5
# A restarted node is usable again soon: gRPC's default reconnect backoff grows to 120 s.
RECONNECT_BACKOFF_INITIAL_MS: Final = 200
RECONNECT_BACKOFF_MAX_MS: Final = 5_000

# --- the browser console (issue 17, client/console/) --------------------------------------
# Every queue of the console server is bounded, so a slow browser or a long-running
# console costs a fixed amount of memory whatever the cluster does.
CONSOLE_SSE_SUBSCRIBERS_MAX: Final = 16  # open live streams (browser tabs); more get 503
CONSOLE_SSE_QUEUE_MAX: Final = 256  # events buffered per stream; a stream that falls this far
# behind is closed (the browser's EventSource reconnects and reloads the page's data)
# A live stream whose write has not finished after this long is cut (its connection aborted):
# a client that reads nothing (a hostile one, a tab whose machine sleeps) otherwise held
# its connection, its handler and its backlog for ever, even after the hub dropped it
# for lagging, so such connections added up without bound (review 31). A browser's
# EventSource reconnects and reloads.
CONSOLE_SSE_WRITE_TIMEOUT_S: Final = 30.0
CONSOLE_BLOCKS_KEPT: Final = 300  # recent blocks the console shows (and reads at start)
CONSOLE_TRADES_KEPT: Final = 5_000  # recent transactions indexed for the trade page
CONSOLE_REFUSALS_KEPT: Final = 500  # recent refused or failed transactions listed
CONSOLE_SERIES_POINTS: Final = 120  # points per chart (finality per block, trades/s)
CONSOLE_FAIL_BUCKET_MS: Final = 10_000  # block time per bar of the fails-over-time chart
CONSOLE_STATUS_POLL_S: Final = 1.0  # how often every validator's status is asked
CONSOLE_TIMELINE_SPAN_MAX: Final = 200  # heights of timelines fetched per poll (finality)
CONSOLE_PARTICIPANTS_MAX: Final = 256  # balances read per Positions page

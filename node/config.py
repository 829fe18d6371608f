"""Every limit of the system, in one place (house rule 3).

Units are named last (``_ms``, ``_bytes``, ``_max``). A limit that is hit is an operating
condition with a result code or a typed error, never a crash and never silent loss.
"""

from __future__ import annotations

from typing import Final

# --- numbers -------------------------------------------------------------------------
U64_MAX: Final = 2**64 - 1

# --- settlement: transactions ----------------------------------------------------------
TX_BYTES_MAX: Final = 4096  # one encoded signed transaction
ID_BYTES_MAX: Final = 64  # participant, instrument and currency ids (UTF-8 bytes)
# Governance admins (docs/adr/0016-reference-data-in-state.md): a governance transaction
# carries up to ADMINS_MAX admin signatures, so the envelope allows that many (a DvP
# needs two; the AML co-signature of a large DvP a third). Kept at 3: a peer's forwarded
# transaction is charged SIGNERS_PER_TX_MAX verifications (node/core/dissemination.py),
# so each one more signer allowed cuts forwarding under PEER_VERIFY_PER_S.
ADMINS_MAX: Final = 3
SIGNERS_PER_TX_MAX: Final = ADMINS_MAX
CHAIN_ID_BYTES_MAX: Final = 128

# --- settlement: state records (docs/adr/0013-state-records.md) ------------------------
RECORD_KEY_BYTES_MAX: Final = 256  # a kind byte and fixed-width fields; LMDB's key limit is 511
RECORD_VALUE_BYTES_MAX: Final = 64 * 1024  # one record's canonical value

# --- settlement: genesis ---------------------------------------------------------------
PARTICIPANTS_MAX: Final = 10_000
INSTRUMENTS_MAX: Final = 10_000
GENESIS_HOLDINGS_MAX: Final = 1_000_000

# --- settlement: bond lifecycle (docs/ledger.md "Lifecycle") -----------------------------
# Payment periods of one bond or fund: 100 years of monthly dates. It bounds the schedule
# genesis computes, the coupon-paid records of one instrument (one per period), and the
# point reads a redemption makes to check that every earlier coupon was paid.
SCHEDULE_PERIODS_MAX: Final = 1_200
# Redemption records of one bond are at most PARTICIPANTS_MAX (one per holder); a
# CouponPay, Distribute or RedeemAll reads at most PARTICIPANTS_MAX balances and writes at
# most 2 x PARTICIPANTS_MAX: its cost is bounded by genesis, whatever the state.

# --- blocks ------------------------------------------------------------------------------
BLOCK_TXS_MAX: Final = 2_000
BLOCK_BYTES_MAX: Final = 4 * 1024 * 1024  # the transactions of one block
# One encoded block: its transactions plus headroom for the header and length prefixes
# (2,000 x 4 bytes); what decode_block accepts and encode_block writes.
BLOCK_WIRE_BYTES_MAX: Final = BLOCK_BYTES_MAX + 64 * 1024
# A signature field in a certificate or a consensus message (Ed25519's are 64 bytes; the
# wire allows more so a verifier, not the decoder, judges a signature's form).
SIGNATURE_BYTES_MAX: Final = 128
MERKLE_PATH_LEN_MAX: Final = 64  # an audit path of a tree of 2**64 leaves; longer is hostile

# --- settlement: pending settlement (pend; node/settlement/_pending.py) ---------------
# Instructions waiting for their legs. Every block re-attempts each one (up to 4 balance
# reads), so this bounds the work recycling adds to a block; a pending DvP that would
# exceed it is refused PENDING_FULL and moves nothing.
PENDING_MAX: Final = 1_000
# Instructions naming one participant (as seller or buyer): one participant (or a pair
# colluding) cannot fill the book and refuse everybody else's pending trades.
PENDING_PER_PARTY_MAX: Final = 100
# Age bound: an instruction waits at most this long after the block that recorded it,
# whatever its own deadline says; then it fails FAILED_DEADLINE like one past its deadline.
PENDING_AGE_MAX_MS: Final = 7 * 24 * 3600 * 1000
# (BLOCK_RESULTS_MAX, the results a block can carry, is after the repo bounds below.)

# --- settlement: freezes (freeze; node/settlement/_freeze.py) ---------------------------
# Frozen targets (accounts and holdings) at once. Each is one small record; the bound
# keeps `ledger freezes` (a full scan) and the state bounded; a Freeze beyond it is
# refused FREEZES_FULL and changes nothing.
FREEZES_MAX: Final = 1_000

# --- settlement: locks (lock; node/settlement/_lock.py) ----------------------------------
# Locks one participant holds at once (as the pledging holder). Each is one record plus a
# locked total per holding; the bound keeps the state, and a holder's `ledger lock list`
# (a scan of every lock: at most PARTICIPANTS_MAX x this), bounded. A Lock beyond it is
# refused LOCKS_FULL and changes nothing.
LOCKS_PER_HOLDER_MAX: Final = 100
# Locks on the whole ledger: what bounds GetLocks (a scan) and the records a block may
# find; a Lock beyond it is refused LOCKS_FULL too.
LOCKS_MAX: Final = 10_000
# The id of a secured obligation a lock names: a pending DvP's 32-byte trade id, or a
# repo's id (at most ID_BYTES_MAX ASCII bytes; tests/unit/test_lock_repo.py checks it fits).
SECURED_REF_BYTES_MAX: Final = 64
# Parties recorded as defaulting on one secured obligation: a DvP has two, a repo one.
LOCK_DEFAULTERS_MAX: Final = 2

# --- settlement: custody and reserves (reserve; node/settlement/_reserve.py) -------------
# Attestations kept per instrument (the latest and the ones before it, for the report's
# history); recording one more deletes the oldest, so the state never grows with time.
ATTESTATIONS_KEPT: Final = 16
# Bills in one reserve attestation: each is 21 bytes of the body, so the largest
# attestation (about 2.2 kB) stays well inside TX_BYTES_MAX.
RESERVE_BILLS_MAX: Final = 100
# Backed instruments a genesis may list (custody-backed bonds, reserve-backed cash tokens).
BACKINGS_MAX: Final = 1_000
# Genesis rules: the longest horizons a rule may name (a bill's days to maturity, the age
# after which the report flags an attestation), in days.
RESERVE_RULE_DAYS_MAX: Final = 3_660
# --- settlement: KYC tiers and AML (kyc) -------------------------------------------------
# KYC tier rules and the AML co-sign threshold (node/settlement/_compliance.py).
# Rows of each table (minimum tiers, tier limits, thresholds), so the rules record and
# the genesis section stay small and one transaction's checks read a bounded table.
COMPLIANCE_RULES_MAX: Final = 256
# The rolling day of the daily limits: this many whole hours of block time, the current
# hour included; an account's volume record keeps at most this many hourly buckets.
KYC_WINDOW_HOURS: Final = 24
KYC_BUCKET_MS: Final = 3_600_000
# Velocity alerts (node/runtime/_velocity.py; not consensus rules): per account, over a
# sliding window of block time, more settled moves than VELOCITY_TXS_MAX, or more than
# VELOCITY_VALUE_MAX_MINOR of one cash token ($50,000 in cents), log an alert. At most
# VELOCITY_EVENTS_MAX moves are kept per account (memory bound; sums are then lower bounds).
VELOCITY_WINDOW_MS: Final = 60_000
VELOCITY_TXS_MAX: Final = 600
VELOCITY_VALUE_MAX_MINOR: Final = 5_000_000
VELOCITY_EVENTS_MAX: Final = 2_000

# --- settlement: repo (repo; node/settlement/_repo.py, docs/ledger.md "Repo") ----------
# Open (and closing) repos naming one participant, and on the whole ledger. A repo record
# is kept for good once closed (like the transaction index); these bound the live ones,
# so one party cannot fill the book for everyone; a RepoOpen beyond either is REPOS_FULL.
REPO_OPEN_PER_PARTY_MAX: Final = 100
REPO_OPEN_MAX: Final = 10_000
# Repos one block lapses at most (an OPEN repo past its default deadline ends DEFAULTED
# at the end of the block, _repo.lapse): the rest lapse in the next blocks, in (deadline,
# id) order. Each lapse judges the defaulter and reads the collateral's coupons (up to
# SCHEDULE_PERIODS_MAX dates), about 0.1 ms; REPO_OPEN_MAX repos sharing one deadline took
# a second in one block (review 31), more than a full block of transactions and past the
# first view timeout. As PENDING_MAX bounds recycling; a backlog of REPO_OPEN_MAX clears
# in REPO_OPEN_MAX / this = 10 blocks.
REPO_LAPSES_PER_BLOCK_MAX: Final = 1_000
# Results a block can carry: one per transaction, one event per pending instruction
# resolved or partly settled at its end (at most one per instruction per block), and one
# event per repo lapsed at its end (review 32). The store refuses to write more.
BLOCK_RESULTS_MAX: Final = BLOCK_TXS_MAX + PENDING_MAX + REPO_LAPSES_PER_BLOCK_MAX
# Repos one read (GetRepos, `ledger repo list`) returns at most; the newest-first page.
REPO_LIST_MAX: Final = 1_000
# --- settlement: prices and margin (margin; node/settlement/_price.py, _margin.py) ---
# Price sources genesis may name, and eligible collateral instruments (haircut rows): a
# price read scans at most PRICE_SOURCES_MAX records, one per source.
PRICE_SOURCES_MAX: Final = 16
ELIGIBLE_COLLATERAL_MAX: Final = 256
# A price is cash minor units per this many units of the instrument: a bond unit is $0.01
# of face, so per unit in cents could not say 99.5; per 1,000,000 units ($10,000 face) it
# resolves one part in a million (the pilot reports valuation deviations under 0.1%).
PRICE_UNITS: Final = 1_000_000
# The longest "max price age" a genesis may set: a price older than its genesis age is
# never used, and no genesis may accept one older than a week.
PRICE_AGE_LIMIT_MS: Final = 7 * 24 * 3_600_000
# Haircuts are basis points below 100%: a 100% haircut would value any quantity at zero.
HAIRCUT_BP_MAX: Final = 9_999

# --- storage (LMDB) ----------------------------------------------------------------------
LMDB_MAP_SIZE_INITIAL_BYTES: Final = 64 * 1024 * 1024
LMDB_MAP_SIZE_MAX_BYTES: Final = 64 * 1024 * 1024 * 1024
LMDB_MAP_SIZE_MIN_BYTES: Final = 64 * 1024  # lowest ceiling a node config may set (tests)
LMDB_MAP_GROW_FACTOR: Final = 2
LMDB_MAX_DBS: Final = 16
LMDB_MAX_READERS: Final = 126

# --- consensus ---------------------------------------------------------------------------
# (owned by node/core; see docs/consensus.md)
VIEW_TIMEOUT_BASE_MS: Final = 1_000  # first view timeout; doubles per view without commit
VIEW_TIMEOUT_MAX_MS: Final = 30_000  # cap of the exponential backoff
# The progress deadline (node/core/pacemaker.py, docs/consensus.md "Slow leaders"): a view
# with work from its start times out this many times the median recent view (from entering
# a view to entering the next on a certificate) after its entry, never sooner than the
# floor, never later than VIEW_TIMEOUT_BASE_MS.
VIEW_PROGRESS_FACTOR: Final = 6  # a node config may change it (``view_progress_factor``)
VIEW_PROGRESS_FACTOR_MAX: Final = 100  # the highest a node config may set (0: none)
VIEW_PROGRESS_FLOOR_MS: Final = 100
VIEW_PROGRESS_SAMPLES: Final = 32  # the median is taken over this many recent views
# Views measured in a row, with no view timed out, before the deadline applies (at a start,
# and again after every view change): more than half the samples, so the median is of
# views since the last disruption (a backlog after a view change makes the next longer).
VIEW_PROGRESS_CALM: Final = VIEW_PROGRESS_SAMPLES // 2 + 1
# The commit-vote relay (docs/consensus.md "Slow leaders"): only a view's leader collects
# its COMMIT votes, and the next leader's proposal waits for the certificate it forms. A
# replica that entered the next view on the prepare certificate and has no commit
# certificate this many times its median commit round (from that entry to the commit)
# later, never sooner than the floor, sends its COMMIT vote to the new view's leader too,
# which forms the certificate itself. The same samples make up the median.
COMMIT_RELAY_FACTOR: Final = 4  # a node config may change it (``commit_relay_factor``)
COMMIT_RELAY_FACTOR_MAX: Final = 100  # the highest a node config may set (0: none)
COMMIT_RELAY_FLOOR_MS: Final = 20
BATCH_DELAY_MS: Final = 5  # under load, wait this long after a commit to fill the next block
# Outcomes of certified, uncommitted blocks kept for their commit (ADR 0012): one lock at a
# time, a few more if views change while its height is open.
SPECULATIVE_OUTCOMES_MAX: Final = 4
# Whether a validator pipelines (ADR 0012): executes a certified block speculatively, so as
# leader it may propose the next height on the prepare certificate. Per node, not per chain:
# a node without it votes on pipelined proposals all the same, once it has committed the
# parent. A node config may change it (``pipeline``).
PIPELINE_DEFAULT: Final = False
MEMPOOL_TXS_MAX: Final = 20_000
MEMPOOL_BYTES_MAX: Final = 64 * 1024 * 1024
MEMPOOL_COMMITTED_IDS_MAX: Final = 100_000  # recently committed tx ids kept to drop replays
TX_FORWARD_BATCH_MAX: Final = 1_000  # txs per forward message (gossip to validators)
FORWARD_LEADERS: Final = 3  # a client's transaction goes to the leaders of this many views
CATCHUP_BATCH_BLOCKS_MAX: Final = 16  # committed blocks per catch-up response
CATCHUP_RESPONSE_BYTES_MAX: Final = BLOCK_BYTES_MAX  # blocks per response stop here (>= 1)
CATCHUP_RETRY_MS: Final = 500  # resend an unanswered catch-up request after this long
TIMEOUT_VIEWS_TRACKED_MAX: Final = 8  # views for which timeout messages are collected
CONSENSUS_MESSAGE_BYTES_MAX: Final = BLOCK_BYTES_MAX + 1024 * 1024
# One slot of the safety-state file (docs/adr/0010): the lock holds one block that fitted
# a consensus message, plus its certificate and the views; a larger state is fatal.
SAFETY_STATE_BYTES_MAX: Final = CONSENSUS_MESSAGE_BYTES_MAX + 1024 * 1024
TRANSCRIPT_LINES_MAX: Final = 20_000  # lines an engine transcript keeps (debugging aid)
BLOCK_TIME_DRIFT_MAX_MS: Final = 5_000  # refuse to vote for a fresh block timed this far from us
# A validator that failed to lead sits out this many committed blocks, doubling with each
# failure since it last led a committed block (node/core/leader.py).
LEADER_PENALTY_BASE_BLOCKS: Final = 256
LEADER_PENALTY_MAX_BLOCKS: Final = 16_384
# Work one peer can cause (token buckets in node/core/budget.py): signature verifications
# (a certificate counts its signatures, a forwarded transaction SIGNERS_PER_TX_MAX) and bytes
# of catch-up.
PEER_VERIFY_PER_S: Final = 2_000
PEER_VERIFY_BURST: Final = 4_000
# A forwarded transaction already committed costs a storage lookup (a decode and an LMDB
# read, about a fifth of a signature check): every this many are charged one verification,
# so a peer replaying settled transactions is cut off too (session 14's review).
COMMITTED_LOOKUPS_PER_VERIFY: Final = 4
# A peer's forwarded transactions are checked only while its bucket holds more than this;
# the rest is its consensus messages' (an honest peer's votes, timeouts, proposals and
# certificates need a few hundred signatures a second at most). Drawn to zero by forwards,
# a validator whose clients submitted more than it may forward (~666 a second) had its
# votes and proposals dropped too: with a peer withholding its votes, views failed and the
# schedule left it out (review 31f).
PEER_VERIFY_FORWARD_RESERVE: Final = PEER_VERIFY_BURST // 4
PEER_SYNC_BYTES_PER_S: Final = 8 * 1024 * 1024
PEER_SYNC_BYTES_BURST: Final = 2 * BLOCK_BYTES_MAX
# A block served (or a lookup that finds none) costs at least this much of that budget:
# reading, decoding and encoding a small block costs about what sending 64 KB does, and
# charging only its bytes let one peer's request flood hold 64 MiB of our memory queued.
CATCHUP_BLOCK_CHARGE_MIN_BYTES: Final = 64 * 1024
# Decoding a peer's messages (node/runtime/_transport.py asks Replica.admit before each
# one; docs/consensus.md "Work one peer can cause"). Decoding costs the event loop about
# 1.1 ms per MiB (measured, review 32a: a 4 MiB proposal 4.5 ms), but 100 times that for
# small items: an unsolicited catch-up answer of 16 blocks of 2,000 four-byte transactions
# (271 KiB) took 34 ms, a timeout certificate of 1,000 entries 2.4 ms for 409 KiB, 4,096
# junk votes in a frame ~18 us each. So a message is charged its bytes, at least the
# minimum, and once decoded each item the decoder built (a transaction, a timeout entry, a
# certificate signature): about a microsecond of the loop per KiB charged, whatever the
# shape. With no budget one validator streaming 4 MiB proposals it did not lead took 96%
# of a receiver's loop, an honest peer's votes waiting a median 206 ms (sync answers of
# tiny transactions: 1.3 s). A peer over its budget is not read until it has refilled
# (its stream waits: nothing is dropped), so it costs at most the rate, ~37 ms of the loop
# a second (4%), plus the burst once.
# Honest traffic stays inside, per peer: a full block's proposal is at most
# CONSENSUS_MESSAGE_BYTES_MAX + BLOCK_TXS_MAX KiB = 7 MiB, and a full block takes seconds
# to execute (2,000 trades at the 506 a second measured, docs/performance.md), so even
# leading every view a peer proposes under 1 full block a second: 7 MiB/s; a view timeout
# (at most about one a second: VIEW_TIMEOUT_BASE_MS, doubling) brings its timeout with the
# locked block (7 MiB) and its re-gossip (TX_FORWARD_BATCH_MAX of TX_BYTES_MAX, 5 MiB);
# forwards within its verification budget (666 a second) are 3.3 MiB/s; small messages at
# the highest block rate measured (69 a second, 4/3) are ~4 a view at the minimum plus
# certificates, ~7 MiB/s: 29 MiB/s all at once. A catch-up answer to our request is at most
# CONSENSUS_MESSAGE_BYTES_MAX + 32,000 items (16 blocks of BLOCK_TXS_MAX: 36 MiB), and the
# next is asked only once those blocks are executed (tens of seconds at that size): the
# burst holds one with a full proposal and a timeout beside it. A reconnecting peer's full
# send queue (PEER_SEND_QUEUE_MAX small messages: 64 MiB) may wait up to ~2 s, in order.
PEER_BYTES_PER_S: Final = 32 * 1024 * 1024
PEER_BYTES_BURST: Final = 64 * 1024 * 1024
PEER_MESSAGE_CHARGE_MIN_BYTES: Final = 16 * 1024
PEER_ITEM_CHARGE_BYTES: Final = 1024
# A message that does not decode is charged again, once it fails, as the most items its
# bytes could have built (the smallest is a transaction: its u32 length and no byte): the
# decoder may have built them all before the last byte refused it. Charged its bytes alone,
# a catch-up answer of 32,048 tiny transactions and one trailing byte (258 KiB, 35 ms to
# decode, Merkle trees included) cost 137 us of the loop per KiB charged, and a validator
# sending 127 a second within its budget took 4.5 s of loop a second (review 34t).
DECODED_ITEM_BYTES_MIN: Final = 4
# A Connect call is charged this much of its validator's byte budget before its hello is
# written: taking one in (TLS session, HTTP/2 stream, handler task, the hello, ending the
# stream it replaces) cost the acceptor 0.45 to 0.57 ms of CPU, and a validator opening
# Connect after Connect on one connection made about 1,000 a second, unbounded: 57% of a
# core and 17 KB of log a second (review 34t). An honest dialer reconnects at most every
# PEER_RECONNECT_BASE_MS, and rarely.
PEER_CONNECT_CHARGE_BYTES: Final = 512 * 1024
# A peer's forwarded transactions may hold at most this share of the mempool (1/divisor;
# the divisor is n - 1, at least this): one peer cannot crowd out clients or other peers.
MEMPOOL_PEER_SHARE_DIVISOR_MIN: Final = 3
HELP_LAGGING_INTERVAL_MS: Final = 500  # answer one peer's stale timeouts at most this often

# --- validator process (node/runtime) ------------------------------------------------------
PEER_SEND_QUEUE_MAX: Final = 4_096  # messages queued per peer link; oldest dropped when full
PEER_SEND_QUEUE_BYTES_MAX: Final = 16 * 1024 * 1024  # and bytes: four of the largest messages
PEER_FRAME_MESSAGES_MAX: Final = PEER_SEND_QUEUE_MAX  # a frame with more is a peer's fault
PEER_FORWARD_CHUNK_TXS: Final = 16  # forwarded transactions checked per event-loop turn
# A peer's frames and messages that do not decode (a Byzantine validator's junk) are
# counted in a metric, each one, and logged at most once per peer per this interval, the
# line saying how many were left out since the last: one line per junk message let a
# 12 KB frame of 4,096 one-byte messages write 660 KB of log (review 31).
PEER_JUNK_LOG_INTERVAL_MS: Final = 1_000
PEER_RECONNECT_BASE_MS: Final = 100  # first reconnect delay; doubles per failure
PEER_RECONNECT_MAX_MS: Final = 5_000  # cap of the reconnect backoff
# A session resets the backoff only once it has lasted this long after the peer's hello:
# a peer that says hello and hangs up at once (a Byzantine validator) was redialled every
# PEER_RECONNECT_BASE_MS for ever, a TLS handshake and two log lines each (review 34t).
PEER_SESSION_STABLE_MS: Final = PEER_RECONNECT_MAX_MS
PEER_FRAME_BYTES_MAX: Final = CONSENSUS_MESSAGE_BYTES_MAX  # gRPC receive limit, peer port
# The peer port (node/runtime/_server.py ``new_peer_server``). Only pinned validators pass
# its mutual TLS, so the attacker is a Byzantine validator: each Connect stream it holds
# can keep a frame of up to PEER_FRAME_BYTES_MAX (~6.3 MB) in gRPC's buffers and delivers
# messages in turn with everyone else's. The acceptor keeps one live Connect per source
# validator (a newer one ends the older: docs/cluster.md "Peer streams"), and gRPC core
# bounds what arrives before any handler runs. HTTP/2 streams per connection: an honest
# dialer opens one Connect per connection (a new channel per session); one more so that a
# call still being torn down never holds up the next (streams beyond it wait in the dialer).
PEER_STREAMS_PER_CONNECTION_MAX: Final = 2
# Connect calls one validator may have in the acceptor's handlers at once (beyond it,
# RESOURCE_EXHAUSTED): its live stream, a newer one writing its hello, and one more being
# ended. A validator whose hellos never leave (it can hold HTTP/2 flow control at zero)
# then holds this share of the port's calls, never the whole limit below.
PEER_CALLS_PER_VALIDATOR_MAX: Final = 3
# Calls in progress on the peer port, per validator of genesis (grpc.aio.server's
# maximum_concurrent_rpcs, n times this; beyond it RESOURCE_EXHAUSTED before any handler):
# every validator's share above, and one more each for calls not yet in a handler or being
# refused. 104 calls for 26 validators, each holding at most a frame: ~660 MB in the worst
# case, where an unbounded port let one validator's connections hold as many as it opened.
PEER_RPCS_PER_VALIDATOR_MAX: Final = PEER_CALLS_PER_VALIDATOR_MAX + 1
# The time a connection to the peer port may take to finish its mutual TLS handshake, and
# how long a validator's connection with no call in progress is kept. gRPC's defaults were
# 120 s and for ever: any host that reached the port held a connection (a file descriptor,
# ~20 KB) for 120 s by opening it and sending nothing (3,000 held 3,000 descriptors), and
# a validator's connections without a call were kept for ever, as many as it opened
# (review 36s). An honest dialer's connection always carries its Connect call (a new
# channel per session), and its handshake takes milliseconds.
PEER_HANDSHAKE_TIMEOUT_MS: Final = 5_000
PEER_CONNECTION_IDLE_MS: Final = 10_000
SYNC_PROBE_INTERVAL_MS: Final = 1_000  # at most one catch-up probe per peer per interval
CLIENT_MESSAGE_BYTES_MAX: Final = 64 * 1024  # gRPC receive limit, client port
# Paged answers (GetReference, GetAttestations; docs/adr/0020, amendment "pages"): at
# their limits they outgrow a client's receive cap (gRPC's default is 4 MiB, the SDK's was
# 5 MiB and is 7 MiB since session 33; reference data at PARTICIPANTS_MAX and
# INSTRUMENTS_MAX with the longest ids is 5.13 MB, attestations at BACKINGS_MAX x
# ATTESTATIONS_KEPT of the largest reserve records 36 MB), so a client asks pages of at
# most a size it names: at least this (a smaller one is raised to it; a page always holds
# at least one entry), so a read of the largest answer takes a bounded number of calls
# (each metered by the read budget), not one per entry.
ANSWER_PAGE_BYTES_MIN: Final = 64 * 1024
# A refusal's message and each of its details' values (node/runtime/_refuse.py), in UTF-8
# bytes: a longer one is cut. A refusal travels in the call's trailers, which a client's
# gRPC refuses past its metadata limit (8 KiB soft, 16 KiB hard by default), and several
# echo what the client sent (an id, a name): a 6,000-byte instrument name made the NOT_FOUND
# of GetInstrument reach the client as RESOURCE_EXHAUSTED, "received metadata size exceeds
# hard limit", with no details, which the SDK retried as a busy node (review 36p).
REFUSAL_MESSAGE_BYTES_MAX: Final = 1_024
REFUSAL_VALUE_BYTES_MAX: Final = 256
TIMELINE_HEIGHTS_MAX: Final = 16_384  # recent blocks whose consensus step times are kept
TIMELINE_SPAN_MAX: Final = 4_096  # heights per GetTimeline answer
WAITERS_MAX: Final = 10_000  # WaitForFinality calls parked at once
WAIT_TIMEOUT_DEFAULT_MS: Final = 30_000
WAIT_TIMEOUT_MAX_MS: Final = 300_000
BLOCK_STREAMS_MAX: Final = 64  # StreamBlocks subscribers at once
# A GetBlock of the head block, when it has transactions or events, waits at most this
# long for the next block, whose header certifies the proof a filtered read carries that
# it shows the caller all its transactions (ADR 0025), and a whole read's results (ADR
# 0026); the leader proposes that block at once (ADR 0005), so it comes within a round
# unless a view change intervenes. Past it, the answer goes without the proof, which the
# SDK refuses and asks again. A call with a deadline waits at most half its time left (the
# SDK's RPC timeout is 2 s too: the answer would come as the caller gives up).
BLOCK_PROOF_WAIT_MS: Final = 2_000
# Block-read work one participant may cause on the node's event loop, which consensus
# shares (GetBlock and StreamBlocks; a token bucket per participant, node/runtime/_reads.py;
# docs/cluster.md "Security: who reads what"): each read is charged the CPU time it took,
# in microseconds. What a read costs varies 300-fold (measured on a 1,499-DvP block, before
# the party index of ADR 0025 replaced the cache of each transaction's readers: 37 ms
# party-filtered with nothing kept, every body decoded; 4.5 ms with the readers kept and
# the Merkle trees not; 0.2 ms with both; 16 ms for a party to every transaction, whose
# receipts are built; 2.3 ms for an observer), so the time itself is charged rather than
# a model of it. 50 ms a second is 5% of one core per participant.
# Following the head at the highest commit rate measured (506 trades/s, docs/performance.md)
# as a party to every trade and the first reader of every block costs ~40 us a trade, ~20
# ms a second: 2.5 times inside it, so following the head, and reads of the recent blocks
# whose party index is kept, never meet it; the burst is two full blocks read cold at once.
# A GetBlock over budget is refused (RESOURCE_EXHAUSTED with a retry-after hint), a block
# stream waits.
BLOCK_READ_CPU_US_PER_S: Final = 50_000
BLOCK_READ_CPU_US_BURST: Final = 100_000
# Participants with a read bucket: only a read charges one into being, only verified
# callers read, and governance keeps the registry within PARTICIPANTS_MAX; buckets that
# refilled to their burst (the same as none) are dropped when the table is full.
BLOCK_READ_BUCKETS_MAX: Final = PARTICIPANTS_MAX
HEALTH_WATCHES_MAX: Final = 64  # grpc.health.v1 Watch streams at once
# Server reflection streams at once: open to anyone like health, and each parks a handler
# until the client leaves, so bounded like Watch (node/runtime/_api.py ReflectionService).
REFLECTION_STREAMS_MAX: Final = 64
# One client connection gets a fifth of the node-wide waits and an eighth of the streams,
# watches and reflection streams, so no single anonymous connection can take them whole
# (docs/cluster.md).
WAITERS_PER_CONNECTION_MAX: Final = WAITERS_MAX // 5
BLOCK_STREAMS_PER_CONNECTION_MAX: Final = BLOCK_STREAMS_MAX // 8
HEALTH_WATCHES_PER_CONNECTION_MAX: Final = HEALTH_WATCHES_MAX // 8
REFLECTION_STREAMS_PER_CONNECTION_MAX: Final = REFLECTION_STREAMS_MAX // 8
# SubmitStream (docs/cluster.md "The submit stream"): streams at once, per node and per
# connection as for block streams; submissions per stream whose terminal event (final or
# error) has not been handed to gRPC yet (each also holds one of its connection's
# finality waits, WAITERS_PER_CONNECTION_MAX); and error events for requests refused
# without a slot queued before the node stops reading the stream's requests. A slot frees
# only when its terminal event leaves the queue, so a client that stops reading holds at most
# 2 * SUBMIT_STREAM_INFLIGHT_MAX + SUBMIT_STREAM_ERRORS_QUEUED_MAX events in the node.
SUBMIT_STREAMS_MAX: Final = 64
SUBMIT_STREAMS_PER_CONNECTION_MAX: Final = SUBMIT_STREAMS_MAX // 8
SUBMIT_STREAM_INFLIGHT_MAX: Final = 1_000
SUBMIT_STREAM_ERRORS_QUEUED_MAX: Final = 64
# gRPC core: client connections (TLS handshakes in progress count too), the time a
# connection may take to finish its TLS handshake, and HTTP/2 streams per connection
# (calls beyond it queue in the client, they are not refused).
CLIENT_CONNECTIONS_MAX: Final = 512
# A client connection with no call in progress for this long is closed (HTTP/2 GOAWAY; a
# client's channel reconnects on its next call). Without it a connection that finished its
# handshake and then sent nothing was kept for ever: 512 of them, from anyone, took every
# slot (session 26's review). A connection kept busy by a parked call still counts: a cap
# per source address belongs in front of the node (docs/deploy.md).
CLIENT_CONNECTION_IDLE_MS: Final = 60_000
CLIENT_HANDSHAKE_TIMEOUT_MS: Final = 5_000
# The metrics port (plain HTTP, no key: a management network's, docs/deploy.md): scrapes
# served at once, each on its own thread, and how long one connection may take to send its
# request. Without them every connection held open was a thread for ever (session 28's
# review: 300 idle connections, 300 threads); a connection beyond the bound is closed at once.
METRICS_CONNECTIONS_MAX: Final = 8
METRICS_REQUEST_TIMEOUT_S: Final = 5.0
CLIENT_STREAMS_PER_CONNECTION_MAX: Final = (
    WAITERS_PER_CONNECTION_MAX
    + BLOCK_STREAMS_PER_CONNECTION_MAX
    + HEALTH_WATCHES_PER_CONNECTION_MAX
    + REFLECTION_STREAMS_PER_CONNECTION_MAX
    + SUBMIT_STREAMS_PER_CONNECTION_MAX
    + 100  # unary calls in flight
)  # 2,132
# Calls (RPCs) in progress on the client port at once, whoever holds them: a call beyond it
# is refused RESOURCE_EXHAUSTED by gRPC before any handler runs (grpc.aio.server's
# maximum_concurrent_rpcs). It bounds what nothing else does: a call parked before its
# request arrives (a unary method opened as a stream whose request never comes) and, with
# every share above, the calls many connections hold. Sized to hold every node-wide limit
# at once, so honest load never meets it before a share says which limit it hit:
# 10,000 finality waits + 64 block streams + 64 submit streams + 64 watches + 64
# reflection streams = 10,256, plus 8 unary calls in flight for each of the 512
# connections (4,096): 14,352 calls. A parked call holds ~22 KB of the node's memory
# (the review measured 3,382 parked reflection calls at 74 MB RSS): at most ~316 MB.
CLIENT_RPCS_MAX: Final = (
    WAITERS_MAX
    + BLOCK_STREAMS_MAX
    + SUBMIT_STREAMS_MAX
    + HEALTH_WATCHES_MAX
    + REFLECTION_STREAMS_MAX
    + 8 * CLIENT_CONNECTIONS_MAX  # unary calls in flight: 8 for each connection
)  # 14,352
# Client identity (docs/adr/0015-client-identity.md): a signed request is taken when its
# timestamp is within this much of the node's clock, either way; its nonce is remembered
# until its timestamp has left the window, so a replay inside the window is refused too.
# At most REQUEST_NONCES_MAX nonces are remembered (20 MB at 100 bytes each): a node
# past the limit refuses further signed requests with RESOURCE_EXHAUSTED until old
# nonces age out (2,500 calls per second sustained fit in a 40 s window).
REQUEST_CLOCK_SKEW_MS: Final = 20_000
REQUEST_NONCES_MAX: Final = 200_000
# ... and one participant holds at most a tenth of them, so no one participant can fill
# the node's memory and lock every other caller out: 20,000 nonces are 1,000 calls/s
# sustained with the time now (each kept ~20 s), 500/s at the edge of the window (40 s),
# above what one node settles (hundreds of trades/s, docs/performance.md); it takes ten
# participants at their full share to fill the node.
REQUEST_NONCES_PER_PARTICIPANT_MAX: Final = REQUEST_NONCES_MAX // 10
REQUEST_NONCE_BYTES_MAX: Final = 32  # clients send 16 random bytes
# Admission refuses a transaction whose expiry is this far behind the node's clock: the
# clocks of the node and the next block's leader may differ by up to this much.
ADMISSION_EXPIRY_TOLERANCE_MS: Final = BLOCK_TIME_DRIFT_MAX_MS
PENDING_IDS_MAX: Final = MEMPOOL_TXS_MAX  # tx ids accepted here and not yet committed
# Accepted-but-uncommitted client transactions in the fsynced intake log (docs/adr/0006):
# one per mempool slot, so at most MEMPOOL_TXS_MAX * TX_BYTES_MAX (80 MB) on disk.
INTAKE_TXS_MAX: Final = MEMPOOL_TXS_MAX
# Admission control (node/runtime/_admission.py; docs/cluster.md "Admission control"): a
# client's transaction is refused with RESOURCE_EXHAUSTED and a retry-after hint when the
# node's estimate of the time to settle what it holds plus that transaction exceeds this
# share of the client's deadline (the rest is margin for the estimate and the way back).
ADMISSION_DEADLINE_SHARE_PCT: Final = 50
ADMISSION_DEADLINE_DEFAULT_MS: Final = WAIT_TIMEOUT_DEFAULT_MS  # a client that gives none
# ... and whatever the deadline, at most this long a queue: a backlog beyond a few blocks
# adds no throughput, only latency and big blocks, which on a loaded machine outlast the
# view timeout and collapse throughput (measured in docs/performance.md, "Issue 13:
# admission control"). A node config may change it (admission_queue_max_ms).
ADMISSION_QUEUE_MAX_MS: Final = 2_000
ADMISSION_QUEUE_MAX_LIMIT_MS: Final = WAIT_TIMEOUT_MAX_MS  # the highest a node config may set
# The estimate's commit rate: a moving average over windows of this length, a new window
# weighing this much, and never below the floor, so an idle node admits (at the default
# deadline the floor alone admits a backlog of 750 before anything has been measured).
# Blocks commit in bursts (one of 1,100 trades after a 7 s view change was measured on a
# loaded machine): a window much shorter than a second turns one burst into a rate many
# times the sustained one, and the node then admits more than it can settle in time.
ADMISSION_RATE_FLOOR_TPS: Final = 50
ADMISSION_RATE_WINDOW_MS: Final = 1_000
ADMISSION_RATE_WEIGHT_PCT: Final = 25
# The hint's bounds: a short wait first (the backlog may be one block from draining), at
# most a few seconds (a client's deadline is tens of seconds by default).
ADMISSION_RETRY_AFTER_MIN_MS: Final = 250
ADMISSION_RETRY_AFTER_MAX_MS: Final = 5_000
SHUTDOWN_GRACE_MS: Final = 2_000  # in-flight RPCs get this long on SIGTERM
# A node that halts itself stays up, NOT_SERVING and refusing all input, this long before
# it exits, so health checks and watchers see why it went (docs/cluster.md "Fail-stop").
HALT_LINGER_MS: Final = 1_000

# --- network generation (devtools/netgen.py) ---------------------------------------------
# Ports come in blocks of 1,000 per role (peer, client, metrics), so more would collide.
VALIDATORS_MAX: Final = 1_000

# --- operator surface (issue 16 item 5: ledger-node health, metrics) ---------------------
# `ledger-node health` (the compose healthcheck): one Check call, well inside compose's
# 5 s probe timeout so a node that does not answer reads as unhealthy, not as a hung probe.
HEALTH_PROBE_TIMEOUT_MS: Final = 3_000
# Liveness without the network (node/health.py ``alive``): the node touches ``alive`` in
# its data directory every ready check (0.5 s) while it runs and has not halted; a probe
# calls it stuck when the touch is older than this. Through the client port, a probe failed
# whenever anonymous connections held every slot (CLIENT_CONNECTIONS_MAX), and an
# orchestrator restarted a healthy validator (session 26's review).
LIVENESS_STALE_MS: Final = 10_000

# --- receipts (node/receipt.py; verified by the SDK, the CLI, the console, the bench) ------
# Commit certificates a verifier remembers as checked (CertificateCache, LRU): the receipts
# of one block's transactions then cost q signature checks once. A client follows the
# recent blocks, so a few hundred cover them; one entry is two hashes' worth of key.
CERTIFICATES_CACHED_MAX: Final = 256

# --- files a person names (node/files.py) --------------------------------------------------
# The most read of one file named on a command line or in a config (a key, genesis, a
# config, a trade, receipt or governance file): far above the largest genesis the limits
# allow (PARTICIPANTS_MAX, INSTRUMENTS_MAX: a few tens of MB), far below what fills this
# machine's memory. A larger file (a disk image named by mistake) is one error line
# before a byte is read, not a command that reads until memory runs out. A document
# named only to be hashed (`--attestation`) is hashed as it is read, at any size.
FILE_BYTES_MAX: Final = 256 * 1024 * 1024

# --- genesis ceremony (node/ceremony.py, docs/deploy.md) -----------------------------------
# A bundle is read from whoever handed it over, so its size and every field are bounded
# before anything is parsed: a PEM certificate is about 700 bytes, a bundle about 1.5 KB.
BUNDLE_FILE_BYTES_MAX: Final = 64 * 1024
BUNDLE_CERT_PEM_BYTES_MAX: Final = 16 * 1024
BUNDLE_HOST_BYTES_MAX: Final = 253  # the longest DNS name
# Bundles one `genesis assemble` reads: every validator and every participant.
BUNDLES_MAX: Final = 10_000
# A validator's own TLS certificate, self-signed and pinned by genesis (ADR 0019): valid
# this long from keygen; a certificate change is a new genesis anyway.
TLS_CERT_VALIDITY_DAYS: Final = 3_650

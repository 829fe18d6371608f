"""Ending a call refused: its status code, its message, and their structured details.

The one way a servicer refuses (ADR 0020): ``refuse`` aborts the call with the status code
and message a person reads, and the trailer (``node.wire.errors.trailer``) that carries the
same refusal as a ``google.rpc.Status`` with an ``ErrorInfo`` (and ``RetryInfo``), which
the SDK exposes as fields. The message and each detail's value are cut to a bound
(``REFUSAL_MESSAGE_BYTES_MAX``, ``REFUSAL_VALUE_BYTES_MAX``): many echo what the client
sent, and trailers past the client's metadata limit reach it as another status, with
no details (review 36p).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NoReturn

import grpc

from node.config import REFUSAL_MESSAGE_BYTES_MAX, REFUSAL_VALUE_BYTES_MAX
from node.runtime._grpc import Ctx
from node.wire.errors import Details, Reason, trailer

__all__ = ["refuse"]


def _clipped(text: str, bytes_max: int) -> str:
    """``text``, or its first ``bytes_max`` bytes of UTF-8 (whole characters) and how many
    more were left out."""
    raw = text.encode("utf-8", "replace")
    if len(raw) <= bytes_max:
        return text
    head = raw[:bytes_max].decode("utf-8", "ignore")
    return f"{head}... ({len(raw) - len(head.encode())} more bytes left out)"


async def refuse(
    context: Ctx,
    code: grpc.StatusCode,
    message: str,
    reason: Reason,
    metadata: Mapping[str, str] | None = None,
    *,
    retry_after_ms: int = 0,
) -> NoReturn:
    """Abort the call with ``code``, ``message`` and the details of ``reason``."""
    message = _clipped(message, REFUSAL_MESSAGE_BYTES_MAX)
    meta = {k: _clipped(v, REFUSAL_VALUE_BYTES_MAX) for k, v in (metadata or {}).items()}
    details = Details(reason, meta, retry_after_ms)
    await context.abort(code, message, trailer(code, message, details))
    raise AssertionError("abort returned")  # pragma: no cover - abort always raises

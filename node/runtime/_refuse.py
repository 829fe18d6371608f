"""Ending a call refused: its status code, its message, and their structured details.

The one way a servicer refuses (ADR 0020): ``refuse`` aborts the call with the status code
and message a person reads, and the trailer (``node.wire.errors.trailer``) that carries the
same refusal as a ``google.rpc.Status`` with an ``ErrorInfo`` (and ``RetryInfo``), which
the SDK exposes as fields.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NoReturn

import grpc

from node.runtime._grpc import Ctx
from node.wire.errors import Details, Reason, trailer

__all__ = ["refuse"]


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
    details = Details(reason, dict(metadata or {}), retry_after_ms)
    await context.abort(code, message, trailer(code, message, details))
    raise AssertionError("abort returned")  # pragma: no cover - abort always raises

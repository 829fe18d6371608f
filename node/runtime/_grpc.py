"""Typing shims for grpc.aio, whose published stubs predate parts of its API."""

from __future__ import annotations

from typing import Any

import grpc

__all__ = ["EOF", "Ctx"]

Ctx = grpc.aio.ServicerContext[Any, Any]
EOF: object = grpc.aio.EOF  # type: ignore[attr-defined]

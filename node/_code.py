"""A digest of the validator's own code, shown beside its version (``ledger-node
--version``, the ``ledger_build_info`` metric's ``code`` label). The version alone cannot
tell two builds apart (it changes only at a release), so an operator rolling an upgrade
could not see which validators ran the new code (docs/deploy.md, section 7; review 33o
found the gap). Not imported by the pure layers: it reads files."""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path

CODE_DIGEST_HEX_CHARS = 16  # 64 bits: enough to tell builds apart, short enough to read


def code_digest(root: Path | None = None) -> str:
    """A SHA-256 over the validator's Python sources (every ``.py`` under the ``node``
    package, generated wire code included: their paths and bytes, in path order), cut to
    CODE_DIGEST_HEX_CHARS hex characters. The same files give the same digest on every
    machine; one byte changed anywhere gives another."""
    return _digest(Path(__file__).resolve().parent if root is None else root.resolve())


@functools.cache
def _digest(root: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(root.rglob("*.py"), key=lambda p: p.relative_to(root).as_posix()):
        rel = path.relative_to(root).as_posix().encode()
        data = path.read_bytes()
        h.update(len(rel).to_bytes(4, "big") + rel + len(data).to_bytes(8, "big") + data)
    return h.hexdigest()[:CODE_DIGEST_HEX_CHARS]

"""`RawRecord`: one input message as received, before it is decoded.

Every source yields these: the bytes plus where they came from, so decoding,
validation and dead-lettering happen in one place (the engine's
`decode_and_route` step) whatever the source.
"""

from __future__ import annotations

from typing import NamedTuple


class RawRecord(NamedTuple):
    """One input message as received: `origin` (file or topic/partition) and `position` (line or offset)."""

    raw: bytes
    origin: str
    position: int
    received_ms: int  # wall clock (files, simulator) or the broker's timestamp (Kafka)

    @property
    def source(self) -> str:
        return f"{self.origin}:{self.position}"

"""`RawRecord`: one input message as received, before it is decoded.

Every source yields these: the bytes plus where they came from, so decoding,
validation and dead-lettering happen in one place (the engine's
`decode_and_route` step) whatever the source.
"""

from __future__ import annotations

from typing import NamedTuple


class RawRecord(NamedTuple):
    """One input message as received: `origin` (file or topic/partition) and `position` (line or offset).

    `size` is the message's length in bytes when `raw` holds only its
    beginning (a line too long to read whole); 0 when `raw` is all of it.
    """

    raw: bytes
    origin: str
    position: int
    received_ms: int  # wall clock (files, simulator) or the broker's timestamp (Kafka)
    size: int = 0

    @property
    def source(self) -> str:
        return f"{self.origin}:{self.position}"

    @property
    def length(self) -> int:
        """The message's length in bytes as received."""
        return self.size or len(self.raw)

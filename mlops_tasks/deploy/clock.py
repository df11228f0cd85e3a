"""A virtual clock for the in-memory deploy target: waits advance time at once."""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable

__all__ = ["VirtualClock"]


class VirtualClock:
    """A clock whose :meth:`sleep` advances time at once and runs what is due meanwhile.

    Example:
        ```python
        clock = VirtualClock(); clock.sleep(60); assert clock.monotonic() == 60
        ```
    """

    def __init__(self) -> None:
        self.now = 0.0
        self._due: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = itertools.count()
        #: Called with the elapsed seconds after each sleep (the target sends traffic there).
        self.on_advance: Callable[[float], None] | None = None

    def monotonic(self) -> float:
        """Virtual seconds since the clock was made."""
        return self.now

    def call_later(self, delay_s: float, action: Callable[[], None]) -> None:
        """Run ``action`` once virtual time has advanced ``delay_s`` (at the next sleep)."""
        heapq.heappush(self._due, (self.now + delay_s, next(self._seq), action))

    def sleep(self, seconds: float) -> None:
        """Advance ``seconds`` (at least 1 ms), running due actions, then ``on_advance``."""
        end = self.now + max(seconds, 0.001)
        while self._due and self._due[0][0] <= end:
            at, _, action = heapq.heappop(self._due)
            self.now = max(self.now, at)
            action()
        elapsed, self.now = max(0.0, end - self.now), max(self.now, end)
        if self.on_advance is not None:
            self.on_advance(elapsed)

"""BFD: one profile per distinct set of timers, shared by every session that asks for it.

BGP neighbors, OSPF and IS-IS interfaces name a profile (FRR ``bfd profile``; BIRD
prints the timers in place). Sessions asking for the same timers share one profile,
named after the timers, so the name never depends on which session came first.
"""

from __future__ import annotations

from dataclasses import dataclass

from lbroute.model.api import Bfd


@dataclass(frozen=True, kw_only=True)
class BfdView:
    name: str
    """FRR bfd profile name."""
    min_rx: int
    min_tx: int
    multiplier: int


class BfdProfiles:
    """The BFD profiles of one node, collected while its protocols' views are built."""

    def __init__(self) -> None:
        self._views: dict[Bfd, BfdView] = {}

    def view(self, bfd: Bfd | None) -> BfdView | None:
        """The profile for ``bfd`` (None when the session does not ask for BFD)."""
        if bfd is None:
            return None
        if bfd not in self._views:
            name = f"lbr-{bfd.min_rx}-{bfd.min_tx}-{bfd.multiplier}"
            self._views[bfd] = BfdView(
                name=name, min_rx=bfd.min_rx, min_tx=bfd.min_tx, multiplier=bfd.multiplier
            )
        return self._views[bfd]

    def profiles(self) -> tuple[BfdView, ...]:
        """Every profile asked for so far, by name."""
        return tuple(sorted(self._views.values(), key=lambda b: b.name))

"""FairQueue: a model's waiting tickets in one lane per owner, taken round-robin, split to fit a run."""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Hashable

from .tickets import Slice, Ticket


class FairQueue:
    """Waiting tickets in one lane per owner, taken round-robin: an owner's oldest first.

    Its size (what `depth` bounds) counts the requests not yet started; a request split across
    runs keeps its rest at the head of its lane without counting again.
    """

    def __init__(self, depth: int) -> None:
        self.depth = depth
        self.lanes: OrderedDict[str, deque[Ticket]] = OrderedDict()
        self.size = 0

    def __len__(self) -> int:
        return self.size

    def put(self, ticket: Ticket) -> bool:
        if self.size >= self.depth:
            return False
        self.lanes.setdefault(ticket.owner, deque()).append(ticket)
        self.size += 1
        return True

    def pop(self) -> Ticket | None:
        """The next owner's oldest ticket, whole (its owner moves to the back of the round)."""
        taken = self.take(1, whole=True)
        return taken[0].ticket if taken else None

    def take(self, room: int, key: Hashable | None = None, *, whole: bool = False) -> list[Slice]:
        """Up to `room` images, round-robin over the owners, from tickets whose key is `key`.

        With no `key` the first ticket sets it (a None key: that ticket alone). A ticket larger
        than the room is split: its rest stays at the head of its lane. `whole` takes the
        first ticket entire, room or not.
        """
        out: list[Slice] = []
        progress = True
        while room > 0 and progress and self.lanes:
            progress = False
            for owner in list(self.lanes):
                lane = self.lanes[owner]
                head = lane[0]
                if out and (key is None or head.key != key):
                    continue
                if not out:
                    key = head.key
                count = head.n - head.taken if whole or key is None else min(room, head.n - head.taken)
                if head.taken == 0:  # started: no longer waiting, though its rest may be queued
                    self.size -= 1
                out.append(Slice(head, head.taken, count))
                head.taken += count
                room -= count
                progress = True
                if head.taken == head.n:
                    lane.popleft()
                del self.lanes[owner]
                if lane:  # the owner goes to the back of the round
                    self.lanes[owner] = lane
                if key is None or room <= 0 or whole:
                    return out
        return out

    def remove(self, ticket: Ticket) -> bool:
        lane = self.lanes.get(ticket.owner)
        if lane is None or ticket not in lane:
            return False
        lane.remove(ticket)
        if not lane:
            del self.lanes[ticket.owner]
        if ticket.taken == 0:
            self.size -= 1
        return True

    def drain(self) -> list[Ticket]:
        """Remove and return every ticket not yet started; started ones keep their rest queued."""
        waiting = [t for lane in self.lanes.values() for t in lane if t.taken == 0]
        for ticket in waiting:
            self.remove(ticket)
        return waiting

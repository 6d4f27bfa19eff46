"""A session's transcript as a tree, and the branch of it that is shown and continued.

Every item names its parent by position (positions are insertion order, so a parent is always
older than its child). An edit adds a sibling of the edited message, a regenerate a sibling of
the reply's first item. The session's ``head`` picks an item; its branch is the path from the
root to that item, continued down the newest child at each fork, so that a run appending to a
branch never has to move the head.

Pure functions over ``(position, parent)`` pairs: the database query stays the caller's.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

Link = tuple[int, int | None]  # (position, parent position)


@dataclass(frozen=True)
class Branch:
    path: tuple[int, ...]  # positions from the root to the tip
    # For each position on the path that has siblings: all of them (itself included), oldest first.
    forks: dict[int, tuple[int, ...]] = field(default_factory=dict)

    @property
    def tip(self) -> int | None:
        return self.path[-1] if self.path else None


def children(links: Iterable[Link]) -> dict[int | None, list[int]]:
    """Each parent's children, oldest first (a link to a younger parent is damaged: left out)."""
    kids: dict[int | None, list[int]] = {}
    for position, parent in sorted(links, key=lambda link: link[0]):
        if parent is None or parent < position:
            kids.setdefault(parent, []).append(position)
    return kids


def branch(links: Iterable[Link], head: int | None) -> Branch:
    """The branch through ``head`` (None, or a position that is gone: the newest line)."""
    links = list(links)
    parents = dict(links)
    kids = children(links)
    path: list[int] = []
    if head in parents:
        node: int | None = head
        while node is not None:
            path.append(node)
            parent = parents.get(node)
            # A parent is older than its child: anything else is a damaged record, cut there.
            node = parent if parent is not None and parent < node else None
        path.reverse()
    below = path[-1] if path else None
    while kids.get(below):
        below = kids[below][-1]
        path.append(below)
    forks = {}
    for position in path:
        siblings = kids.get(parents.get(position), [])
        if len(siblings) > 1:
            forks[position] = tuple(siblings)
    return Branch(tuple(path), forks)

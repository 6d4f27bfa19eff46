"""The transcript tree (agents/run/tree.py) and a socket's lanes (agents/upstream/websocket.py)."""

from __future__ import annotations

from unittest.mock import sentinel

from agents.run.tree import branch
from agents.upstream.delta import Chain
from agents.upstream.websocket import MAX_NAMED_LANES, UpstreamSocket

# 0 user, 1 reply, 2 user, 3 reply; 4 regenerates 3; 5 edits 0 (a second root), 6 its reply.
LINKS = [(0, None), (1, 0), (2, 1), (3, 2), (4, 2), (5, None), (6, 5)]


def test_the_branch_runs_through_the_head_then_down_the_newest_children() -> None:
    assert branch(LINKS, None).path == (5, 6)  # no head: the newest line of all
    assert branch(LINKS, 3).path == (0, 1, 2, 3)
    assert branch(LINKS, 1).path == (0, 1, 2, 4)  # below the head: the newest child
    assert branch(LINKS, 99).path == (5, 6)  # a head that is gone: the newest line
    assert branch([], None).path == ()


def test_each_forked_item_knows_its_siblings_oldest_first() -> None:
    found = branch(LINKS, 4)
    assert found.forks == {0: (0, 5), 4: (3, 4)}
    assert found.tip == 4


def test_a_damaged_parent_link_cuts_the_branch_instead_of_looping() -> None:
    looped = [(0, None), (1, 2), (2, 1)]  # 1 names a younger parent: a damaged record
    assert branch(looped, 2).path == (1, 2)


def chain(name: str) -> Chain:
    return Chain("f", (name,), name, frozenset())


def test_a_socket_names_at_most_32_lanes_reusing_the_least_recently_used() -> None:
    socket = UpstreamSocket(sentinel.connection)
    ids = [socket.lane_for(f"r{n}", named=True) for n in range(MAX_NAMED_LANES)]
    assert len(set(ids)) == MAX_NAMED_LANES
    for stream_id in ids:
        assert stream_id is not None
        socket.chains[stream_id] = chain(stream_id)
    assert socket.lane_for("r0", named=True) == ids[0]  # r0 is now the most recently used
    reused = socket.lane_for("r-new", named=True)
    assert reused == ids[1]  # r1's stream_id, the least recently used
    assert ids[1] not in socket.chains  # its cached response is forgotten, never assumed
    assert socket.lane_for("r1", named=True) == ids[2]
    assert socket.lane_for("anything", named=False) is None  # no named lanes upstream
    assert socket.lane_for(None, named=True) is None

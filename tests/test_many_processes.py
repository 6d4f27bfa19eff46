"""One site, two daphne processes, the real Redis and PostgreSQL: one session's run followed from
both, resumed from anywhere, taken over when its process dies."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager, suppress

import pytest

from agents.models import Item
from devtools.page import Page
from simulator import context_hash
from tests.cluster import Cluster, items, migrated_template, steps
from tests.liveserver import Browser, session_id
from tests.livetab import LiveTab, drain_and_close
from tests.services import REDIS_URL, PrivateRedis
from tests.simserver import SimServer

# Each takes some 0.2 s (most of it reading the stream up to a random moment).
RECONNECTS = 30

# The module's processes are shared where a test leaves them as it found them: every test works
# on sessions of its own, and each process start costs a second or two of importing Django.


@pytest.fixture(scope="module")
def template() -> Iterator[str]:
    """The schema, migrated once: each cluster's database is a copy of it."""
    with migrated_template() as name:
        yield name


@contextmanager
def upstream(tokens_per_s: int) -> Iterator[SimServer]:
    server = SimServer(["--cost", f"tokens_per_s={tokens_per_s}"])
    try:
        yield server.start()
    finally:
        server.stop()


@pytest.fixture(scope="module")
def slow_upstream() -> Iterator[SimServer]:
    """400 tokens/s: a 3000-token reply lasts over 7 s, long enough to cut it mid-stream."""
    with upstream(400) as server:
        yield server


@pytest.fixture(scope="module")
def site(template: str) -> Iterator[Cluster]:
    """Two processes on the default lease, for the tests that kill neither a process nor Redis."""
    with upstream(1500) as server:
        cluster = Cluster(server, template=template)
        try:
            yield cluster.start()
        finally:
            cluster.stop()


@pytest.fixture
def cluster_of(template: str, slow_upstream: SimServer) -> Iterator[Callable[..., Cluster]]:
    """Clusters of a test's own, on the slow upstream, for tests that kill something."""
    clusters: list[Cluster] = []

    def start(redis_url: str = REDIS_URL, **env: str) -> Cluster:
        cluster = Cluster(slow_upstream, env=env, redis_url=redis_url, template=template)
        clusters.append(cluster)
        return cluster.start()

    yield start
    for cluster in clusters:
        cluster.stop()


def new_session(base_url: str) -> tuple[str, str]:
    browser = Browser(base_url)
    return session_id(browser.new_session()), browser.cookie_header


def texts(rows: list[dict[str, object]]) -> list[str]:
    return [Item(data=row["data"]).text for row in rows]


def plain_texts(rows: list[dict[str, object]]) -> list[str]:
    return [" ".join(text.split()) for text in texts(rows)]


def websocket_connections(
    server: SimServer, before: Collection[object] = ()
) -> list[dict[str, object]]:
    """The upstream's WebSocket connections, in the order they opened, but those ``before``
    (ids): the upstream is the module's, and a test counts the ones it opened."""
    return [
        c for c in server.connections() if c["transport"] == "websocket" and c["id"] not in before
    ]


def ids(connections: list[dict[str, object]]) -> set[object]:
    return {c["id"] for c in connections}


async def test_two_tabs_on_two_processes_follow_one_run_token_for_token(site: Cluster) -> None:
    cluster = site
    before = ids(websocket_connections(cluster.upstream))
    one, two = cluster.servers
    sid, cookie = new_session(one.base_url)
    owner = await LiveTab(one.base_url, sid, cookie).open()
    follower = await LiveTab(two.base_url, sid, cookie).open()
    # The follower types: its command goes to the owner's process through the channel layer.
    await follower.send("/chat 600 river deltas")
    streamed: dict[str, list[str]] = {"owner": [], "follower": []}

    async def follow(name: str, tab: LiveTab) -> None:
        while tab.page.busy is not False or not streamed[name]:
            await tab.recv(30)
            live = tab.page.live
            if live:
                streamed[name].append(live[0].text)

    await asyncio.gather(follow("owner", owner), follow("follower", follower))
    rows = items(cluster, sid)
    assert [row["status"] for row in rows] == ["completed", "completed"]
    reply = texts(rows)[1]
    for name in ("owner", "follower"):
        # Every state the live text went through is a prefix of the reply: in order, no token
        # twice, none missing; and the page ends with the persisted transcript.
        assert streamed[name], name
        assert all(reply.startswith(text) for text in streamed[name]), name
    assert owner.page.texts() == follower.page.texts() == plain_texts(rows)
    # One upstream socket for the session, however many processes show it.
    assert len(websocket_connections(cluster.upstream, before)) == 1
    await drain_and_close(owner, follower)


def check_page(page: Page, rows: list[dict[str, object]]) -> None:
    """What a page showed mid-run agrees with the transcript the run left in the database:
    finished items equal, a live item a prefix of its final text, everything in order."""
    by_upstream_id = {Item(data=row["data"]).data.get("id"): row for row in rows}
    positions: list[int] = []
    for block in page.blocks:
        if block.id.startswith("live-"):
            row = by_upstream_id[block.id.removeprefix("live-")]
            assert Item(data=row["data"]).text.startswith(block.text), block
        else:
            row = rows[int(block.id.removeprefix("item-"))]
            assert block.text == " ".join(Item(data=row["data"]).text.split()), block
        positions.append(int(row["position"]))  # type: ignore[call-overload]
    assert positions == sorted(set(positions)), "an item is shown twice or out of order"


async def test_a_tab_reconnecting_at_random_points_shows_exactly_the_transcript(
    site: Cluster,
) -> None:
    cluster = site
    sid, cookie = new_session(cluster.servers[0].base_url)
    rng = random.Random(6)
    seen: list[Page] = []
    tab = await LiveTab(cluster.servers[0].base_url, sid, cookie).open()
    await tab.send("/chat 4000 tide tables")
    while len(seen) < RECONNECTS:
        if tab.page.busy is False and seen:
            await tab.send(f"/chat 4000 reconnect {len(seen)}")
        await tab.until_page(lambda page: page.busy)
        # Read a little of the stream, then drop the socket at a random moment, as a reload
        # or a network drop does, on either process.
        deadline = asyncio.get_running_loop().time() + rng.uniform(0.01, 0.2)
        while asyncio.get_running_loop().time() < deadline and tab.page.busy:
            await tab.recv()
        await tab.close()
        server = rng.choice(cluster.servers)
        tab = await LiveTab(server.base_url, sid, cookie).open()
        seen.append(tab.page)
        for _ in range(rng.randrange(0, 5)):
            if tab.page.busy is False:
                break
            await tab.recv()
    await tab.until_page(lambda page: page.busy is False)
    await drain_and_close(tab)
    rows = items(cluster, sid)
    assert all(row["status"] == "completed" for row in rows)
    for page in seen:
        check_page(page, rows)
    landed = sum(bool(page.live) for page in seen)
    assert landed >= RECONNECTS / 2, f"most reconnects should land mid-stream: {landed}"
    final = await LiveTab(cluster.servers[1].base_url, sid, cookie).open()
    assert final.page.texts() == plain_texts(rows)
    await drain_and_close(final)


async def test_killing_the_owner_mid_run_hands_the_session_over_within_the_lease(
    cluster_of: Callable[..., Cluster],
) -> None:
    lease = 2.0
    cluster = cluster_of(LEASE_SECONDS=str(lease))
    before = ids(websocket_connections(cluster.upstream))
    one, two = cluster.servers
    sid, cookie = new_session(one.base_url)
    owner = await LiveTab(one.base_url, sid, cookie).open()
    follower = await LiveTab(two.base_url, sid, cookie).open()
    await owner.send("/chat 3000 a reply its process will not finish")
    await follower.until_page(lambda page: page.live and len(page.live[0].text) > 200)
    one.kill()
    killed = asyncio.get_running_loop().time()
    seen = follower.page.live[0].text
    # The other process takes the lease over, keeps the partial reply as interrupted, and
    # brings its tabs to the new state.
    await follower.until_page(
        lambda page: page.busy is False and any(b.status == "interrupted" for b in page.blocks),
        wait=lease + 10,
    )
    assert asyncio.get_running_loop().time() - killed < lease + 3
    rows = items(cluster, sid)
    assert [(row["status"], row["in_context"]) for row in rows] == [
        ("completed", True),
        ("interrupted", True),
    ]
    assert texts(rows)[1].startswith(seen)  # nothing the tabs saw is lost
    assert follower.page.texts() == plain_texts(rows)

    await follower.send("/chat 20 and after the crash")
    await follower.until_idle()
    await drain_and_close(owner, follower)
    rows = items(cluster, sid)
    assert [row["status"] for row in rows] == ["completed", "interrupted", "completed", "completed"]
    # A new upstream socket, started with the whole context; the upstream's context for the
    # last reply is exactly the database's transcript before it.
    connections = websocket_connections(cluster.upstream, before)
    assert len(connections) == 2
    log = cluster.upstream.connection(str(connections[1]["id"]))["log"]
    assert log[0]["mode"] != "delta"
    last = steps(cluster, sid)[-1]
    context = [row["data"] for row in rows if row["in_context"]][:-1]
    assert cluster.upstream.oracle(str(last["response_id"]))["context_hash"] == context_hash(
        context
    )


async def reconnect(tab: LiveTab, wait: float = 20) -> LiveTab:
    """Reopen a dropped tab as htmx does: again and again, with a growing, jittered delay."""
    await tab.close()
    deadline = asyncio.get_running_loop().time() + wait
    delay = 0.05
    while True:
        try:
            return await tab.open()
        except Exception:
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(delay * random.random())
            delay = min(delay * 2, 1.0)


@pytest.mark.parametrize("down", [0, 4], ids=["restart", "outage"])
async def test_a_redis_restart_mid_run_interrupts_the_run_and_everything_recovers(
    cluster_of: Callable[..., Cluster], down: float
) -> None:
    redis = PrivateRedis().start()
    try:
        cluster = cluster_of(redis_url=redis.url, LEASE_SECONDS="2")
        one, two = cluster.servers
        sid, cookie = new_session(one.base_url)
        tab = await LiveTab(one.base_url, sid, cookie).open()
        other = await LiveTab(two.base_url, sid, cookie).open()
        await tab.send("/chat 3000 a reply Redis will not see the end of")
        await tab.until_page(lambda page: page.live and len(page.live[0].text) > 100)
        # A restart is outlasted by the connections' retries: the tabs stay open and resync.
        # A longer outage drops them (close 4013, "try again later"), and they come back with
        # backoff.
        redis.restart(down)
        settled = lambda page: page.busy is False and len(page.blocks) == 2  # noqa: E731
        tabs = []
        for each in (tab, other):
            if down:
                with suppress(Exception):
                    await each.until_page(settled, wait=15)
                if each.page.busy is not False:
                    each = await reconnect(each)
            await each.until_page(settled, wait=15)
            tabs.append(each)
        for server in cluster.servers:
            assert server.process is not None
            assert server.process.poll() is None, cluster.output()
        rows = items(cluster, sid)
        assert [row["status"] for row in rows] == ["completed", "interrupted"]
        assert all(each.page.texts() == plain_texts(rows) for each in tabs)
        fresh = await LiveTab(two.base_url, sid, cookie).open()
        assert fresh.page.texts() == plain_texts(rows)
        await fresh.send("/chat 20 after the restart")
        await fresh.until_idle()
        rows = items(cluster, sid)
        assert [row["status"] for row in rows][2:] == ["completed", "completed"]
        for each in tabs:  # the first tabs follow the new run too
            await each.until_page(lambda page: len(page.blocks) == 4)
        await drain_and_close(*tabs, fresh)
    finally:
        redis.stop()

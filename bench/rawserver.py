"""A minimal ``websockets`` server: the baseline a browser socket's cost is compared with.

It greets each connection with one frame (as the playground sends its status fragment), echoes
text, and on ``stream N RATE`` sends N timestamped token frames at RATE per second, then
``done``. Run it as ``python -m bench.rawserver --port P``; it imports no Django.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

from websockets.asyncio.server import ServerConnection, serve

HELLO = '<div id="status" data-busy="false"></div>'


async def stream(websocket: ServerConnection, count: int, rate: float) -> None:
    """``count`` frames at ``rate`` per second, each carrying its send time (CLOCK_MONOTONIC)."""
    interval = 1.0 / rate if rate > 0 else 0.0
    start = time.monotonic()
    for index in range(count):
        ahead = start + index * interval - time.monotonic()
        if ahead > 0.001:
            await asyncio.sleep(ahead)
        await websocket.send(json.dumps({"i": index, "t": time.monotonic(), "d": " token"}))
    await websocket.send("done")


async def handler(websocket: ServerConnection) -> None:
    await websocket.send(HELLO)
    async for message in websocket:
        text = message if isinstance(message, str) else message.decode()
        if text.startswith("stream "):
            _, count, rate = text.split()
            await stream(websocket, int(count), float(rate))
        else:
            await websocket.send(text)


async def main(port: int) -> None:
    # No compression: daphne negotiates none, so both sides pay for the same bytes.
    async with serve(handler, "127.0.0.1", port, compression=None, max_size=None, backlog=4096):
        await asyncio.Future()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    asyncio.run(main(parser.parse_args().port))

"""The playground driven as a browser drives it: forms over HTTP, htmx's frames over a WebSocket.

``Browser`` keeps the cookies (``csrftoken``, ``sessionid``) and submits the page's forms; its
``tab()`` is one page's socket (``devtools.tabs``): it sends what htmx's ``ws-send`` builds from
the composer form and reads the fragments the server pushes, timing every frame as it arrives.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import httpx2

from devtools.tabs import Tab

CSRF_RE = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')
SESSION_RE = re.compile(r"/sessions/([0-9a-f-]{36})/$")


@dataclass(frozen=True)
class ToolSpec:
    name: str
    description: str
    parameters: dict[str, Any]
    mock_output: str

    def definition(self) -> dict[str, Any]:
        """The tool as the playground sends it upstream (strict off, as the form leaves it)."""
        return {
            "type": "function",
            "name": self.name,
            "description": self.description,
            "parameters": self.parameters,
            "strict": False,
        }


class Browser:
    """One browser (one cookie jar) on the playground's pages."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.http = httpx2.AsyncClient(base_url=base_url, timeout=60, follow_redirects=False)
        self.csrf = ""

    async def open_home(self) -> None:
        page = await self.http.get("/")
        page.raise_for_status()
        match = CSRF_RE.search(page.text)
        if match is None:
            raise RuntimeError("the home page has no CSRF token")
        self.csrf = match[1]

    async def post(self, path: str, fields: dict[str, str]) -> httpx2.Response:
        data = {"csrfmiddlewaretoken": self.csrf, **fields}
        headers = {"X-CSRFToken": self.csrf, "HX-Request": "true"}
        return await self.http.post(path, data=data, headers=headers)

    async def new_session(self) -> str:
        """Click "New session": the new session's id. Without the built-in tools a page's new
        session starts with: each scenario adds the tools its direct client has too."""
        if not self.csrf:
            await self.open_home()
        response = await self.post("/sessions/new/", {"tools": "none"})
        match = SESSION_RE.search(response.headers.get("location", ""))
        if response.status_code != 302 or match is None:
            raise RuntimeError(f"POST /sessions/new/ answered {response.status_code}")
        return match[1]

    async def add_tool(self, session_id: str, tool: ToolSpec) -> None:
        fields = {
            "new-name": tool.name,
            "new-description": tool.description,
            "new-mode": "mock",
            "new-builtin": "",
            "new-parameters": json.dumps(tool.parameters),
            "new-mock_output": tool.mock_output,
        }
        response = await self.post(f"/sessions/{session_id}/tools/", fields)
        if response.status_code != 200:
            raise RuntimeError(f"adding tool {tool.name} answered {response.status_code}")

    async def save_settings(self, session_id: str, **fields: Any) -> None:
        """The settings form with every field (``store`` is a checkbox: sent only when on)."""
        form = {
            "title": "Benchmark",
            "model": "sim",
            "instructions": "",
            "transport": "websocket",
            "max_steps": "25",
        }
        store = bool(fields.pop("store", False))
        form |= {key: str(value) for key, value in fields.items()}
        if store:
            form["store"] = "on"
        response = await self.post(f"/sessions/{session_id}/settings/", form)
        if response.status_code != 200:
            raise RuntimeError(f"saving settings answered {response.status_code}")

    @property
    def cookie_header(self) -> str:
        return "; ".join(f"{name}={value}" for name, value in self.http.cookies.items())

    def tab(self, server: str, session_id: str) -> Tab:
        """The session page's socket on ``server`` (a base URL, ``ws://`` or ``http://``): the
        page is that server's (behind a load balancer every process shares one origin). It keeps
        no frames and no page model: the client's work stays out of the measurement."""
        return Tab(session_id, self.cookie_header, server=server, record=False)

    async def close(self) -> None:
        await self.http.aclose()

"""The simulated model: a deterministic agent that chats, calls tools and reads their outputs.

It is stateless: every decision comes from the full context of the request, so the delta path,
the full-resend path and HTTP give the same answer for the same context. Scenarios
(docs/simulator.md, "Scenarios") are picked by a directive at the start of the user's message
(``/research 12 ...``) or by ``metadata.sim_scenario``; without either, the message's wording
decides.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from dataclasses import dataclass
from functools import cache
from typing import Any, Literal
from zoneinfo import available_timezones

from simulator.context import Item, context_hash, count_tokens
from simulator.schema import arguments
from simulator.text import answer, summary

ScenarioName = Literal["chat", "lookup", "parallel", "research"]
SCENARIOS: dict[ScenarioName, str] = {
    "chat": "/chat [TOKENS] - a plain multi-sentence answer (about TOKENS tokens, default 60)",
    "lookup": "/lookup [QUERY] - one tool call, then an answer that uses its output",
    "parallel": "/parallel [N] - N tool calls in one response (default 3), then an answer",
    "research": "/research N [TOPIC] - N sequential tool calls (N <= 50), then a final report",
}
MAX_RESEARCH_STEPS = 50
DIRECTIVE = re.compile(r"^\s*/(chat|lookup|parallel|research)\b\s*(\d+)?\s*(.*)$", re.S | re.I)
TOOL_WORDS = re.compile(
    r"\b(look ?up|search|find|check|fetch|calculate|compute|convert|what time|weather|remember"
    r"|note|call|use the|tool)\b",
    re.I,
)
# Polite and command openings that are not part of what the user is asking about.
LEAD_IN = re.compile(
    r"^(?:(?:please|can you|could you|would you|kindly)[,\s]+)*"
    r"(?:look ?up|search(?: for)?|find(?: out)?|check|tell me about|explain)?\s*",
    re.I,
)
WORD = re.compile(r"[a-z]+")
# Arithmetic in the user's message ("calculate 17*23+4"): numbers joined by operators.
ARITHMETIC = re.compile(r"[(]*\d[\d.]*(?:\s*(?:[-+*/%^]|\*\*|//)\s*[(]*\d[\d.]*[)]*)+")
PLAIN_STRING_KEYS = {"type", "description", "minLength", "maxLength"}
PARALLEL_WORDS = re.compile(r"\b(in parallel|at once|simultaneously|compare|each of)\b", re.I)


@dataclass(frozen=True)
class Scenario:
    name: ScenarioName
    count: int  # tokens for chat, calls for parallel and research
    topic: str


@dataclass(frozen=True)
class ModelInput:
    items: list[Item]
    tools: list[dict[str, Any]]
    tool_choice: Any
    parallel_tool_calls: bool
    metadata: dict[str, Any]
    seed: int


@dataclass(frozen=True)
class TextOut:
    text: str


@dataclass(frozen=True)
class CallOut:
    call_id: str
    name: str
    arguments: str


Output = TextOut | CallOut


def respond(request: ModelInput) -> list[Output]:
    """What the model answers to this context; the same input and seed give the same output."""
    digest = hashlib.sha256(f"{request.seed}:{context_hash(request.items)}".encode()).digest()
    rng = random.Random(digest)
    user_index, user_text = _last_user_message(request.items)
    since = request.items[user_index + 1 :]
    results = [i for i in since if i.get("type") == "function_call_output"]
    scenario = pick_scenario(user_text, request)
    tools = _mentioned_first(_callable_tools(request), user_text)
    if scenario.name == "chat" or not tools:
        note = _no_tools_note(scenario, request) if scenario.name != "chat" else ""
        return [TextOut(note + answer(rng, scenario.topic, scenario.count or 60))]
    wanted = {"lookup": 1, "parallel": scenario.count or 3, "research": scenario.count or 3}
    remaining = wanted[scenario.name] - len(results)
    # tool_choice "required" obliges a call on every response, as the real API does.
    if remaining <= 0 and request.tool_choice != "required":
        return [TextOut(summary(rng, scenario.topic, _findings(since)))]
    parallel = scenario.name == "parallel" and request.parallel_tool_calls
    batch = max(remaining, 1) if parallel else 1
    step = len(results) + 1
    return [_call(rng, tools, scenario.topic, step + i, user_text) for i in range(batch)]


def pick_scenario(user_text: str, request: ModelInput) -> Scenario:
    picked = str(request.metadata.get("sim_scenario", "")).strip()
    match = DIRECTIVE.match(f"/{picked} {user_text}" if picked else user_text)
    if match:
        name: ScenarioName = match.group(1).lower()  # type: ignore[assignment]
        count = int(match.group(2)) if match.group(2) else 0
        if name == "research":
            count = min(max(count, 1), MAX_RESEARCH_STEPS)
        topic = _topic(match.group(3) or (user_text if picked else ""))
        return Scenario(name, count, topic)
    topic = _topic(user_text)
    if not _callable_tools(request):
        return Scenario("chat", 0, topic)
    if request.tool_choice == "required" or isinstance(request.tool_choice, dict):
        return Scenario("lookup", 1, topic)
    names = [str(t["name"]) for t in request.tools if "name" in t]
    mentions = sum(1 for name in names if _mentions(user_text, name))
    if PARALLEL_WORDS.search(user_text) and len(names) > 1:
        return Scenario("parallel", min(len(names), 4), topic)
    if mentions or TOOL_WORDS.search(user_text):
        return Scenario("lookup", 1, topic)
    return Scenario("chat", 0, topic)


def _callable_tools(request: ModelInput) -> list[dict[str, Any]]:
    if request.tool_choice == "none":
        return []
    tools = [t for t in request.tools if t.get("type") == "function" and t.get("name")]
    choice = request.tool_choice
    if isinstance(choice, dict) and choice.get("type") == "function":
        tools = [t for t in tools if t["name"] == choice.get("name")] or tools
    return tools


def _mentioned_first(tools: list[dict[str, Any]], user_text: str) -> list[dict[str, Any]]:
    """Tools the user named come first, so "use get_time" calls get_time (and "calculate"
    the calculator)."""
    return sorted(tools, key=lambda tool: not _mentions(user_text, tool["name"]))


def _mentions(user_text: str, name: str) -> bool:
    """Whether the text names the tool, or a word of its name: a word of four letters or more
    sharing its first five letters ("calculate" for calculator, "note" for notes)."""
    text = user_text.lower().replace("_", " ")
    if name.replace("_", " ").lower() in text:
        return True
    words = WORD.findall(text)
    for part in WORD.findall(name.lower().replace("_", " ")):
        for word in words:
            size = min(5, len(part), len(word))
            if size >= 4 and word[:size] == part[:size]:
                return True
    return False


def _no_tools_note(scenario: Scenario, request: ModelInput) -> str:
    why = "tool use is off for this request" if request.tool_choice == "none" else "no tools"
    return f"I would answer this with tool calls ({scenario.name}), but {why}, so from memory: "


def _call(
    rng: random.Random, tools: list[dict[str, Any]], topic: str, step: int, user_text: str = ""
) -> CallOut:
    tool = tools[(step - 1) % len(tools)]
    args = arguments(tool.get("parameters"), rng, topic, step)
    _use_what_the_user_wrote(args, tool.get("parameters"), user_text)
    call_id = f"call_{rng.getrandbits(96):024x}"
    return CallOut(call_id, tool["name"], json.dumps(args, separators=(",", ":")))


def _use_what_the_user_wrote(args: dict[str, Any], schema: Any, user_text: str) -> None:
    """Arguments the user's message spells out, where the schema takes any string: the
    arithmetic it holds as an ``expression`` ("calculate 17*23+4" calculates 17*23+4), the zone
    of a city it names as a ``timezone`` ("what time is it in Tokyo?": Asia/Tokyo)."""
    properties = schema.get("properties") if isinstance(schema, dict) else None
    if not isinstance(properties, dict):
        return
    arithmetic = ARITHMETIC.search(user_text)
    wanted = {
        "expression": arithmetic.group(0).strip() if arithmetic else None,
        **dict.fromkeys(("timezone", "zone", "tz"), _named_zone(user_text)),
    }
    for name, value in wanted.items():
        field = properties.get(name)
        if value is None or name not in args or not isinstance(field, dict):
            continue
        plain = field.get("type") == "string" and set(field) <= PLAIN_STRING_KEYS
        if plain and field.get("minLength", 0) <= len(value) <= field.get("maxLength", len(value)):
            args[name] = value


@cache
def _zones_by_city() -> dict[str, str]:
    """IANA zones by their city, lowercased, words joined by spaces ("new york")."""
    zones: dict[str, str] = {}
    for zone in sorted(available_timezones()):
        area, _, city = zone.rpartition("/")
        if area and area not in ("Etc", "SystemV", "US"):
            zones.setdefault(city.replace("_", " ").lower(), zone)
    return zones


def _named_zone(user_text: str) -> str | None:
    words = WORD.findall(user_text.lower())
    zones = _zones_by_city()
    for size in (3, 2, 1):  # "Port of Spain" before "Spain"
        for start in range(len(words) - size + 1):
            found = zones.get(" ".join(words[start : start + size]))
            if found:
                return found
    return None


def _findings(items: list[Item]) -> list[tuple[str, str]]:
    names = {i["call_id"]: i["name"] for i in items if i.get("type") == "function_call"}
    found = []
    for item in items:
        if item.get("type") == "function_call_output":
            output = item["output"]
            text = output if isinstance(output, str) else json.dumps(output)
            found.append((names.get(item["call_id"], "tool"), text))
    return found


def _last_user_message(items: list[Item]) -> tuple[int, str]:
    for index in range(len(items) - 1, -1, -1):
        item = items[index]
        if item.get("type") == "message" and item.get("role") == "user":
            text = " ".join(p.get("text", "") for p in item["content"] if "text" in p)
            return index, text
    return -1, ""


def _topic(text: str) -> str:
    words = LEAD_IN.sub("", text.strip()).rstrip("?.!").split()
    topic = " ".join(words[:12])
    return topic if count_tokens(topic) else "your question"

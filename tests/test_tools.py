"""The tools: the safe calculator, the built-ins, and the executor that answers function calls."""

from __future__ import annotations

import ast
import asyncio
import builtins
import json
import math
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from agents.models import Note, Session, Tool
from agents.tools import calculator
from agents.tools.builtins import BUILTINS, MAX_NOTE_CHARS, Builtin, ToolError
from agents.tools.calculator import MAX_EXPRESSION_CHARS, CalculatorError, calculate
from agents.tools.executor import (
    DECLINED,
    answer,
    parse_arguments,
    render_mock,
    schema_problem,
)
from tests.simserver import ROOT

ONLY_ARITHMETIC = "Only numbers"


async def run(name: str, args: dict[str, Any], session_id: str = "no-session") -> str:
    return await BUILTINS[name].run(session_id, args)


# -- the calculator --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("2+3*4", 14),
        ("(2+3)*4", 20),
        ("2 - 3 - 4", -5),
        ("2**3**2", 512),  # right-associative
        ("2^10", 1024),  # ^ is power, not xor
        ("-2^2", -4),
        ("-3 + +2", -1),
        ("7/2", 3.5),
        ("7//2", 3),
        ("-7//2", -4),
        ("7 % 3", 1),
        ("1.5 * 4", 6.0),
        ("2 ** -1", 0.5),
        ("1e3 + 1", 1001.0),
        ("sqrt(16)", 4.0),
        ("abs(-5)", 5),
        ("abs(-2.5)", 2.5),
        ("round(2.567, 2)", 2.57),
        ("round(2.5)", 2),
        ("min(3, 1, 2)", 1),
        ("max(3, 1, 2)", 3),
        ("log(e)", 1.0),
        ("log(8, 2)", 3.0),
        ("pi", math.pi),
        ("e", math.e),
        ("2*pi", 2 * math.pi),
        ("sqrt(2)^2", pytest.approx(2.0)),
        ("max(1, min(10, 2^3)) + sqrt(abs(-9))", 11.0),
    ],
)
def test_the_calculator_computes(expression: str, expected: Any) -> None:
    result = calculate(expression)
    assert result == expected
    assert type(result) is not bool


def test_floats_are_floats_and_ints_stay_exact() -> None:
    assert calculate("0.1 + 0.2") == pytest.approx(0.3)
    assert isinstance(calculate("0.1 + 0.2"), float)
    exact = calculate("2^100 + 1")
    assert exact == 2**100 + 1
    assert isinstance(exact, int)


@pytest.mark.parametrize(
    "expression",
    [
        "__import__('os')",
        "__import__('os').system('true')",
        "().__class__",
        "(1).__class__.__bases__",
        "x",
        "x + 1",
        "sqrt.__self__",
        "math.pi",
        "open",
        "exec('1')",
        "lambda: 1",
        "(lambda x: x)(1)",
        "[i for i in range(3)]",
        "sum(i for i in range(3))",
        "{i: i for i in range(3)}",
        "'abc'",
        "'a' * 3",
        "b'a'",
        "[1, 2]",
        "(1, 2)",
        "1 if 1 else 2",
        "1 < 2",
        "1 and 2",
        "~1",
        "not 1",
        "1 << 2",
        "1 | 2",
        "round(2.5, ndigits=1)",  # keyword arguments
        "max(*[1, 2])",
        "...",
        "None",
        "1j",
    ],
)
def test_the_calculator_refuses_anything_but_arithmetic(expression: str) -> None:
    with pytest.raises(CalculatorError, match=ONLY_ARITHMETIC) as refused:
        calculate(expression)
    # The message lists what is allowed, so the model can correct itself.
    assert "sqrt" in str(refused.value)
    assert "pi" in str(refused.value)


@pytest.mark.parametrize("expression", ["True", "False + 1", "sqrt(True)"])
def test_booleans_are_not_numbers(expression: str) -> None:
    with pytest.raises(CalculatorError, match="Booleans are not numbers"):
        calculate(expression)


def test_the_calculator_never_calls_eval(monkeypatch: pytest.MonkeyPatch) -> None:
    def forbidden(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError(f"the calculator called a forbidden builtin with {args!r}")

    monkeypatch.setattr(builtins, "eval", forbidden)
    monkeypatch.setattr(builtins, "exec", forbidden)
    monkeypatch.setattr(builtins, "open", forbidden)
    with pytest.raises(CalculatorError, match=ONLY_ARITHMETIC):
        calculate("open('/etc/passwd').read()")
    # And it still computes without them.
    assert calculate("1 + 2") == 3


def test_the_calculator_source_names_no_eval() -> None:
    tree = ast.parse(Path(calculator.__file__).read_text())
    names = {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}
    assert not names & {"eval", "exec", "compile", "__import__", "getattr"}


def test_huge_exponents_are_refused_quickly() -> None:
    started = time.perf_counter()
    with pytest.raises(CalculatorError, match="Exponents are limited to ±1000"):
        calculate("9**9**9")
    with pytest.raises(CalculatorError, match="Exponents are limited"):
        calculate("2 ^ -1001")
    assert time.perf_counter() - started < 1


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("9**999", "The result is too large"),  # an int of more than 1000 bits
        ("2**999 + 2**999", "The result is too large"),
        ("10.0 ** 400", "The result is too large"),  # a float overflow
        ("1e308 * 10", "The numbers are too large"),
        ("2**999 * 2", "The numbers are too large"),
        ("1e300 * 1e300", "not a finite number"),  # inf
        ("1e300*1e300 - 1e300*1e300", "not a finite number"),  # nan
        ("1e308 + 1e308", "not a finite number"),
    ],
)
def test_results_that_are_too_large_are_refused(expression: str, message: str) -> None:
    with pytest.raises(CalculatorError, match=message):
        calculate(expression)


@pytest.mark.parametrize("expression", ["1/0", "1//0", "1 % 0", "1.5 / 0.0", "0 ** -1"])
def test_division_by_zero_is_refused(expression: str) -> None:
    with pytest.raises(CalculatorError, match=r"^Division by zero\.$"):
        calculate(expression)


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("sqrt(-1)", r"^sqrt\(\): "),
        ("log(0)", r"^log\(\): "),
        ("max()", r"^max\(\): "),
        ("sqrt(1, 2)", r"^sqrt\(\): "),
    ],
)
def test_bad_function_arguments_are_refused(expression: str, message: str) -> None:
    with pytest.raises(CalculatorError, match=message):
        calculate(expression)


def test_over_long_expressions_are_refused() -> None:
    at_limit = "10" + "+1" * ((MAX_EXPRESSION_CHARS - 2) // 2)
    assert len(at_limit) == MAX_EXPRESSION_CHARS
    assert calculate(at_limit) == 10 + (MAX_EXPRESSION_CHARS - 2) // 2
    too_long = "1+" * (MAX_EXPRESSION_CHARS // 2) + "1"
    assert len(too_long) > MAX_EXPRESSION_CHARS
    with pytest.raises(CalculatorError, match=f"longer than {MAX_EXPRESSION_CHARS} characters"):
        calculate(too_long)


@pytest.mark.parametrize("expression", ["1 +", "(2", "2 * * 3", "", "1; 2", "x = 1", "import os"])
def test_syntax_errors_are_refused(expression: str) -> None:
    with pytest.raises(CalculatorError, match=r"^Cannot parse .* as arithmetic\.$"):
        calculate(expression)


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("log(10, 1)", r"^log\(\): "),  # a ZeroDivisionError inside math.log
        ("round(1e300 * 1e300)", r"^round\(\): "),  # an OverflowError inside round
        ("(-8) ^ (1/3)", "not a real number"),  # Python makes this complex
        ("(-1) ** 0.5", "not a real number"),
        ("sqrt((-1) ** 0.5)", "not a real number"),
    ],
)
def test_every_failure_inside_the_calculator_is_a_calculator_error(
    expression: str, message: str
) -> None:
    with pytest.raises(CalculatorError, match=message):
        calculate(expression)


async def test_answer_never_raises_out_of_a_builtin() -> None:
    tool = Tool(name="c", mode=Tool.Mode.BUILTIN, builtin="calculator", parameters={})
    output = await answer(tool, '{"expression": "log(10, 1)"}', "s", never_asked)
    assert output.startswith("Error: log(): "), output


def test_rounding_keeps_a_sane_number_of_digits() -> None:
    assert calculate("round(123.456, 2)") == 123.46
    assert calculate("round(1234, -2)") == 1200
    assert calculate("round(5, -10)") == 0
    with pytest.raises(CalculatorError, match=r"round\(\)"):
        calculate("round(1, 10^6)")


def test_rounding_to_a_huge_negative_precision_is_refused_quickly() -> None:
    # round(5, -10**9) would compute 10**(10**9): a CPU-bound hang inside one C call, which no
    # asyncio or pytest timeout can interrupt (the calculator runs on the event loop). So: a child
    # process, killed after a few seconds.
    code = (
        "from agents.tools.calculator import calculate, CalculatorError\n"
        "try:\n    calculate('round(5, -10**9)')\n"
        "except CalculatorError as exc:\n    print('refused:', exc)\n"
    )
    try:
        done = subprocess.run(
            [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=5
        )
    except subprocess.TimeoutExpired:
        pytest.fail("round(5, -10**9) was still computing after 5 s")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("refused: round()"), done.stdout


# -- current_time ----------------------------------------------------------------------------------

ISO_SECONDS = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d"


@pytest.mark.parametrize(
    ("zone", "offset"),
    [("Asia/Kolkata", "+05:30"), ("UTC", "+00:00"), ("Asia/Kathmandu", "+05:45")],
)
async def test_current_time_is_an_iso_timestamp_in_the_zone(zone: str, offset: str) -> None:
    output = await run("current_time", {"timezone": zone})
    assert re.fullmatch(ISO_SECONDS + re.escape(offset), output), output


async def test_current_time_defaults_to_utc() -> None:
    output = await run("current_time", {})
    assert re.fullmatch(ISO_SECONDS + r"\+00:00", output), output


@pytest.mark.parametrize("zone", ["Mars/Olympus_Mons", "../../etc/passwd", "Not a zone"])
async def test_an_unknown_zone_is_a_tool_error_naming_it(zone: str) -> None:
    with pytest.raises(ToolError, match="Unknown time zone") as refused:
        await run("current_time", {"timezone": zone})
    assert repr(zone) in str(refused.value)
    assert "IANA" in str(refused.value)


# -- notes -----------------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
async def test_notes_set_get_list_and_overwrite() -> None:
    session = await Session.objects.acreate(model="sim")
    sid = str(session.pk)
    assert await run("notes", {"action": "list"}, sid) == "[]"
    assert await run("notes", {"action": "set", "key": "b", "value": "two"}, sid) == (
        "Saved note 'b'."
    )
    await run("notes", {"action": "set", "key": "a", "value": "one"}, sid)
    assert await run("notes", {"action": "get", "key": "a"}, sid) == "one"
    assert await run("notes", {"action": "get", "key": "b"}, sid) == "two"
    assert json.loads(await run("notes", {"action": "list"}, sid)) == ["a", "b"]
    await run("notes", {"action": "set", "key": "a", "value": "uno"}, sid)
    assert await run("notes", {"action": "get", "key": "a"}, sid) == "uno"
    assert json.loads(await run("notes", {"action": "list"}, sid)) == ["a", "b"]
    assert await Note.objects.filter(session=session).acount() == 2


@pytest.mark.django_db(transaction=True)
async def test_notes_refuse_bad_requests() -> None:
    session = await Session.objects.acreate(model="sim")
    sid = str(session.pk)
    with pytest.raises(ToolError, match=r"^No note named 'missing'\.$"):
        await run("notes", {"action": "get", "key": "missing"}, sid)
    with pytest.raises(ToolError, match=r"^'set' needs a key\.$"):
        await run("notes", {"action": "set", "value": "v"}, sid)
    with pytest.raises(ToolError, match=r"^'get' needs a key\.$"):
        await run("notes", {"action": "get", "key": ""}, sid)
    with pytest.raises(ToolError, match="action must be one of set, get, list"):
        await run("notes", {"action": "delete", "key": "a"}, sid)
    assert not await Note.objects.filter(session=session).aexists()


@pytest.mark.django_db(transaction=True)
async def test_notes_are_limited_in_size() -> None:
    session = await Session.objects.acreate(model="sim")
    sid = str(session.pk)
    largest = "x" * MAX_NOTE_CHARS
    await run("notes", {"action": "set", "key": "big", "value": largest}, sid)
    assert await run("notes", {"action": "get", "key": "big"}, sid) == largest
    with pytest.raises(ToolError, match=f"limited to {MAX_NOTE_CHARS} characters"):
        await run("notes", {"action": "set", "key": "big", "value": largest + "y"}, sid)
    with pytest.raises(ToolError, match="limited to"):
        await run("notes", {"action": "set", "key": "other", "value": largest + "y"}, sid)
    # The refused write changed nothing.
    assert await run("notes", {"action": "get", "key": "big"}, sid) == largest
    assert json.loads(await run("notes", {"action": "list"}, sid)) == ["big"]


@pytest.mark.django_db(transaction=True)
async def test_notes_are_per_session() -> None:
    one = str((await Session.objects.acreate(model="sim")).pk)
    two = str((await Session.objects.acreate(model="sim")).pk)
    await run("notes", {"action": "set", "key": "k", "value": "one's"}, one)
    assert json.loads(await run("notes", {"action": "list"}, two)) == []
    with pytest.raises(ToolError, match="No note named 'k'"):
        await run("notes", {"action": "get", "key": "k"}, two)
    await run("notes", {"action": "set", "key": "k", "value": "two's"}, two)
    assert await run("notes", {"action": "get", "key": "k"}, one) == "one's"
    assert await run("notes", {"action": "get", "key": "k"}, two) == "two's"


# -- http_get --------------------------------------------------------------------------------------

BIG_BODY = b"0123456789" * 500  # 5,000 bytes


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path == "/endless":
            self.endless()
            return
        body = BIG_BODY if self.path == "/big" else b"hello from " + self.path.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def endless(self) -> None:
        """A body that never ends (HTTP/1.0, no length): 1 KB chunks until the client hangs up."""
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.end_headers()
        deadline = time.monotonic() + 10
        try:
            while time.monotonic() < deadline:
                self.wfile.write(b"z" * 1024)
                self.wfile.flush()
                time.sleep(0.001)
        except OSError:  # the client stopped reading and closed the connection
            pass

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def local_http() -> Iterator[str]:
    """A real HTTP server on a free local port, serving in a thread; its base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join(5)


@pytest.fixture
def allow_localhost(settings: Any) -> None:
    settings.TOOL_HTTP_ALLOWED_HOSTS = ["127.0.0.1"]


async def test_http_get_allows_no_host_by_default() -> None:
    with pytest.raises(ToolError) as refused:
        await run("http_get", {"url": "https://example.com/"})
    message = str(refused.value)
    assert "'example.com' is not allowed" in message
    assert "allowed hosts: none" in message


async def test_http_get_names_the_allowed_hosts(settings: Any) -> None:
    settings.TOOL_HTTP_ALLOWED_HOSTS = ["api.example.org", "127.0.0.1"]
    with pytest.raises(ToolError) as refused:
        await run("http_get", {"url": "http://evil.example.net/steal"})
    message = str(refused.value)
    assert "'evil.example.net' is not allowed" in message
    assert "allowed hosts: api.example.org, 127.0.0.1." in message


@pytest.mark.usefixtures("allow_localhost")
@pytest.mark.parametrize(
    "url", ["file:///etc/passwd", "ftp://127.0.0.1/x", "127.0.0.1/x", "", "http:///nohost"]
)
async def test_http_get_refuses_a_non_http_url(url: str) -> None:
    with pytest.raises(ToolError, match=r"must be an absolute http\(s\) URL"):
        await run("http_get", {"url": url})


@pytest.mark.usefixtures("allow_localhost")
async def test_http_get_fetches_from_an_allowed_host(local_http: str) -> None:
    output = await run("http_get", {"url": f"{local_http}/hi?x=1"})
    assert output == "HTTP 200\n\nhello from /hi?x=1"


@pytest.mark.usefixtures("allow_localhost")
async def test_http_get_cuts_a_large_body_at_the_limit(local_http: str, settings: Any) -> None:
    settings.TOOL_OUTPUT_LIMIT = 1000
    output = await run("http_get", {"url": f"{local_http}/big"})
    # The whole output, header included, fits the limit (the executor refuses anything longer).
    header = "HTTP 200\n\n"
    assert output == header + BIG_BODY[: 1000 - len(header)].decode()
    assert len(output) == 1000


@pytest.mark.usefixtures("allow_localhost")
async def test_http_get_stops_reading_an_endless_body(local_http: str, settings: Any) -> None:
    settings.TOOL_OUTPUT_LIMIT = 3000
    started = time.perf_counter()
    output = await asyncio.wait_for(run("http_get", {"url": f"{local_http}/endless"}), 5)
    assert output == "HTTP 200\n\n" + "z" * (3000 - len("HTTP 200\n\n"))
    assert time.perf_counter() - started < 3


@pytest.mark.usefixtures("allow_localhost")
async def test_http_get_times_out_on_a_silent_server(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("agents.tools.builtins.HTTP_TIMEOUT", 0.5)
    with socket.socket() as silent:  # accepts connections (the backlog), never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(4)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/slow"
        started = time.perf_counter()
        with pytest.raises(ToolError, match=r"failed: \w*Timeout") as refused:
            await run("http_get", {"url": url})
        elapsed = time.perf_counter() - started
    assert f"GET {url} failed" in str(refused.value)
    assert 0.4 < elapsed < 5


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.usefixtures("allow_localhost")
async def test_http_get_reports_a_refused_connection() -> None:
    url = f"http://127.0.0.1:{free_port()}/"
    with pytest.raises(ToolError, match=r"failed: ConnectError\.$") as refused:
        await run("http_get", {"url": url})
    assert f"GET {url} failed" in str(refused.value)


@pytest.mark.usefixtures("allow_localhost")
async def test_a_large_page_reaches_the_model_cut_not_as_an_error(
    local_http: str, settings: Any
) -> None:
    settings.TOOL_OUTPUT_LIMIT = 1000
    tool = Tool(name="fetch", mode=Tool.Mode.BUILTIN, builtin="http_get")
    output = await answer(tool, json.dumps({"url": f"{local_http}/big"}), "s", never_asked)
    assert output.startswith("HTTP 200\n\n0123456789"), output[:200]
    assert len(output) == 1000


# -- schema_problem --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]},
        {"type": "object", "properties": {}},
        {},  # "type" defaults to object
        BUILTINS["notes"].parameters,
    ],
)
def test_a_valid_object_schema_has_no_problem(schema: Any) -> None:
    assert schema_problem(schema) is None


@pytest.mark.parametrize("schema", [[], "object", None, 3, [{"type": "object"}]])
def test_a_schema_must_be_a_json_object(schema: Any) -> None:
    assert schema_problem(schema) == "The parameters must be a JSON object (a JSON Schema)."


def test_an_invalid_schema_says_where() -> None:
    problem = schema_problem({"type": "object", "properties": {"a": {"type": "nonsense"}}})
    assert problem is not None
    assert problem.startswith("Not a valid JSON Schema at properties/a/type: ")
    assert "'nonsense'" in problem
    problem = schema_problem({"type": "object", "required": "a"})
    assert problem is not None
    assert problem.startswith("Not a valid JSON Schema at required: ")


@pytest.mark.parametrize("kind", ["string", "array", "integer", "null"])
def test_the_parameters_must_be_an_object_schema(kind: str) -> None:
    problem = schema_problem({"type": kind})
    assert problem is not None
    assert "must be an object schema" in problem


# -- parse_arguments and render_mock ---------------------------------------------------------------

NESTED = Tool(
    name="nested",
    mode=Tool.Mode.MOCK,
    parameters={
        "type": "object",
        "properties": {
            "city": {"type": "string"},
            "where": {
                "type": "object",
                "properties": {"lat": {"type": "number"}},
                "required": ["lat"],
            },
        },
        "required": ["city"],
        "additionalProperties": False,
    },
)


def test_parse_arguments_returns_matching_arguments() -> None:
    arguments = {"city": "Paris", "where": {"lat": 48.85}}
    assert parse_arguments(NESTED, json.dumps(arguments)) == arguments


def test_parse_arguments_treats_empty_as_an_empty_object() -> None:
    assert parse_arguments(Tool(name="t", parameters={}), "") == {}
    with pytest.raises(ToolError, match="'city' is a required property"):
        parse_arguments(NESTED, "")


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ('{"city": ', r"^The arguments are not valid JSON: '\{\"city\": '\.$"),
        ("[1, 2]", r"^The arguments must be a JSON object\.$"),
        ('"Paris"', r"^The arguments must be a JSON object\.$"),
        ("null", r"^The arguments must be a JSON object\.$"),
        ('{"city": 3}', r"at city: 3 is not of type 'string'"),
        ('{"city": "P", "where": {"lat": "north"}}', r"at where/lat: 'north' is not of type"),
        ('{"city": "P", "where": {}}', r"at where: 'lat' is a required property"),
        ("{}", r"at the arguments: 'city' is a required property"),
        ('{"city": "P", "zip": 1}', r"at the arguments: Additional properties .*'zip'"),
    ],
)
def test_parse_arguments_says_what_is_wrong_and_where(raw: str, message: str) -> None:
    with pytest.raises(ToolError, match=message):
        parse_arguments(NESTED, raw)


def test_parse_arguments_quotes_at_most_200_characters_of_bad_json() -> None:
    with pytest.raises(ToolError) as refused:
        parse_arguments(NESTED, "{" + "x" * 1000)
    assert len(str(refused.value)) < 300


def test_render_mock_fills_placeholders() -> None:
    template = "{{city}}|{{ temp }}|{{where}}|{{flag}}|{{none}}|{{missing}}|{{list}}|{x}"
    arguments = {
        "city": 'Saint-Étienne "Stéphanois"',
        "temp": 21.5,
        "where": {"lat": 45.4},
        "flag": True,
        "none": None,
        "list": [1, "a"],
    }
    assert render_mock(template, arguments) == (
        'Saint-Étienne "Stéphanois"|21.5|{"lat": 45.4}|true|null||[1, "a"]|{x}'
    )


def test_render_mock_does_not_expand_placeholders_inside_arguments() -> None:
    assert render_mock("{{a}} {{b}}", {"a": "{{b}}", "b": "B"}) == "{{b}} B"
    assert render_mock("no placeholders", {"a": 1}) == "no placeholders"


# -- answer ----------------------------------------------------------------------------------------


class Asked:
    """An AskHuman that records what it was asked and gives canned answers."""

    def __init__(self, **answers: str) -> None:
        self.answers = answers
        self.kinds: list[str] = []

    async def __call__(self, kind: str) -> str:
        self.kinds.append(kind)
        return self.answers[kind]


async def never_asked(kind: str) -> str:
    raise AssertionError(f"nobody should be asked for {kind!r}")


class Recorder:
    """A fake built-in's run: records its calls, optionally sleeps, returns a fixed output."""

    def __init__(self, output: str = "ran", sleep: float = 0.0) -> None:
        self.output, self.sleep = output, sleep
        self.calls: list[tuple[str, dict[str, Any]]] = []

    async def __call__(self, session_id: str, arguments: dict[str, Any]) -> str:
        self.calls.append((session_id, arguments))
        if self.sleep:
            await asyncio.sleep(self.sleep)
        return self.output


@pytest.fixture
def fake_builtin(monkeypatch: pytest.MonkeyPatch) -> Recorder:
    """Replace the executor's built-ins with one, ``fake``, that records its calls."""
    recorder = Recorder()
    fake = Builtin("fake", "A fake.", {"type": "object", "properties": {}}, recorder)
    monkeypatch.setattr("agents.tools.executor.BUILTINS", {"fake": fake})
    return recorder


def builtin_tool(builtin: str, **fields: Any) -> Tool:
    parameters = BUILTINS[builtin].parameters if builtin in BUILTINS else {"type": "object"}
    return Tool(
        name=builtin, mode=Tool.Mode.BUILTIN, builtin=builtin, parameters=parameters, **fields
    )


async def test_answer_without_a_tool_is_an_error() -> None:
    assert await answer(None, "{}", "s", never_asked) == (
        "Error: there is no tool of that name in this session."
    )


async def test_answer_runs_a_builtin() -> None:
    tool = builtin_tool("calculator")
    assert await answer(tool, '{"expression": "2^10 + 1"}', "s", never_asked) == "1025"


async def test_answer_passes_the_session_and_arguments(fake_builtin: Recorder) -> None:
    tool = builtin_tool("fake")
    assert await answer(tool, '{"n": 1}', "session-7", never_asked) == "ran"
    assert fake_builtin.calls == [("session-7", {"n": 1})]


async def test_a_tool_error_becomes_the_output() -> None:
    tool = builtin_tool("calculator")
    assert await answer(tool, '{"expression": "1/0"}', "s", never_asked) == (
        "Error: Division by zero."
    )
    output = await answer(tool, '{"expression": "__import__(\'os\')"}', "s", never_asked)
    assert output.startswith("Error: Only numbers")


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("{not json", "Error: The arguments are not valid JSON"),
        ("[]", "Error: The arguments must be a JSON object."),
        (
            '{"expression": 12}',
            "Error: The arguments do not match the tool's schema at expression:",
        ),
        (
            "{}",
            "Error: The arguments do not match the tool's schema at the arguments: 'expression'",
        ),
        ('{"expression": "1", "x": 2}', "Error: The arguments do not match the tool's schema at"),
    ],
)
async def test_bad_arguments_become_the_output(raw: str, message: str) -> None:
    output = await answer(builtin_tool("calculator"), raw, "s", never_asked)
    assert output.startswith(message), output


async def test_bad_arguments_never_reach_the_builtin(fake_builtin: Recorder) -> None:
    tool = Tool(
        name="fake",
        mode=Tool.Mode.BUILTIN,
        builtin="fake",
        parameters={"type": "object", "properties": {"n": {"type": "integer"}}},
        requires_approval=True,
    )
    output = await answer(tool, '{"n": "one"}', "s", never_asked)
    assert output.startswith("Error: The arguments do not match the tool's schema at n:")
    assert fake_builtin.calls == []


async def test_an_unknown_builtin_is_an_error() -> None:
    tool = builtin_tool("teleport")
    assert await answer(tool, "{}", "s", never_asked) == (
        "Error: The built-in 'teleport' does not exist on this server."
    )


async def test_a_mock_renders_its_output() -> None:
    tool = Tool(
        name="weather",
        mode=Tool.Mode.MOCK,
        parameters={"type": "object", "properties": {"city": {"type": "string"}}},
        mock_output='{"city": "{{city}}", "days": {{days}}}',
    )
    assert await answer(tool, '{"city": "Oslo"}', "s", never_asked) == '{"city": "Oslo", "days": }'


async def test_output_over_the_limit_is_an_error(settings: Any) -> None:
    settings.TOOL_OUTPUT_LIMIT = 50
    tool = Tool(name="echo", mode=Tool.Mode.MOCK, parameters={}, mock_output="{{text}}")
    assert await answer(tool, json.dumps({"text": "y" * 50}), "s", never_asked) == "y" * 50
    output = await answer(tool, json.dumps({"text": "y" * 51}), "s", never_asked)
    assert output == "Error: the tool's output (51 characters) is over the limit of 50."


async def test_a_slow_builtin_times_out(fake_builtin: Recorder, settings: Any) -> None:
    fake_builtin.sleep = 10
    settings.TOOL_TIMEOUT_SECONDS = 0.2
    started = time.perf_counter()
    output = await answer(builtin_tool("fake"), "{}", "s", never_asked)
    elapsed = time.perf_counter() - started
    assert output == "Error: The tool took longer than 0.2 s."
    assert len(fake_builtin.calls) == 1
    assert 0.15 < elapsed < 3


async def test_a_manual_tool_asks_for_its_output() -> None:
    tool = Tool(name="human", mode=Tool.Mode.MANUAL, parameters={})
    ask = Asked(output="typed by a person")
    assert await answer(tool, '{"q": "?"}', "s", ask) == "typed by a person"
    assert ask.kinds == ["output"]


async def test_a_manual_tool_is_asked_only_with_valid_arguments() -> None:
    tool = Tool(
        name="human", mode=Tool.Mode.MANUAL, parameters={"type": "object", "required": ["q"]}
    )
    assert (await answer(tool, "{}", "s", never_asked)).startswith("Error: ")


async def test_a_declined_approval_does_not_run_the_tool(fake_builtin: Recorder) -> None:
    ask = Asked(approval="no")
    output = await answer(builtin_tool("fake", requires_approval=True), "{}", "s", ask)
    assert output == DECLINED
    assert ask.kinds == ["approval"]
    assert fake_builtin.calls == []


async def test_only_yes_approves(fake_builtin: Recorder) -> None:
    ask = Asked(approval="")
    tool = builtin_tool("fake", requires_approval=True)
    assert await answer(tool, "{}", "s", ask) == DECLINED
    assert fake_builtin.calls == []


async def test_an_approved_tool_runs(fake_builtin: Recorder) -> None:
    ask = Asked(approval="yes")
    output = await answer(builtin_tool("fake", requires_approval=True), '{"a": 1}', "s", ask)
    assert output == "ran"
    assert ask.kinds == ["approval"]
    assert fake_builtin.calls == [("s", {"a": 1})]


async def test_an_approved_manual_tool_asks_twice() -> None:
    tool = Tool(name="human", mode=Tool.Mode.MANUAL, parameters={}, requires_approval=True)
    ask = Asked(approval="yes", output="done")
    assert await answer(tool, "{}", "s", ask) == "done"
    assert ask.kinds == ["approval", "output"]

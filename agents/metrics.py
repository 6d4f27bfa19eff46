"""This process's Prometheus metrics, each defined once, in prometheus_client's default registry.

``/metrics`` serves them (playground/metrics_view.py); docs/metrics.md says what each means and
deploy/grafana-dashboard.json draws them. Every process has its own registry: Prometheus scrapes
each daphne on its own port. Nothing here is touched per delta (the data path relays thousands a
second): the code counts per socket, per step, per run and per fan-out batch.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram, disable_created_metrics

# No ``_created`` series (a timestamp beside every counter and histogram): the text format
# Prometheus scrapes has no use for them, and they would double the series.
disable_created_metrics()  # type: ignore[no-untyped-call]  # unannotated in the library

# A step's mode (agents/upstream/turn.py): a warm-up (generate: false), a full-context create,
# or a delta on the socket's chain.
STEP_MODES = ("warm", "create", "delta")
# What went wrong upstream: the upgrade answered an HTTP status; the connection could not be
# made or broke (dropped, closed, silent); or an error event, as the agent loop sorts it
# (agents/run/retry.py error_kind).
ERROR_KINDS = ("refused", "connection", "cache_miss", "connection_limit", "retryable", "other")
# How a session got a new upstream connection to go on with: a step tried again after the
# connection broke, a socket replaced at the upstream's connection limit, the fallback to HTTP,
# a make-before-break rotation.
RECONNECT_KINDS = ("retry", "connection_limit", "fallback", "rotation")
# Seconds; around FANOUT_INTERVAL_MS (25 ms by default), which bounds a batch's wait.
FANOUT_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)

BROWSER_SOCKETS = Gauge(
    "playground_browser_sockets",
    "Browser WebSockets open on this process (session, compare and share-viewer sockets).",
)
WARM_SESSIONS = Gauge(
    "playground_warm_upstream_sessions",
    "Sessions this process runs whose upstream WebSocket is open.",
)
RUNS_IN_FLIGHT = Gauge(
    "playground_runs_in_flight",
    "Agent loops running on this process (a compare runs one per column).",
)
LEASES_HELD = Gauge(
    "playground_leases_held",
    "Session leases this process holds and renews: the sessions it runs.",
)
UPSTREAM_STEPS = Counter(
    "playground_upstream_steps",
    "response.create requests sent upstream, by mode (warm, create, delta).",
    ["mode"],
)
UPSTREAM_BYTES_SENT = Counter(
    "playground_upstream_bytes_sent",
    "Bytes of response.create requests sent upstream.",
)
UPSTREAM_INPUT_TOKENS = Counter(
    "playground_upstream_input_tokens",
    "Input tokens the upstream reported for completed responses.",
)
UPSTREAM_CACHED_TOKENS = Counter(
    "playground_upstream_cached_tokens",
    "Of those input tokens, the ones the upstream read from its cache: "
    "rate(cached) / rate(input) is the cache hit ratio.",
)
UPSTREAM_ERRORS = Counter(
    "playground_upstream_errors",
    "Upstream failures, by kind.",
    ["kind"],
)
UPSTREAM_RECONNECTS = Counter(
    "playground_upstream_reconnects",
    "New upstream connections a session made to go on after a failure or at its age limit, "
    "by kind.",
    ["kind"],
)
FANOUT_BATCH_SECONDS = Histogram(
    "playground_fanout_batch_seconds",
    "From a feed event's arrival to its batch reaching the channel layer for tabs on other "
    "processes: the wait for FANOUT_INTERVAL_MS and the Redis writes.",
    buckets=FANOUT_BUCKETS,
)
OUTBOX_RESYNCS = Counter(
    "playground_outbox_resyncs",
    "Browser sockets so far behind that their queue was dropped for a fresh snapshot.",
)

# Every label value from the start: a series at 0 rather than none until its first event, so a
# dashboard's rate() has something to draw and an alert something to compare.
for mode in STEP_MODES:
    UPSTREAM_STEPS.labels(mode=mode)
for kind in ERROR_KINDS:
    UPSTREAM_ERRORS.labels(kind=kind)
for kind in RECONNECT_KINDS:
    UPSTREAM_RECONNECTS.labels(kind=kind)

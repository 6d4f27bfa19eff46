"""Dev-only helpers for the tests and the benchmark, never imported by the app.

``devtools.processes`` starts the child processes (the simulator, daphne as ``make run`` starts
it, redis-server, nginx) with one environment and one readiness check; ``devtools.tabs`` is the
browser tab on a session's socket, in this process or over a real WebSocket; ``devtools.page``
is the page its frames build.
"""

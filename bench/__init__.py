"""The benchmark suite (``manage.py bench``): the playground against direct clients and raw servers.

Every scenario starts its own simulator and playground (daphne) as separate processes on loopback,
drives the playground as a browser does, measures its baseline in the same run, and reports rows
of value, baseline, ratio and target (``bench.results``).
"""

"""Fakes of the services casstore talks to, for the fast test tier and the benchmarks.

They live under ``tests/`` on purpose: the wheel users install never holds them,
so no user's remote can end up on a fake by accident (a ``mem://`` URL in a
config file names no transport outside a test or benchmark process).
"""

"""Helpers shared by test modules.

A test module never imports another test module: what two of them share lives here (plain
functions and fixtures) or in tests/conftest.py (fixtures every module sees).
"""

"""Commit trailers (objects/trailers.py): written and read in one place, as whole lines."""

from __future__ import annotations

from casstore.objects.trailers import format_trailers, has_trailer, parse_trailers, trailer_line
from casstore.remote.sync import _merge_message


def test_trailers_round_trip_and_keep_the_message_bytes() -> None:
    text = "model d/v1\n\nmodel=sklearn\n\n" + format_trailers({"Domain": "d", "Model": "v1", "Created": "2026"})
    assert text == "model d/v1\n\nmodel=sklearn\n\nCas-Domain: d\nCas-Model: v1\nCas-Created: 2026\n"
    assert parse_trailers(text.encode()) == {"Cas-Domain": "d", "Cas-Model": "v1", "Cas-Created": "2026"}
    assert trailer_line("Event", "commit") == "Cas-Event: commit"
    # the merge message of a pull, byte for byte what earlier versions wrote
    assert _merge_message("u", ["a", "b"]) == "merge u\n\nCas-Event: merge\nCas-Remote: u\nCas-Conflicts: a b\n"
    assert _merge_message("u", []) == "merge u\n\nCas-Event: merge\nCas-Remote: u\n"


def test_a_trailer_is_a_whole_line() -> None:
    msg = b"commit v1\n\nCas-Event: commit-ish\nCas-Model: v1\n"
    assert not has_trailer(msg, "Cas-Event", "commit")
    assert has_trailer(b"x\n\nCas-Event: commit\n", "Cas-Event", "commit")
    assert has_trailer(b"x\n\nCas-Event: commit", "Cas-Event", "commit")  # no newline at the end

"""History events: their kinds, the ``Event`` a ``log`` shows, and their commit messages and trailers."""

from __future__ import annotations

import time
from dataclasses import dataclass

from dulwich.objects import Commit, ObjectID

from ...objects.trailers import parse_trailers, trailer_line

EVENTS = ("commit", "delete", "state-set", "state-unset", "merge", "layout",
          "note", "tag", "untag")  # notes and tags: notes.py (they leave the index as it is)
#: events that change no model's record, only the history (not shown by ``log``)
QUIET_EVENTS = ("merge", "layout")


@dataclass
class Event:
    """One entry of ``store.log``."""

    event: str
    model_id: str
    model_commit: str
    history_commit: str
    author: str
    time: int
    state: str | None = None
    frameworks: str = ""
    summary: str = ""

    def as_dict(self) -> dict[str, object]:
        return {
            "event": self.event, "model_id": self.model_id, "model_commit": self.model_commit,
            "history_commit": self.history_commit, "author": self.author,
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.time)),
            "state": self.state, "frameworks": self.frameworks, "summary": self.summary,
        }


def _one_line(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def event_message(event: str, model_id: str, model_commit: ObjectID, state: str | None,  # noqa: PLR0913 - the event's fields and its two kinds of trailers
             trailers: dict[str, str], raw: dict[str, str] | None = None) -> bytes:
    title = f"{event} {model_id}" + (f" {state}" if state else "")
    lines = [title, "", trailer_line("Event", event), trailer_line("Model", model_id),
             trailer_line("Commit", model_commit.decode())]
    if state:
        lines.append(trailer_line("State", state))
    for k, v in trailers.items():
        if v:
            lines.append(trailer_line(k, _one_line(v)))
    for k, v in (raw or {}).items():  # kept whole: the caller made it one line
        assert "\n" not in v and "\r" not in v and v.isascii()
        lines.append(trailer_line(k, v))
    return ("\n".join(lines) + "\n").encode()


def parse_event(c: Commit) -> Event:
    trailers = parse_trailers(c.message)
    return Event(
        event=trailers.get("Cas-Event", "unknown"),
        model_id=trailers.get("Cas-Model", ""),
        model_commit=trailers.get("Cas-Commit", ""),
        history_commit=c.id.decode(),
        author=c.author.decode("utf-8", "replace"),
        time=c.author_time,
        state=trailers.get("Cas-State"),
        frameworks=trailers.get("Cas-Frameworks", ""),
        summary=trailers.get("Cas-Summary", ""),
    )

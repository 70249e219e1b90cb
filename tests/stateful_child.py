"""The operations test_stateful.py runs in a child process and SIGKILLs.

A small fork server: ``serve()`` imports casstore, its remotes and boto3 once,
then forks one child per command it reads, so a child is ready in milliseconds
and the random delay before the kill times the operation, not Python's start-up.

Protocol, one JSON line per command on stdin: ``{"fifo": path, "env": {...},
"args": {...}}``.  The server answers with the child's pid on one line, and after
the child ended with its wait status on another.  The child writes ``ready`` to
the fifo just before the operation starts, then ``done <json result>`` or
``error <json traceback>``.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from typing import IO, Any

import boto3  # noqa: F401  (imported here, not by a child in the middle of its operation)

import casstore
import casstore.frameworks.model_file  # noqa: F401
import casstore.ops.gc  # noqa: F401
import casstore.remote.s3  # noqa: F401
import casstore.remote.sync  # noqa: F401


def _operation(out: IO[str], args: dict[str, Any]) -> None:
    store = casstore.Store(args["store"])
    out.write("ready\n")
    out.flush()
    op, result = args["op"], {}
    if op == "commit":
        result = {"commit": store.commit_models(args["domain"], model=args["file"],
                                                model_id=args["model_id"])["commit"]}
    elif op == "delete":
        store.delete_model(args["domain"], args["model_id"])
    elif op == "state-set":
        store.create_model_state(args["state"])
        store.set_model_state(args["domain"], args["model_id"], args["state"])
    elif op == "gc":
        store.gc(grace_period=0)
    elif op in ("push", "pull"):
        result = getattr(store, op)(args["url"]).as_dict()
    else:
        raise ValueError(f"unknown operation {op!r}")
    out.write("done " + json.dumps(result) + "\n")
    out.flush()


def _child(cmd: dict[str, Any]) -> int:
    # a process group of its own: the test waits for helpers it started (git-receive-pack
    # for a path remote) to finish after the kill
    os.setsid()
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(null, 1)  # stdout is the server's answer channel
    os.environ.clear()
    os.environ.update(cmd["env"])  # the server kept the environment of the test that started it
    with open(cmd["fifo"], "w") as out:
        try:
            _operation(out, cmd["args"])
        except BaseException:
            out.write("error " + json.dumps(traceback.format_exc()) + "\n")
            return 1
    return 0


def serve() -> None:
    for line in sys.stdin:
        cmd = json.loads(line)
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                code = _child(cmd)
            finally:
                os._exit(code)
        print(pid, flush=True)
        _, status = os.waitpid(pid, 0)
        print(status, flush=True)


if __name__ == "__main__":
    serve()

"""The server-side hook that `cas init --bare` installs: casstore's ref rules, enforced by git.

git servers accept a force-overwrite or deletion of any ``refs/cas/*`` ref
(``receive.denyNonFastForwards`` covers only ``refs/heads``), and they accept
any ref name git itself allows.  A careless or hostile client -- stock ``git
push --force`` is enough -- could replace a history, delete a model, or leave a
ref that makes every later ``cas pull`` and ``cas push`` of that remote fail.
The ``pre-receive`` hook sees every ref update of a push together (an
``update`` hook sees one at a time, and could not tell a recorded deletion from
a bare one) and refuses the whole push, so no ref moves, if any update under
``refs/cas/`` breaks a rule:

* ``refs/cas/domains/<domain>`` (a history) and ``refs/cas/states`` only
  fast-forward (the new commit contains the old one) and are never deleted;
* a history's new commits (every commit the server's histories did not already
  reach, the tip included) have trees of the domain-index shape only:
  ``models/<d1>/.../<dk>/<id>`` gitlinks whose directories (1-2 hex digits
  each) spell a prefix of the ID's key (indextree.key_of; ``k = 0`` is the flat
  layout of older stores, ``models/<xx>/<id>`` their 256-shard one) and
  ``states/<state>/<id>`` gitlinks (``LAYOUT_AWK``); the state list's tip
  tree holds one blob per state name;
* ``refs/cas/models/<domain>/<id>`` is created only if, after the push, the
  domain's history lists the ID under ``models/`` as a gitlink to exactly the new model
  commit, whose tree holds ``manifest`` and ``files`` only; it is deleted only
  if the same push moves the history to one that no longer lists the ID; an
  existing model ref never moves;
* a history commit of a note, tag or untag event (kept apart in the script) has its
  parent's tree, is at most 128 KiB, and tags with a valid name;
* the manifest-name check (kept apart in the script): a model ref is created only
  if its commit's manifest names that ref's domain and ID (a ref aliasing another
  model's commit would make every ``cas pull`` of the remote refuse it);
* domains, IDs and state names follow casstore's naming rule (names.py), models
  are exactly two levels under ``models/`` and histories one under
  ``domains/``; nothing else under ``refs/cas/`` is accepted.

Refs outside ``refs/cas/`` are left to git's own rules.  Every message goes to
stderr (git relays it to the pusher as ``remote: casstore: ...``) and names the
ref and the rule.

The hook is POSIX ``sh``, ``awk`` and git plumbing, so it runs wherever git
does and never needs casstore or a particular Python on the server.  It works
on a remote created with plain ``git init --bare`` too: copy the file
``casstore/remote/hooks/pre-receive`` (package data, installed beside this module) into
the remote's ``hooks/`` and make it executable; ``install_hook`` writes the same bytes.
"""

from __future__ import annotations

import os
import re
import sys
from importlib import resources

import msgpack
from dulwich.config import ConfigFile

from ..model.manifest import SCHEMA, VERSION
from ..util.fsutil import atomic_file

_HOOKS = resources.files(__package__) / "hooks"


def _hook_file(name: str) -> str:
    return (_HOOKS / name).read_text(encoding="utf-8")


def _shell_value(script: str, name: str) -> str:
    """The value of ``name='...'`` (single-quoted, at the start of a line) in ``script``."""
    m = re.search(rf"^{name}='([^']*)'", script, re.MULTILINE)
    if m is None:
        raise ValueError(f"the hook sets no {name}='...'")
    return m.group(1)


#: The ``pre-receive`` hook script (POSIX sh), the file ``hooks/pre-receive`` beside this
#: module, installed as it is.
PRE_RECEIVE = _hook_file("pre-receive")

#: casstore's naming rule as an awk function ``valid(name)`` (the hook's ``names``);
#: tests/test_hook.py checks it against ``check_name`` on the same inputs.
NAME_AWK = _shell_value(PRE_RECEIVE, "names")
#: indextree.key_of as an awk function ``key(id, L)`` (the hook's ``key``); tests/test_indextree.py
#: checks it against ``key_of``.
KEY_AWK = _shell_value(PRE_RECEIVE, "key")
#: The history-layout rule as an awk program (the hook's ``layout``), using ``valid`` and ``key``.
LAYOUT_AWK = _shell_value(PRE_RECEIVE, "layout")

#: How every manifest casstore writes begins, as hex (manifest.Manifest.encode): an
#: 11-entry map, then ``schema``, ``version`` and the key ``domain`` (MANIFEST_HEAD),
#: the domain's name, the key ``model_id`` (MANIFEST_MID), the ID.  The hook's
#: manifest-name check compares a new model's manifest with it (its ``manifest_head`` and
#: ``manifest_mid``, which tests/test_hook.py checks equal these).
MANIFEST_HEAD = (b"\x8b" + b"".join(msgpack.packb(v) for v in ("schema", SCHEMA, "version", VERSION, "domain"))).hex()
MANIFEST_MID = msgpack.packb("model_id").hex()

#: The ``post-receive`` hook (POSIX sh), the file ``hooks/post-receive`` beside this module:
#: once more than ``cas.autoPacks`` (default AUTO_PACKS, its ``auto_packs``) pushed packs
#: accumulate, it merges them in the background with the Python named in its ``py=''`` line,
#: which ``install_hook`` fills in (post_receive); left empty, as a plain copy leaves it, the
#: hook does nothing.
POST_RECEIVE = _hook_file("post-receive")


def post_receive(python: str) -> str:
    """The ``post-receive`` hook that merges with ``python`` (a path)."""
    quoted = python.replace("'", "'\\''")  # inside sh's single quotes
    head, sep, tail = POST_RECEIVE.partition("\npy=''\n")
    if not sep:
        raise ValueError("the post-receive hook has no py='' line")
    return f"{head}\npy='{quoted}'\n{tail}"


# -- on the client: what the hook said ----------------------------------------------

_PREFIX = "casstore: "


def hook_messages(sideband: bytes) -> dict[str, list[str]]:
    """The hook's refusals in what a remote sent on git's progress channel, by ref name.

    git relays a hook's stderr to the pusher there, and marks every ref of a refused
    push with the same "pre-receive hook declined"; only these lines say why.
    """
    out: dict[str, list[str]] = {}
    for line in sideband.decode("utf-8", "replace").replace("\r", "\n").splitlines():
        line = line.strip()
        if line.startswith("remote: "):
            line = line[len("remote: "):]
        if not line.startswith(_PREFIX):
            continue
        ref, sep, rule = line[len(_PREFIX):].partition(": ")
        if sep:
            out.setdefault(ref, []).append(rule)
    return out


def explain_rejection(ref: str, reason: str, messages: dict[str, list[str]]) -> str:
    """The reason a remote gave for refusing ``ref``, with the hook's own words.

    A pre-receive hook refuses a whole push: refs it had nothing against are
    reported with the refs that caused the refusal.
    """
    if "hook declined" not in reason or not messages:
        return reason
    if ref in messages:
        return f"{'; '.join(messages[ref])} (refused by the server's casstore hook)"
    return f"{reason}: the server's casstore hook refused the whole push because of {', '.join(sorted(messages))}"


def _is_ours(hook: str) -> bool:
    """Whether the file ``hook`` is a casstore hook, of any version (its second line says so)."""
    try:
        with open(hook, errors="replace") as f:
            f.readline()
            return f.readline().startswith("# casstore:")
    except (FileNotFoundError, IsADirectoryError):
        return False


def install_hook(path: str, allowed_signers: str | None = None) -> list[str]:
    """Make the repository at ``path`` a shared remote: the hooks, and no non-fast-forwards.

    ``allowed_signers``: also refuse pushes of commits not signed by a key of this file
    (git's allowed signers format; the hook reads it at each push).  Idempotent: a hook
    missing, or from another casstore version, is written; one as this casstore writes it
    is left alone.  Returns the names of the hooks written.

    Raises:
        FileExistsError: a hook that is not casstore's (a user's own) is there; nothing changed.
    """
    hooks = {"pre-receive": PRE_RECEIVE, "post-receive": post_receive(sys.executable)}
    for name in hooks:
        hook = os.path.join(path, "hooks", name)
        if os.path.lexists(hook) and not _is_ours(hook):
            raise FileExistsError(f"{hook}: a {name} hook that is not casstore's is there, left as it is: move it "
                                  f"away (or merge casstore/remote/hooks/{name} into it), then run this again")
    cfg_path = os.path.join(path, "config")
    cfg = ConfigFile.from_path(cfg_path)
    cfg.set((b"receive",), b"denyNonFastForwards", b"true")
    if allowed_signers is not None:
        cfg.set((b"cas",), b"hookAllowedSigners", os.path.abspath(allowed_signers).encode())
    cfg.write_to_path(cfg_path)
    os.makedirs(os.path.join(path, "hooks"), exist_ok=True)
    written = []
    for name, text in hooks.items():
        hook = os.path.join(path, "hooks", name)
        try:
            with open(hook) as f:
                if f.read() == text and os.access(hook, os.X_OK):
                    continue
        except FileNotFoundError:
            pass
        with atomic_file(hook, 0o755) as out:  # a push never runs half a hook
            out.write(text.encode())
        written.append(name)
    return written

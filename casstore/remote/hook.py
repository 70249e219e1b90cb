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
on a remote created with plain ``git init --bare`` too: copy ``PRE_RECEIVE``
into ``hooks/pre-receive`` and make it executable.
"""

from __future__ import annotations

import os
import sys

import msgpack
from dulwich.config import ConfigFile

from ..model.manifest import SCHEMA, VERSION
from ..ops.adopt import AUTO_PACKS

#: casstore's naming rule (casstore/util/names.py) as an awk function ``valid(name)``:
#: ASCII letters, digits, ``-``, ``_`` and ``.``; 1 to 128 characters; no leading
#: ``.``, no trailing ``.`` or ``.lock``, no ``..``.  Run under ``LC_ALL=C`` so
#: that ranges and lengths are bytes.  tests/test_hook.py checks it against
#: ``check_name`` on the same inputs.
NAME_AWK = (
    "function valid(n) {"
    " return n ~ /^[A-Za-z0-9._-]+$/ && length(n) <= 128"
    " && n !~ /^[.]/ && n !~ /[.]$/ && n !~ /[.]lock$/ && n !~ /[.][.]/"
    " }"
)

#: indextree.key_of as an awk function ``key(id, L)``: the first ``L`` (at most 10) of the
#: hex digits whose prefixes are the directories of ``models/<d1>/.../<dk>/<id>``; only
#: what ``L`` needs is computed (the second hash only past 2 digits).  IDs are printable ASCII (checked by
#: ``valid``), so a table of printable characters serves as ``ord``; every intermediate
#: value stays below 2**53, where awk's numbers are exact.  tests/test_indextree.py checks
#: it against ``key_of``.
KEY_AWK = (
    "function key(n, L,  i, c, h, g, x, d, s) {"
    " if (!ord_ready) { for (i = 32; i < 127; i++) ord[sprintf(\"%c\", i)] = i; ord_ready = 1 }"
    " h = 0; g = 0;"
    " if (L <= 2) for (i = 1; i <= length(n); i++) h = (h * 131 + ord[substr(n, i, 1)]) % 1000003;"
    " else for (i = 1; i <= length(n); i++) {"
    " c = ord[substr(n, i, 1)]; h = (h * 131 + c) % 1000003; g = (g * 256 + c) % 4294967291 }"
    " s = sprintf(\"%02x\", h % 256); if (L <= 2) return substr(s, 1, L);"
    " x = (g * 40503 + h) % 4294967291;"
    " for (i = 2; i < L; i++) { d = x % 16; s = s substr(\"0123456789abcdef\", d + 1, 1); x = (x - d) / 16 }"
    " return s"
    " }"
)

#: The history-layout rule as an awk program over lines of ``git ls-tree -r -t`` and of
#: ``git log --raw -t`` (after "commit <sha>" lines): every entry of a history tree is
#: ``models`` or ``states`` (trees); under ``models/``, directories of 1 or 2 lowercase
#: hex digits (10 digits at most down any path) and gitlinks ``models/<d1>/.../<dk>/<id>``
#: where ``d1...dk`` is a prefix of ``key(id)`` (docs/format.md, "Index layout": the flat
#: and 256-shard layouts of older stores follow the same rule); ``states/<state>/<id>``
#: gitlinks.  One line at a time, whatever the depth.  Prints the first offending entry.
LAYOUT_AWK = r"""
/^commit / { at = $2; next }
{
    tab = index($0, "\t")
    if (!tab) next
    meta = substr($0, 1, tab - 1); path = substr($0, tab + 1)
    split(meta, f, " ")
    if (substr(meta, 1, 1) == ":") { if (f[5] == "D") next; mode = f[2] } else mode = f[1]
    n = split(path, p, "/")
    if (n == 1) ok = (path == "models" || path == "states") && mode == "040000"
    else if (p[1] == "models") {
        pre = ""; ok = 1
        for (j = 2; j < n; j++) { if (p[j] !~ /^[0-9a-f][0-9a-f]?$/) ok = 0; pre = pre p[j] }
        if (mode == "160000")
            ok = ok && valid(p[n]) && length(pre) <= 10 && (pre == "" || key(p[n], length(pre)) == pre)
        else
            ok = ok && mode == "040000" && p[n] ~ /^[0-9a-f][0-9a-f]?$/ && length(pre p[n]) <= 10
    }
    else if (n == 2 && p[1] == "states") ok = mode == "040000" && valid(p[2])
    else if (n == 3 && p[1] == "states") ok = mode == "160000" && valid(p[2]) && valid(p[3])
    else ok = 0
    if (!ok) { print "commit " at " has " path " (mode " mode ")"; exit }
}"""

_SCRIPT = r"""#!/bin/sh
# casstore: enforce the ref rules of a casstore remote (installed by `cas init --bare`;
# see casstore/remote/hook.py).  Any refusal refuses the whole push: no ref moves.
LC_ALL=C
export LC_ALL
names='@NAME_AWK@'
key='@KEY_AWK@'
fail=0
updates=$(cat)

refuse() {  # refuse REF RULE
    printf 'casstore: %s: %s\n' "$1" "$2" >&2
    fail=1
}

is_zero() {  # an all-zero object id: the ref is created (old) or deleted (new)
    case $1 in *[!0]*) return 1 ;; esac
    return 0
}

pushed() {  # pushed REF: the new value this push gives REF, empty if it leaves REF alone
    printf '%s\n' "$updates" | awk -v r="$1" '$3 == r { print $2 }'
}

is_commit() {  # is_commit REF SHA WHAT
    [ "$(git cat-file -t "$2" 2>/dev/null)" = commit ] && return 0
    refuse "$1" "$3 must be a commit ($2 is not)"
    return 1
}

# Domain-index shape (LAYOUT_AWK in casstore/remote/hook.py): prints the first offending entry.
shape_awk="$names $key"'@LAYOUT_AWK@'

fast_forward() {  # fast_forward REF OLD NEW WHAT: never deleted, a commit, only forwards
    if is_zero "$3"; then
        refuse "$1" "$4 is never deleted"
        return 1
    fi
    is_commit "$1" "$3" "$4" || return 1
    if ! is_zero "$2" && ! git merge-base --is-ancestor "$2" "$3" 2>/dev/null; then
        refuse "$1" "$4 only fast-forwards: $3 does not contain $2 (pull, then push)"
        return 1
    fi
}

check_history() {  # check_history REF OLD NEW
    fast_forward "$1" "$2" "$3" "a domain history" || return
    # Every commit no history on this server reaches yet: `cas pull` parses all of them,
    # so one malformed commit would break every later pull of this remote.  A commit whose
    # changes against a parent are well-formed has a well-formed tree when that parent
    # does, and every history here was checked when it was pushed: so the changes are
    # enough, and a push costs what its events changed, not the size of the index.  A tip
    # that some history here already reaches is read whole (it was checked as another
    # domain's, or pushed before this hook).
    bad=$( { if [ -z "$(git rev-list -n 1 "$3" --not --glob=refs/cas/domains 2>/dev/null)" ]; then
                 echo "commit $3"
                 git ls-tree -r -t "$3"
             fi
             git -c log.showSignature=false log --no-color --no-renames --format='commit %H' \
                 -m -t --raw --no-abbrev --root "$3" --not --glob=refs/cas/domains
           } | awk "$shape_awk")
    [ -z "$bad" ] ||
        refuse "$1" "$bad: a history tree holds only models/<d1>/.../<dk>/<id> gitlinks (d1...dk hex \
digits, a prefix of the ID's key) and states/<state>/<id> gitlinks, validly named and sharded"
}

check_states() {  # check_states REF OLD NEW
    fast_forward "$1" "$2" "$3" "the state list" || return
    bad=$(git ls-tree "$3" | awk "$names"'{
        tab = index($0, "\t"); split(substr($0, 1, tab - 1), f, " "); path = substr($0, tab + 1)
        if (f[1] != "100644" || !valid(path)) { print path " (mode " f[1] ")"; exit } }')
    [ -z "$bad" ] || refuse "$1" "commit $3 has $bad: the state list's tree holds one blob per valid state name"
}

check_models() {  # every model ref update of the push at once, from $models: "old new ref domain id"
    # A push may carry thousands of models: a fixed number of git processes per domain
    # and one `git cat-file --batch-check` for all new models, joined by one awk.
    bad=$( {
        for d in $(printf '%s\n' "$models" | awk '{ print $4 }' | sort -u); do
            href=refs/cas/domains/$d
            moved=$(pushed "$href")
            hist=${moved:-$(git rev-parse -q --verify "$href" 2>/dev/null)}
            echo "history $d ${moved:--}"
            # the history after the push: its models/ gitlinks, "160000 commit <sha>\tmodels/[<d1>/.../]<id>"
            [ -z "$hist" ] || git ls-tree -r "$hist" -- models/ 2>/dev/null | sed "s|^|listed $d |"
        done
        printf '%s\n' "$models" | sed 's/^/update /'
        # per new model: the commit, its tree (for the size), manifest, files
        printf '%s\n' "$models" | awk '$1 !~ /[^0]/ && $2 ~ /[^0]/ {
            print $2; print $2 "^{tree}"; print $2 ":manifest"; print $2 ":files" }' |
            git cat-file --batch-check='%(objecttype) %(objectsize)' | sed 's/^/object /'
    } | awk '
    $1 == "history" { moved[$2] = ($3 != "-"); next }
    $1 == "listed" {
        tab = index($0, "\t"); split(substr($0, 1, tab - 1), f, " ")
        path = substr($0, tab + 8); sub(/^.*\//, "", path)  # models/[<d1>/.../<dk>/]<id>: the ID
        listed[f[2] "/" path] = f[3] " " f[4] " " f[5]; next }
    $1 == "update" { n++; old[n] = $2; new[n] = $3; ref[n] = $4; dom[n] = $5; id[n] = $6; next }
    $1 == "object" { k++; type[k] = ($NF == "missing") ? "missing" : $2; size[k] = $3; next }
    END {
        k = 0
        for (i = 1; i <= n; i++) {
            href = "refs/cas/domains/" dom[i]
            entry = listed[dom[i] "/" id[i]]
            say = "casstore: " ref[i] ": "
            if (old[i] ~ /[^0]/ && new[i] ~ /[^0]/) {
                print say "an existing model never moves to another commit"
            } else if (new[i] !~ /[^0]/) {
                if (!moved[dom[i]] || entry != "")
                    print say "the domain history still lists it: a model is deleted only by a push that also " \
                        "moves " href " to a history without models/" id[i]
            } else {
                # A tree of exactly "40000 files" and "100644 manifest" is 12 + 16 bytes of
                # names and modes plus two binary object ids: nothing else fits in that size.
                ok = type[k + 1] == "commit" && type[k + 3] == "blob" && type[k + 4] == "tree" \
                    && size[k + 2] == 28 + length(new[i])
                k += 4
                if (!ok) print say "model commit " new[i] " must have a tree of '\''manifest'\'' and '\''files'\'' only"
                else if (entry != "160000 commit " new[i])
                    print say "a new model must be recorded in its domain history: after this push, " href \
                        " must list models/" id[i] " as a gitlink to " new[i]
            }
        }
    }')
    [ -z "$bad" ] || { printf '%s\n' "$bad" >&2; fail=1; }
}

# -- the manifest-name check (issue 20): kept apart from the rules above ------------------
# A model ref a push creates must point at a commit whose manifest names that ref's domain
# and ID: refs/cas/models/d/evil -> the commit of d/v1 would make every `cas pull` of this
# remote refuse it.  casstore writes a manifest as a msgpack map whose keys come in a fixed
# order (schema, version, domain, model_id, ...), and clients refuse a manifest with a key
# twice, so the first bytes decide: they must be that encoding of the ref's own names.
# One `git cat-file --batch` reads every new manifest; od turns it into hex for awk.
manifest_awk='
function enc(s,  i, h) {
    h = length(s) < 32 ? sprintf("%02x", 160 + length(s)) : "d9" sprintf("%02x", length(s))
    for (i = 1; i <= length(s); i++) h = h sprintf("%02x", ord[substr(s, i, 1)])
    return h
}
function judge() {
    if (got != want[k])
        print "casstore: " ref[k] ": its commit " sha[k] " holds a manifest of another model (or none): " \
            "a model ref points only at a commit whose manifest names its own domain and ID"
}
function byte(b,  h) {
    if (state == "body") {
        if (length(got) < length(want[k])) got = got b
        if (--left == 0) { judge(); state = "nl" }
    } else if (state == "nl") state = ""
    else if (b != "0a") hdr = hdr chr[b]
    else {  # "<oid> blob <size>" or "<name> missing"
        k++; split(hdr, h, " "); hdr = ""; got = ""
        if (h[2] == "missing") { judge(); return }
        left = h[3] + 0
        if (left == 0) { judge(); state = "nl" } else state = "body"
    }
}
BEGIN { for (i = 1; i < 256; i++) { ord[sprintf("%c", i)] = i; chr[sprintf("%02x", i)] = sprintf("%c", i) } }
$1 == "expect" { n++; ref[n] = $2; sha[n] = $3; want[n] = "@MANIFEST_HEAD@" enc($4) "@MANIFEST_MID@" enc($5); next }
$1 == "bytes" {
    for (j = 2; j <= NF; j++) {
        if (state == "body" && length(got) >= length(want[k])) {  # the rest of a manifest: skip it
            skip = NF - j + 1 < left ? NF - j + 1 : left
            left -= skip; j += skip - 1
            if (left == 0) { judge(); state = "nl" }
        } else byte($j)
    }
}'

check_manifest_names() {  # every new model ref of $models: its manifest names the ref's domain and ID
    new_models=$(printf '%s\n' "$models" | awk '$1 !~ /[^0]/ && $2 ~ /[^0]/')
    [ -n "$new_models" ] || return
    bad=$( {
        printf '%s\n' "$new_models" | awk '{ print "expect", $3, $2, $4, $5 }'
        printf '%s\n' "$new_models" | awk '{ print $2 ":manifest" }' |
            git cat-file --batch | od -An -v -tx1 | sed 's/^/bytes /'
    } | awk "$manifest_awk")
    [ -z "$bad" ] || { printf '%s\n' "$bad" >&2; fail=1; }
}
# -- end of the manifest-name check ---------------------------------------------------------

rule='names are ASCII letters, digits, "-", "_" and "." (1-128, no leading ".", no trailing "." or ".lock", no "..")'
jobs=$(printf '%s\n' "$updates" | awk "$names"'
NF == 3 && substr($3, 1, 9) == "refs/cas/" {
    rest = substr($3, 10)
    n = split(rest, p, "/")
    if (rest == "states") kind = "states"
    else if (p[1] == "domains") kind = (n == 2 && valid(p[2])) ? "history " p[2] : "badhistory"
    else if (p[1] == "models") kind = (n == 3 && valid(p[2]) && valid(p[3])) ? "model " p[2] " " p[3] : "badmodel"
    else kind = "other"
    print $1, $2, $3, kind
}')

while read -r old new ref kind domain id <&3; do
    [ -n "$ref" ] || continue
    case $kind in
    states) check_states "$ref" "$old" "$new" ;;
    history) check_history "$ref" "$old" "$new" ;;
    model) ;;  # all at once, below
    badhistory) refuse "$ref" "a domain history is refs/cas/domains/<domain>, one level; $rule" ;;
    badmodel) refuse "$ref" "a model ref is refs/cas/models/<domain>/<id>, exactly two levels; $rule" ;;
    *) refuse "$ref" "not a casstore ref: refs/cas/ holds only models/<domain>/<id>, domains/<domain> and states" ;;
    esac
done 3<<END_OF_JOBS
$jobs
END_OF_JOBS
models=$(printf '%s\n' "$jobs" | awk '$4 == "model" { print $1, $2, $3, $5, $6 }')
[ -z "$models" ] || check_models
[ -z "$models" ] || check_manifest_names

# -- notes and tags (casstore/model/notes.py): kept apart from the rules above ------------
# A history commit whose event is a note, a tag or an untag changes nothing but the history:
# its tree is its first parent's, it is at most 131072 bytes (a note holds at most 16 KiB
# of UTF-8, as a JSON string), and its tag is a valid name.
check_annotations() {  # check_annotations REF NEW: the new commits of one history
    bad=$(git -c log.showSignature=false log --no-color --format='%H %T %P' -E \
              --grep='^Cas-Event: (note|tag|untag)$' "$2" --not --glob=refs/cas/domains 2>/dev/null |
          while read -r c tree parent rest; do
              if [ -z "$parent" ] || [ "$(git rev-parse -q --verify "$parent^{tree}")" != "$tree" ]; then
                  echo "commit $c is a note or tag event that changes the domain index (its tree must be its parent's)"
                  break
              fi
              if [ "$(git cat-file -s "$c")" -gt 131072 ]; then
                  echo "commit $c is a note or tag event of more than 131072 bytes"
                  break
              fi
              t=$(git cat-file commit "$c" | sed -n 's/^Cas-Tag: //p' | head -n 1)
              if [ -n "$t" ] && ! printf '%s\n' "$t" | awk "$names"'{ exit !valid($0) }'; then
                  echo "commit $c tags with an invalid name"
                  break
              fi
          done)
    [ -z "$bad" ] || refuse "$1" "$bad"
}
while read -r ref new <&5; do
    [ -n "$ref" ] && check_annotations "$ref" "$new"
done 5<<END_OF_HISTORIES
$(printf '%s\n' "$jobs" | awk '$4 == "history" && $2 ~ /[^0]/ { print $3, $2 }')
END_OF_HISTORIES
# -- end of notes and tags --------------------------------------------------------------------

# Signatures (`cas init --bare --require-signed FILE`): every commit this push brings under
# refs/cas/ (models, history events, state lists) must verify, as `git verify-commit` does,
# against the allowed signers file in cas.hookAllowedSigners.
signers=$(git config cas.hookAllowedSigners)
if [ -n "$signers" ]; then
    tips=$(printf '%s\n' "$updates" | awk 'substr($3, 1, 9) == "refs/cas/" && $2 ~ /[^0]/ { print $2, $3 }')
    while read -r new ref <&4; do
        [ -n "$ref" ] || continue
        for c in $(git rev-list "$new" --not --all); do
            git -c gpg.ssh.allowedSignersFile="$signers" verify-commit "$c" >/dev/null 2>&1 ||
                refuse "$ref" "commit $c is not signed by a key of the allowed signers file $signers \
(the remote requires signed commits: \`cas config cas.signCommits true\`, docs/signing.md)"
        done
    done 4<<END_OF_TIPS
$tips
END_OF_TIPS
fi
exit $fail
"""

#: How every manifest casstore writes begins, as hex (manifest.Manifest.encode): an
#: 11-entry map, then ``schema``, ``version`` and the key ``domain`` (MANIFEST_HEAD),
#: the domain's name, the key ``model_id`` (MANIFEST_MID), the ID.  The hook's
#: manifest-name check compares a new model's manifest with it.
MANIFEST_HEAD = (b"\x8b" + b"".join(msgpack.packb(v) for v in ("schema", SCHEMA, "version", VERSION, "domain"))).hex()
MANIFEST_MID = msgpack.packb("model_id").hex()

#: The ``pre-receive`` hook script (POSIX sh).
PRE_RECEIVE = (_SCRIPT.replace("@NAME_AWK@", NAME_AWK).replace("@KEY_AWK@", KEY_AWK)
               .replace("@LAYOUT_AWK@", LAYOUT_AWK)
               .replace("@MANIFEST_HEAD@", MANIFEST_HEAD).replace("@MANIFEST_MID@", MANIFEST_MID))


#: The ``post-receive`` hook (POSIX sh): git keeps every push as the pack that arrived, so once
#: more than ``cas.autoPacks`` (default 16; 0: never) such packs accumulate, it merges them in
#: the background, like ``git gc --auto``, with the Python that installed it
#: (ops/adopt.merge_pushed: every object copied, safe beside pushes and pulls).  Where that
#: Python is gone it does nothing: run ``cas gc`` on the server instead (e.g. from cron).
#: Counting costs one directory listing; the push is not held up.
POST_RECEIVE = r"""#!/bin/sh
# casstore: merge the packs pushes leave (installed by `cas init --bare`; see casstore/remote/hook.py).
limit=$(git config --int cas.autoPacks 2>/dev/null || echo @AUTO_PACKS@)
[ "${limit:-0}" -gt 0 ] 2>/dev/null || exit 0
py='@PYTHON@'
[ -x "$py" ] || exit 0
n=0
for p in objects/pack/*.pack; do
    b=${p##*/}
    [ -e "$p" ] && [ ! -e "cas/chunkidx/${b%.pack}.cidx" ] && n=$((n + 1))
done
[ "$n" -gt "$limit" ] || exit 0
nohup "$py" -c 'import sys; from casstore.ops.adopt import merge_pushed_at; merge_pushed_at(".", int(sys.argv[1]))' \
    "$limit" </dev/null >/dev/null 2>&1 &
exit 0
"""


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


def install_hook(path: str, allowed_signers: str | None = None) -> None:
    """Make the repository at ``path`` a shared remote: the hook, and no non-fast-forwards.

    ``allowed_signers``: also refuse pushes of commits not signed by a key of this file
    (git's allowed signers format; the hook reads it at each push).
    """
    cfg_path = os.path.join(path, "config")
    cfg = ConfigFile.from_path(cfg_path)
    cfg.set((b"receive",), b"denyNonFastForwards", b"true")
    if allowed_signers is not None:
        cfg.set((b"cas",), b"hookAllowedSigners", os.path.abspath(allowed_signers).encode())
    cfg.write_to_path(cfg_path)
    hook = os.path.join(path, "hooks", "pre-receive")
    os.makedirs(os.path.dirname(hook), exist_ok=True)
    with open(hook, "w") as f:
        f.write(PRE_RECEIVE)
    os.chmod(hook, 0o755)
    post = os.path.join(path, "hooks", "post-receive")
    with open(post, "w") as f:
        python = sys.executable.replace("'", "'\\''")  # inside sh's single quotes
        f.write(POST_RECEIVE.replace("@AUTO_PACKS@", str(AUTO_PACKS)).replace("@PYTHON@", python))
    os.chmod(post, 0o755)

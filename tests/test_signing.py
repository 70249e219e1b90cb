"""Signed models: SSH signatures as git makes them, verified as git verify-commit does."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
from dulwich.objects import Commit

import casstore
from casstore import SigningError, UnsignedModelError
from casstore.errors import UnsignedModelWarning
from casstore.store import init_store
from casstore.util.sshsig import signature_key
from tests.conftest import assert_git_fsck, git
from tests.helpers.hostile import snapshot


def keygen(path: Path, comment: str) -> Path:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)], check=True)
    return path


@pytest.fixture
def keys(tmp_path: Path) -> dict[str, Path]:
    d = tmp_path / "keys"
    d.mkdir()
    ana, eve, old = keygen(d / "ana", "ana"), keygen(d / "eve", "eve"), keygen(d / "old", "old")
    allowed = d / "allowed_signers"
    allowed.write_text(
        f'ana@example.org namespaces="git" {(d / "ana.pub").read_text()}'
        # a key that was valid only until 2001: what it signs now is not trusted
        f'old@example.org namespaces="git",valid-before="20010101" {(d / "old.pub").read_text()}'
    )
    return {"ana": ana, "eve": eve, "old": old, "allowed": allowed}


def cas(*args: str, store: Path, check: int | None = 0) -> subprocess.CompletedProcess[str]:
    r = subprocess.run([sys.executable, "-m", "casstore", "--store", str(store), *args],
                       capture_output=True, text=True, timeout=120)
    if check is not None:
        assert r.returncode == check, (r.returncode, r.stdout, r.stderr)
    return r


def signing_store(path: Path, key: Path | None, allowed: Path | None, policy: str | None = None) -> casstore.Store:
    s = casstore.open(path)
    for k, v in (("cas.signCommits", "true" if key else None), ("cas.signingKey", str(key) if key else None),
                 ("cas.allowedSigners", str(allowed) if allowed else None), ("cas.requireSigned", policy)):
        if v is not None:
            git(path, "config", k, v)
    s.close()
    return casstore.open(path)


def model_file(tmp_path: Path, name: str, size: int = 50_000) -> str:
    f = tmp_path / name
    f.write_bytes(os.urandom(size))
    return str(f)


def test_signed_commit_is_what_git_verify_commit_accepts(tmp_path: Path, keys: dict[str, Path]) -> None:
    s = signing_store(tmp_path / "a", keys["ana"], keys["allowed"])
    info = s.commit_models("fraud", model=model_file(tmp_path, "m.bin"), model_id="v1")
    history = s.refs.get(b"refs/cas/domains/fraud")
    for sha in (info["commit"], history.decode()):
        r = git(s.path, "-c", f"gpg.ssh.allowedSignersFile={keys['allowed']}", "verify-commit", sha)
        assert r.returncode == 0, r.stderr
        assert 'Good "git" signature for ana@example.org' in r.stderr
    report = s.verify_model("fraud", "v1")
    assert report["ok"]
    assert report["models"][0]["signature"]["principal"] == "ana@example.org"
    assert report["models"][0]["signature"]["key"] == signature_key(
        s.odb.read(info["commit"].encode(), Commit).gpgsig)[1]
    assert [e["signature"]["status"] for e in report["events"]] == ["good"]
    assert_git_fsck(s.path)
    assert s.fsck().ok
    # the CLI says the same, and exits 0
    out = cas("verify", "fraud", store=tmp_path / "a").stdout
    assert "signed by ana@example.org (key SHA256:" in out and "ok: every" in out
    log = cas("log", "fraud", "--no-pager", store=tmp_path / "a").stdout
    assert "Signed:  signed by ana@example.org" in log
    show = cas("show", "fraud", "v1", store=tmp_path / "a").stdout
    assert "Signed:  signed by ana@example.org" in show


def test_every_history_event_is_signed(tmp_path: Path, keys: dict[str, Path]) -> None:
    s = signing_store(tmp_path / "a", keys["ana"], keys["allowed"])
    s.commit_models("fraud", model=model_file(tmp_path, "m.bin"), model_id="v1")
    s.create_model_state("production")
    s.set_model_state("fraud", "v1", "production")
    s.commit_models("fraud", model=model_file(tmp_path, "m2.bin"), model_id="v2")
    s.delete_model("fraud", "v2")
    events = s.verify_model("fraud")["events"]
    assert sorted(e["event"] for e in events) == ["commit", "commit", "delete", "state-set"]
    assert all(e["signature"]["status"] == "good" for e in events), events
    assert s.refs.get(b"refs/cas/states") is not None
    states = s.odb.read(s.refs.get(b"refs/cas/states"), Commit)
    assert states.gpgsig  # the state list's commits too


def test_untrusted_bad_expired_and_unsigned_are_told_apart(tmp_path: Path, keys: dict[str, Path]) -> None:
    s = signing_store(tmp_path / "a", None, keys["allowed"])
    s.commit_models("d", model=model_file(tmp_path, "0.bin"), model_id="plain")
    s.commit_models("d", model=model_file(tmp_path, "1.bin"), model_id="eve", sign=str(keys["eve"]))
    s.commit_models("d", model=model_file(tmp_path, "2.bin"), model_id="old", sign=str(keys["old"]))
    s.commit_models("d", model=model_file(tmp_path, "3.bin"), model_id="ana", sign=str(keys["ana"]))
    got = {m["model_id"]: m["signature"] for m in s.verify_model("d")["models"]}
    assert got["plain"]["status"] == "unsigned"
    assert got["eve"]["status"] == "untrusted" and "not in the allowed signers" in got["eve"]["detail"]
    assert got["old"]["status"] == "untrusted"  # valid-before 2001: expired at signing time
    assert got["ana"]["status"] == "good" and got["ana"]["principal"] == "ana@example.org"
    lines = cas("verify", "d", store=tmp_path / "a", check=1).stdout.splitlines()
    assert sorted(ln.split()[1] for ln in lines if ln.startswith("model ") and "untrusted" in ln) == ["d/eve", "d/old"]
    # git agrees on each
    for mid, ok in (("eve", False), ("old", False), ("ana", True)):
        sha = s.refs.get(f"refs/cas/models/d/{mid}".encode()).decode()
        r = git(s.path, "-c", f"gpg.ssh.allowedSignersFile={keys['allowed']}", "verify-commit", sha)
        assert (r.returncode == 0) is ok, (mid, r.stderr)


def test_policy_refuse_warn_off_for_load_and_download(tmp_path: Path, keys: dict[str, Path]) -> None:
    s = signing_store(tmp_path / "a", None, keys["allowed"], policy="refuse")
    s.commit_models("d", model=model_file(tmp_path, "u.bin"), model_id="unsigned")
    s.commit_models("d", model=model_file(tmp_path, "e.bin"), model_id="eve", sign=str(keys["eve"]))
    s.commit_models("d", model=model_file(tmp_path, "a.bin"), model_id="ana", sign=str(keys["ana"]))
    for mid, verdict in (("unsigned", "unsigned"), ("eve", "untrusted")):
        with pytest.raises(UnsignedModelError, match=f"d/{mid}.*{verdict}") as e:
            s.load("d", mid)
        assert e.value.model_id == mid
        with pytest.raises(UnsignedModelError):
            s.download(tmp_path / f"dl-{mid}", "d", mid)
        assert not (tmp_path / f"dl-{mid}").exists()
        with pytest.raises(UnsignedModelError):
            s.stream_file("d", mid, "u.bin" if mid == "unsigned" else "e.bin")
    assert os.path.isfile(s.load("d", "ana"))
    assert s.load("d", "unsigned", require_signed=False)  # the call overrides the store
    r = cas("download", "d", "eve", str(tmp_path / "cli"), store=tmp_path / "a", check=2)
    assert "not signed by an allowed key" in r.stderr and "SHA256:" in r.stderr
    git(tmp_path / "a", "config", "cas.requireSigned", "warn")
    w = casstore.open(tmp_path / "a")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert w.load("d", "eve")
    assert any(issubclass(c.category, UnsignedModelWarning) and "d/eve" in str(c.message) for c in caught)
    git(tmp_path / "a", "config", "cas.requireSigned", "off")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert casstore.open(tmp_path / "a").load("d", "eve")
        with pytest.raises(UnsignedModelError):
            casstore.open(tmp_path / "a").load("d", "eve", require_signed=True)


def test_domain_scoped_principals(tmp_path: Path, keys: dict[str, Path]) -> None:
    allowed = tmp_path / "scoped"
    allowed.write_text(f'fraud*:ana@example.org namespaces="git" {Path(str(keys["ana"]) + ".pub").read_text()}')
    s = signing_store(tmp_path / "a", keys["ana"], allowed)
    s.commit_models("fraud-eu", model=model_file(tmp_path, "f.bin"), model_id="v1")
    s.commit_models("churn", model=model_file(tmp_path, "c.bin"), model_id="v1")
    assert s.verify_model("fraud-eu", "v1")["models"][0]["signature"]["principal"] == "ana@example.org"
    churn = s.verify_model("churn", "v1")["models"][0]["signature"]
    assert churn["status"] == "untrusted" and "not allowed for domain 'churn'" in churn["detail"]
    with pytest.raises(UnsignedModelError):
        s.load("churn", "v1", require_signed=True)


def test_sign_without_a_key_fails_before_writing(tmp_path: Path) -> None:
    s = casstore.open(tmp_path / "a")
    with pytest.raises(SigningError, match="cas.signingKey"):
        s.commit_models("d", model=model_file(tmp_path, "m.bin"), model_id="v1", sign=True)
    git(tmp_path / "a", "config", "cas.signCommits", "true")
    git(tmp_path / "a", "config", "cas.signingKey", str(tmp_path / "nokey"))
    with pytest.raises(SigningError, match="no such file"):
        casstore.open(tmp_path / "a").commit_models("d", model=model_file(tmp_path, "m.bin"), model_id="v1")
    assert not s.model_exists("d", "v1")
    assert s.fsck().ok


def _tamper(s: casstore.Store, domain: str, mid: str) -> str:
    """Re-point a model ref at a copy of its commit whose message changed and whose signature was kept."""
    c = s.odb.read(s.refs.get(f"refs/cas/models/{domain}/{mid}".encode()), Commit)
    forged = Commit.from_string(c.as_raw_string().replace(f"model {domain}/{mid}".encode(),
                                                          f"model {domain}/{mid} (approved)".encode()))
    assert forged.gpgsig == c.gpgsig and forged.id != c.id
    sha = s.odb.write_loose(forged)
    git(s.path, "update-ref", f"refs/cas/models/{domain}/{mid}", sha.decode())
    return sha.decode()


def test_tampered_and_forged_signatures_are_bad(tmp_path: Path, keys: dict[str, Path]) -> None:
    s = signing_store(tmp_path / "a", keys["ana"], keys["allowed"])
    s.commit_models("d", model=model_file(tmp_path, "m.bin"), model_id="v1")
    sha = _tamper(s, "d", "v1")
    v = s.signature("d", sha)
    assert v.status == "bad", v
    assert git(s.path, "-c", f"gpg.ssh.allowedSignersFile={keys['allowed']}", "verify-commit", sha).returncode != 0
    c = s.odb.read(sha.encode(), Commit)
    c.gpgsig = b"-----BEGIN SSH SIGNATURE-----\nU1NIU0lHAAAAAQ==\n-----END SSH SIGNATURE-----"
    forged = s.odb.write_loose(c)
    assert s.signature("d", forged.decode()).status == "bad"


def test_two_machines_sign_push_and_require_signed_pull(tmp_path: Path, keys: dict[str, Path]) -> None:
    """A signs and pushes; B (refuse) pulls and loads; C's unsigned push is refused by the hook
    when it enforces signatures, and by B's pull when it does not; git agrees with cas verify."""
    strict = tmp_path / "strict.git"
    cas("init", "--bare", "--require-signed", str(keys["allowed"]), str(strict), store=tmp_path / "unused")
    lax = tmp_path / "lax.git"
    init_store(str(lax), bare_remote=True)
    a = signing_store(tmp_path / "a", keys["ana"], keys["allowed"])
    a.commit_models("fraud", model=model_file(tmp_path, "a.bin"), model_id="v1")
    assert a.push(str(strict)).ok and a.push(str(lax)).ok
    b = signing_store(tmp_path / "b", None, keys["allowed"], policy="refuse")
    assert b.pull(str(strict)).models_added == ["fraud/v1"]
    assert os.path.isfile(b.load("fraud", "v1"))
    assert cas("verify", "fraud", store=tmp_path / "b").returncode == 0
    for sha in (b.refs.get(b"refs/cas/models/fraud/v1"), b.refs.get(b"refs/cas/domains/fraud")):
        assert git(b.path, "-c", f"gpg.ssh.allowedSignersFile={keys['allowed']}", "verify-commit",
                   sha.decode()).returncode == 0

    c = casstore.open(tmp_path / "c")  # signs nothing
    assert c.pull(str(strict)).ok
    c.commit_models("fraud", model=model_file(tmp_path, "c.bin"), model_id="v2")
    refused = c.push(str(strict))
    assert not refused.ok and refused.rejected
    assert any("not signed by a key of the allowed signers file" in r for r in refused.rejected.values()), \
        refused.rejected
    assert git(strict, "rev-parse", "-q", "--verify", "refs/cas/models/fraud/v2").returncode != 0

    assert c.push(str(lax)).ok  # the lax remote takes it: B's pull must refuse it
    before = snapshot(b.path)
    with pytest.raises(UnsignedModelError, match="fraud/v2.*unsigned"):
        b.pull(str(lax))
    assert snapshot(b.path) == before
    r = cas("pull", str(lax), store=tmp_path / "b", check=2)
    assert "not signed by an allowed key" in r.stderr
    assert snapshot(b.path) == before
    # without the policy the same pull goes through, and `cas verify` names what is unsigned
    assert b.pull(str(lax), require_signed=False).models_added == ["fraud/v2"]
    v = cas("verify", "fraud", "v2", store=tmp_path / "b", check=1).stdout
    assert "unsigned" in v
    assert_git_fsck(b.path)


def test_tampered_commit_from_a_hostile_remote_is_refused(tmp_path: Path, keys: dict[str, Path]) -> None:
    a = signing_store(tmp_path / "a", keys["ana"], keys["allowed"])
    a.commit_models("d", model=model_file(tmp_path, "m.bin"), model_id="v1")
    b = signing_store(tmp_path / "b", None, keys["allowed"], policy="refuse")
    # the hostile side rewrites the signed model commit (message changed, signature kept)
    # and its history so that both stay consistent: everything but the signature verifies
    sha = _tamper(a, "d", "v1")
    from casstore.model.history import append_event

    def put(idx):  # type: ignore[no-untyped-def]
        idx.models["v1"] = sha.encode()

    append_event(a.odb, a.refs, "d", b"Eve <eve@example.org>", "commit", "v1", sha.encode(), put)
    before = snapshot(b.path)
    with pytest.raises(UnsignedModelError, match="BAD signature"):
        b.pull(str(tmp_path / "a"))
    assert snapshot(b.path) == before


def test_openssf_model_signing_round_trip(tmp_path: Path) -> None:
    """cas download --signature writes a signature `model_signing verify key` accepts with the
    same (ecdsa) key; cas commit --verify-signature checks one before storing a directory."""
    from cryptography.hazmat.primitives import serialization

    from casstore.util.modelsig import public_pem

    model_signing = os.path.join(os.path.dirname(sys.executable), "model_signing")
    key = tmp_path / "ec"
    subprocess.run(["ssh-keygen", "-q", "-t", "ecdsa", "-b", "256", "-N", "", "-C", "ana", "-f", str(key)],
                   check=True)
    pub = Path(str(key) + ".pub").read_text()
    (tmp_path / "pub.pem").write_bytes(public_pem(pub))
    allowed = tmp_path / "allowed"
    allowed.write_text(f'ana@example.org namespaces="git" {pub}')
    store = tmp_path / "s"
    signing_store(store, key, allowed).close()
    src = tmp_path / "saved_model"
    (src / "variables").mkdir(parents=True)
    (src / "saved_model.pb").write_bytes(os.urandom(40_000))
    (src / "variables" / "data").write_bytes(os.urandom(90_000))
    cas("commit", "d", str(src), "--id", "v1", store=store)
    out = tmp_path / "out"
    r = cas("download", "d", "v1", str(out), "--signature", store=store)
    sig = out / "model.sig"
    assert sig.is_file() and str(sig) in r.stdout
    check = [model_signing, "verify", "key", str(out), "--signature", str(sig),
             "--public_key", str(tmp_path / "pub.pem")]
    v = subprocess.run(check, capture_output=True, text=True, timeout=120)
    assert v.returncode == 0 and "Verification succeeded" in v.stdout + v.stderr, v.stdout + v.stderr
    # and casstore's own check agrees, with the signature inside the directory it covers
    assert casstore.open(store).check_model_signature(out, sig) == "ana@example.org"
    # one changed byte and model_signing refuses: the signature covers the files' contents
    data = out / "saved_model" / "variables" / "data"
    data.write_bytes(b"x" + data.read_bytes()[1:])
    assert subprocess.run(check, capture_output=True, timeout=120).returncode != 0

    # the other way: a directory signed with model_signing's own CLI is checked before it is stored
    pem = tmp_path / "ec.pem"
    from cryptography.hazmat.primitives.serialization import load_ssh_private_key

    pem.write_bytes(load_ssh_private_key(key.read_bytes(), None).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    signed = tmp_path / "model.sig"
    subprocess.run([model_signing, "sign", "key", str(src), "--private_key", str(pem), "--signature", str(signed)],
                   check=True, capture_output=True, timeout=120)
    r = cas("commit", "d", str(src), "--id", "v2", "--verify-signature", str(signed), store=store)
    assert "verified: signed by ana@example.org" in r.stdout
    (src / "saved_model.pb").write_bytes(b"tampered")
    r = cas("commit", "d", str(src), "--id", "v3", "--verify-signature", str(signed), store=store, check=2)
    assert "does not verify" in r.stderr
    assert not casstore.open(store).model_exists("d", "v3")
    # an ed25519 key is refused by name: model_signing takes elliptic-curve keys only
    ed = keygen(tmp_path / "ed", "ed")
    git(store, "config", "cas.signingKey", str(ed))
    r = cas("download", "d", "v1", str(tmp_path / "out2"), "--signature", store=store, check=2)
    assert "elliptic-curve keys only" in r.stderr


def test_cas_serve_shows_who_signed_and_refuses_under_refuse(tmp_path: Path, keys: dict[str, Path]) -> None:
    """The model page and API say who signed a model, the history page each event; under
    `cas.requireSigned refuse` serve's file downloads refuse an unsigned model (403, no bytes)."""
    from tests.helpers.serve import start_server, stop_server

    s = signing_store(tmp_path / "a", keys["ana"], keys["allowed"])
    s.commit_models("d", model=model_file(tmp_path, "a.bin"), model_id="signed")
    s.commit_models("d", model=model_file(tmp_path, "u.bin"), model_id="plain", sign=False)
    s.close()
    server = start_server(str(tmp_path / "a"))
    try:
        api = server.json("/api/domains/d/models/signed")
        assert api["signature"]["status"] == "good" and api["signature"]["principal"] == "ana@example.org"
        assert server.json("/api/domains/d/models/plain")["signature"]["status"] == "unsigned"
        _, _, page = server.request("GET", "/d/d/m/signed")
        assert b'class="sig sig-good"' in page and b"signed by ana@example.org" in page
        _, _, log = server.request("GET", "/d/d/log")
        assert log.count(b"sig sig-good") == 1 and log.count(b"sig sig-unsigned") == 1
    finally:
        stop_server(server)
    git(tmp_path / "a", "config", "cas.requireSigned", "refuse")
    server = start_server(str(tmp_path / "a"))
    try:
        st, _, body = server.request("GET", "/files/d/signed/a.bin")
        assert st == 200 and len(body) == 50_000
        st, _, body = server.request("GET", "/files/d/plain/u.bin")
        assert st == 403 and b"not signed by an allowed key" in body and len(body) < 5_000, (st, body[:300])
    finally:
        stop_server(server)

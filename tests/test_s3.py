"""S3-compatible object storage as a remote, against a real S3 server on loopback.

The scenarios every transport shares (dedup, merges, conflicts, deletions)
run on S3 too, in test_remote.py, and what every bucket remote shares
(conditional writes, racing pushes, a hostile bucket) in test_buckets.py; here:
the main round trip and what is particular to S3 -- keys outside refs/cas/, a
dead or dropping endpoint, the CLI, the cache of remote indexes.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

import casstore
from casstore.errors import RemoteError
from tests.conftest import assert_git_fsck, assert_s3_remote_fsck, bucket_refs, s3_client, s3_objects
from tests.helpers.stores import _commit_random, _stores
from tests.servers import dropping_proxy, free_port

MiB = 1 << 20


def _bucket_prefix(url: str) -> tuple[str, str]:
    bucket, _, prefix = url[len("s3://"):].partition("/")
    return bucket, prefix


def _put(url: str, key: str, data: bytes) -> None:
    bucket, prefix = _bucket_prefix(url)
    s3_client().put_object(Bucket=bucket, Key=f"{prefix}/{key}", Body=data)  # type: ignore[attr-defined]


def test_round_trip_s3(tmp_path: Path, s3_url: str, forest: tuple) -> None:
    clf, X = forest
    a, b = _stores(tmp_path)
    a.commit_models("fraud", model=clf, model_id="v1", extra_metadata={"auc": 0.9})
    events: list[tuple[str, int, int]] = []
    a.progress = lambda label, done, total: events.append((label, done, total))
    result = a.push(s3_url)
    uploads = [e for e in events if e[0] == "uploading"]
    assert uploads and uploads[-1][1] == uploads[-1][2] > 0  # the bar reaches the pack's size
    assert result.ok and result.models_added == ["fraud/v1"], result
    keys = s3_objects(s3_url)
    assert "casstore-remote" in keys and "refs/cas/models/fraud/v1" in bucket_refs(s3_url)
    assert len([k for k in keys if k.endswith(".pack")]) == 1
    result = b.pull(s3_url)
    assert result.ok and result.models_added == ["fraud/v1"], result
    np.testing.assert_array_equal(b.load("fraud", "v1").predict_proba(X), clf.predict_proba(X))
    assert b.get_model_info("fraud", "v1") == a.get_model_info("fraud", "v1")
    assert [e.model_id for e in b.log("fraud")] == ["v1"]
    # nothing new: no upload, no download
    assert a.push(s3_url).objects == 0
    again = b.pull(s3_url)
    assert again.ok and again.bytes == 0 and not again.models_added
    for s in (a, b):
        assert_git_fsck(s.path)
        assert s.fsck(read_data=True).ok
    assert_s3_remote_fsck(s3_url)


def test_keys_outside_refs_cas_are_ignored(tmp_path: Path, s3_url: str) -> None:
    """A bucket shared with other tools: refs/heads/... is not casstore's, whatever it holds."""
    a, b = _stores(tmp_path)
    _commit_random(a, tmp_path / "one.bin", 1000, "one")
    assert a.push(s3_url).ok
    _put(s3_url, "refs/heads/main", b"not an object id")
    _commit_random(a, tmp_path / "two.bin", 1000, "two")
    assert a.push(s3_url).models_added == ["d/two"]
    assert sorted(b.pull(s3_url).models_added) == ["d/one", "d/two"]
    assert s3_objects(s3_url)["refs/heads/main"] == b"not an object id"


def test_dead_endpoint_is_a_clear_error(tmp_path: Path, s3_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    a, _ = _stores(tmp_path)
    _commit_random(a, tmp_path / "m.bin", 5, "m")
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", f"http://127.0.0.1:{free_port()}")
    with pytest.raises(RemoteError, match=r"s3://.*(?i:connect)"):
        a.push(s3_url)
    with pytest.raises(RemoteError):
        a.pull(s3_url)
    assert a.fsck().ok


def test_missing_bucket_bad_url_and_newer_format_are_clear_errors(tmp_path: Path, s3_url: str) -> None:
    a, _ = _stores(tmp_path)
    with pytest.raises(RemoteError, match="NoSuchBucket"):
        a.pull("s3://no-such-bucket-here/x")
    with pytest.raises(RemoteError, match="not an S3 URL"):
        a.pull("s3:///no-bucket")
    _put(s3_url, "casstore-remote", b"casstore-remote 99\n")
    with pytest.raises(RemoteError, match="newer casstore"):
        a.pull(s3_url)
    _commit_random(a, tmp_path / "m.bin", 10, "m")
    with pytest.raises(RemoteError, match="newer casstore"):
        a.push(s3_url)
    assert "refs/cas/models/d/m" not in bucket_refs(s3_url)


def test_dropped_connection_then_retry(tmp_path: Path, s3_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    a, b = _stores(tmp_path)
    data = os.urandom(8 * MiB)
    (tmp_path / "big").write_bytes(data)
    a.commit_models("d", model=str(tmp_path / "big"), model_id="big")
    assert a.push(s3_url).ok
    endpoint = os.environ["AWS_ENDPOINT_URL_S3"]
    with dropping_proxy(int(endpoint.rsplit(":", 1)[1]), limit=2 * MiB, limit_up=2 * MiB) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL_S3", f"http://127.0.0.1:{proxy}")
        with pytest.raises(RemoteError):
            b.pull(s3_url)
        assert b.list_domains() == []
        assert os.listdir(os.path.join(b.path, "cas", "tmp")) == []
        assert os.listdir(os.path.join(b.path, "objects", "pack")) == []
        # a push cut off mid-upload moves no ref
        (tmp_path / "big2").write_bytes(os.urandom(8 * MiB))
        a.commit_models("d", model=str(tmp_path / "big2"), model_id="big2")
        with pytest.raises(RemoteError):
            a.push(s3_url)
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", endpoint)
    assert "refs/cas/models/d/big2" not in bucket_refs(s3_url)
    assert sorted(b.pull(s3_url).models_added) == ["d/big"]
    assert a.push(s3_url).models_added == ["d/big2"]
    assert b.pull(s3_url).models_added == ["d/big2"]
    assert Path(b.load("d", "big")).read_bytes() == data
    assert_s3_remote_fsck(s3_url)


def test_named_s3_remote_with_the_cli(tmp_path: Path, s3_url: str) -> None:
    from tests.conftest import run_py

    a, _ = _stores(tmp_path)
    _commit_random(a, tmp_path / "m.bin", 5000, "m")
    cli = "import sys; from casstore.cli import main; sys.exit(main(sys.argv[1:]))"
    env = {"CAS_STORE": a.path}
    assert run_py(cli, "remote", "add", "origin", s3_url, env=env).returncode == 0
    r = run_py(cli, "push", "origin", env=env)
    assert r.returncode == 0, r.stderr
    r = run_py(cli, "pull", s3_url, env={"CAS_STORE": str(tmp_path / "b")})
    assert r.returncode == 0, r.stderr
    b = casstore.open(tmp_path / "b")
    assert b.list_models("d") == ["m"]
    # the pulling store cached the remote's pack index; `remote rm` forgets it with the name
    assert run_py(cli, "remote", "add", "bucket", s3_url, env={"CAS_STORE": b.path}).returncode == 0
    cache = os.path.join(b.path, "cas", "remotes")
    assert [f for d in os.listdir(cache) for f in os.listdir(os.path.join(cache, d)) if f.endswith(".idx")]
    assert run_py(cli, "remote", "rm", "bucket", env={"CAS_STORE": b.path}).returncode == 0
    assert os.listdir(cache) == []


def test_cached_indexes_of_packs_gone_from_the_bucket_are_pruned(tmp_path: Path, s3_url: str) -> None:
    """Another client combines the bucket's packs into one: the next pull forgets the old indexes."""
    import subprocess

    from casstore.remote.config import cache_dir

    a, b = _stores(tmp_path)
    for mid in ("v1", "v2"):
        _commit_random(a, tmp_path / f"{mid}.bin", 200_000, mid)
        assert a.push(s3_url).ok
    assert b.pull(s3_url).models_added == ["d/v1", "d/v2"]
    cache = Path(cache_dir(b.repo, s3_url))
    old = sorted(p.name for p in cache.iterdir() if p.suffix == ".idx")
    assert len(old) == 2
    # combine the two packs with stock git (whole objects only), publish, then delete the old ones
    bucket, prefix = _bucket_prefix(s3_url)
    repo = tmp_path / "combine.git"
    subprocess.run(["git", "init", "-q", "--bare", str(repo)], check=True)
    for key, data in s3_objects(s3_url).items():
        if key.startswith("objects/pack/"):
            (repo / key).parent.mkdir(parents=True, exist_ok=True)
            (repo / key).write_bytes(data)
    for ref, sha in bucket_refs(s3_url).items():
        (repo / ref).parent.mkdir(parents=True, exist_ok=True)
        (repo / ref).write_text(sha + "\n")
    subprocess.run(["git", "--git-dir", str(repo), "-c", "pack.window=0", "repack", "-a", "-d", "-F", "-q"],
                   check=True)
    (new,) = [p for p in (repo / "objects" / "pack").iterdir() if p.suffix == ".pack"]
    for ext in (".pack", ".idx"):
        _put(s3_url, f"objects/pack/{new.stem}{ext}", new.with_suffix(ext).read_bytes())
    for name in old:
        for ext in (".idx", ".pack"):
            s3_client().delete_object(Bucket=bucket, Key=f"{prefix}/objects/pack/{name[:-4]}{ext}")  # type: ignore[attr-defined]
    _commit_random(a, tmp_path / "v3.bin", 100_000, "v3")
    assert a.push(s3_url).ok
    assert b.pull(s3_url).models_added == ["d/v3"]
    left = sorted(p.name for p in cache.iterdir() if p.suffix == ".idx")
    assert not set(old) & set(left) and f"{new.stem}.idx" in left
    c = casstore.open(tmp_path / "c")
    assert c.pull(s3_url).models_added == ["d/v1", "d/v2", "d/v3"]
    assert c.fsck(read_data=True).ok

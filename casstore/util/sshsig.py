"""SSH signatures as git makes and checks them (``gpg.format=ssh``).

git signs a commit by running ``ssh-keygen -Y sign -n git -f KEY`` over the commit's
bytes without its ``gpgsig`` header, and stores the armored signature in that header.
``git verify-commit`` runs ``ssh-keygen -Y find-principals`` (who, by the allowed
signers file, owns the signing key at the commit's time) and then ``ssh-keygen -Y
verify`` for that principal.  casstore does exactly the same, with the same program,
so a signature it writes is one stock git accepts and the other way round, and no
cryptography is reimplemented here.

Domain scoping is casstore's own convention inside git's format: a principal written
``PATTERN:who`` (``fraud*:ana@example.org``) is allowed for the domains that match
``PATTERN`` (shell-style); a principal without a colon is allowed for every domain.
ssh-keygen and git read such a principal like any other name.

The allowed signers file is read by ssh-keygen (its options ``namespaces``,
``valid-after``, ``valid-before`` and ``cert-authority`` behave as in git).
"""

from __future__ import annotations

import base64
import fnmatch
import hashlib
import os
import shutil
import struct
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass

from dulwich.config import ConfigFile, StackedConfig

from ..errors import SigningError
from .config import get_setting, parse_bool

NAMESPACE = "git"
_ARMOR_BEGIN = b"-----BEGIN SSH SIGNATURE-----"
_ARMOR_END = b"-----END SSH SIGNATURE-----"
#: what one ssh-keygen run may take before it is called stuck (a key behind an agent
#: that asks for confirmation would otherwise hang a commit)
_TIMEOUT = 60.0


#: a signature's verdicts, from best to worst
GOOD, UNTRUSTED, UNSIGNED, BAD = "good", "untrusted", "unsigned", "bad"


@dataclass(frozen=True)
class Verdict:
    """What a signature says about who wrote an object.

    ``status``: ``good`` (valid, and the key is allowed for this domain at the object's
    time), ``untrusted`` (valid, but the key is not allowed: unknown, expired, or not for
    this domain), ``unsigned``, or ``bad`` (the signature does not match the object: it
    was altered, or the signature is forged or damaged).
    """

    status: str
    principal: str | None = None
    fingerprint: str | None = None
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.status == GOOD

    def describe(self) -> str:
        """One line for people: ``signed by ana@example.org (key SHA256:...)``, ``unsigned``, ..."""
        key = f" (key {self.fingerprint})" if self.fingerprint else ""
        if self.status == GOOD:
            return f"signed by {self.principal}{key}"
        if self.status == UNSIGNED:
            return "unsigned"
        why = f": {self.detail}" if self.detail else ""
        if self.status == UNTRUSTED:
            return f"signed by an untrusted key{key}{why}"
        return f"BAD signature{key}{why}"

    def as_dict(self) -> dict[str, str | None]:
        """For JSON: the fields, and ``summary``, the line ``describe`` gives."""
        return {"status": self.status, "principal": self.principal, "key": self.fingerprint,
                "detail": self.detail or None, "summary": self.describe()}


def _ssh_keygen() -> str:
    exe = shutil.which("ssh-keygen")
    if exe is None:
        raise SigningError("ssh-keygen not found: install OpenSSH's client tools (Debian: openssh-client)")
    return exe


def _run(args: list[str], data: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    try:
        return subprocess.run([_ssh_keygen(), *args], input=data if data is not None else b"",
                              capture_output=True, timeout=_TIMEOUT, check=False)
    except subprocess.TimeoutExpired:
        raise SigningError(f"ssh-keygen {' '.join(args[:2])} did not finish in {_TIMEOUT:.0f}s") from None


def sign(payload: bytes, key: str) -> bytes:
    """The armored SSH signature of ``payload`` with ``key`` (a private key file, or a public
    key file whose private key is in ssh-agent), as git's ``gpg.format=ssh`` makes it.

    Raises:
        SigningError: the key is missing or unusable; the message names it.
    """
    path = os.path.expanduser(key)
    if not os.path.isfile(path):
        raise SigningError(f"signing key {key!r}: no such file (set cas.signingKey, or git's user.signingKey)")
    r = _run(["-Y", "sign", "-n", NAMESPACE, "-f", path], payload)
    sig = r.stdout.strip()
    if r.returncode != 0 or not sig.startswith(_ARMOR_BEGIN):
        why = r.stderr.decode("utf-8", "replace").strip().splitlines()
        raise SigningError(f"signing with {key!r} failed: {why[-1] if why else f'exit {r.returncode}'}")
    return sig


def _read_string(blob: bytes, pos: int) -> tuple[bytes, int]:
    if pos + 4 > len(blob):
        raise ValueError("truncated")
    (n,) = struct.unpack_from(">I", blob, pos)
    end = pos + 4 + n
    if end > len(blob):
        raise ValueError("truncated")
    return blob[pos + 4:end], end


def signature_key(signature: bytes) -> tuple[str, str]:
    """The signing key's type and SHA-256 fingerprint (``SHA256:...``, as ssh-keygen -l prints it).

    Raises:
        ValueError: not an armored SSHSIG signature.
    """
    text = signature.strip()
    if not (text.startswith(_ARMOR_BEGIN) and text.endswith(_ARMOR_END)):
        raise ValueError("not an armored SSH signature")
    body = b"".join(text[len(_ARMOR_BEGIN):-len(_ARMOR_END)].split())
    try:
        blob = base64.b64decode(body, validate=True)
    except ValueError:
        raise ValueError("signature is not base64") from None
    if blob[:6] != b"SSHSIG" or len(blob) < 10:
        raise ValueError("not an SSHSIG blob")
    key, _ = _read_string(blob, 10)
    ktype, _ = _read_string(key, 0)
    fp = base64.b64encode(hashlib.sha256(key).digest()).rstrip(b"=").decode()
    return ktype.decode("ascii", "replace"), f"SHA256:{fp}"


def _time_option(when: int | None) -> list[str]:
    if when is None:
        return []
    return [f"-Overify-time={time.strftime('%Y%m%d%H%M%SZ', time.gmtime(when))}"]


def _domain_principals(field: str, domain: str | None) -> list[tuple[str, str]]:
    """(principal as written, who) for each principal of a line allowed for ``domain``."""
    out = []
    for p in field.split(","):
        p = p.strip()
        if not p:
            continue
        pattern, sep, who = p.partition(":")
        if not sep:
            out.append((p, p))
        elif domain is None or fnmatch.fnmatchcase(domain, pattern):
            out.append((p, who))
    return out


def verify(payload: bytes, signature: bytes | None, allowed_signers: str | None, *,
           when: int | None = None, domain: str | None = None) -> Verdict:
    """Check ``signature`` over ``payload`` as ``git verify-commit`` does.

    ``allowed_signers``: git's allowed signers file (None: any valid signature is
    ``untrusted``, since nobody was named to trust).  ``when``: the object's time, against
    the keys' validity windows.  ``domain``: principals scoped with ``PATTERN:who`` count
    only where the pattern matches.
    """
    if not signature:
        return Verdict(UNSIGNED)
    try:
        _ktype, fp = signature_key(signature)
    except ValueError as e:
        return Verdict(BAD, detail=f"unreadable signature ({e})")
    with tempfile.TemporaryDirectory(prefix="cas-sig-") as d:
        sig_path = os.path.join(d, "sig")
        with open(sig_path, "wb") as f:
            f.write(signature)
        timeopt = _time_option(when)
        if allowed_signers is not None and os.path.isfile(allowed_signers):
            found = _run(["-Y", "find-principals", "-s", sig_path, "-f", allowed_signers, *timeopt])
            fields = found.stdout.decode("utf-8", "replace").split() if found.returncode == 0 else []
            candidates = [c for fld in fields for c in _domain_principals(fld, domain)]
            for written, who in candidates:
                r = _run(["-Y", "verify", "-n", NAMESPACE, "-f", allowed_signers, "-I", written,
                          "-s", sig_path, *timeopt], payload)
                if r.returncode == 0:
                    return Verdict(GOOD, who, fp)
            if candidates:
                return Verdict(BAD, fields[0] if fields else None, fp,
                               "the signature does not match the signed data")
        check = _run(["-Y", "check-novalidate", "-n", NAMESPACE, "-s", sig_path], payload)
        if check.returncode != 0:
            return Verdict(BAD, None, fp, "the signature does not match the signed data")
        if allowed_signers is None:
            return Verdict(UNTRUSTED, None, fp, "no allowed signers file configured "
                           "(cas.allowedSigners or gpg.ssh.allowedSignersFile)")
        if not os.path.isfile(allowed_signers):
            return Verdict(UNTRUSTED, None, fp, f"allowed signers file {allowed_signers} does not exist")
        if fields:
            return Verdict(UNTRUSTED, None, fp, f"the key's principals ({', '.join(fields)}) "
                           f"are not allowed for domain {domain!r}")
        return Verdict(UNTRUSTED, None, fp, "the key is not in the allowed signers file "
                       "(or not valid at the time it signed)")


# -- settings -------------------------------------------------------------

POLICIES = ("off", "warn", "refuse")


def _git_setting(store_path: str | None, section: tuple[bytes, ...], name: bytes) -> str | None:
    """A setting of git's own config (the store's file first, then the user's and the system's)."""
    backends = []
    if store_path is not None and os.path.isfile(os.path.join(store_path, "config")):
        try:
            backends.append(ConfigFile.from_path(os.path.join(store_path, "config")))
        except (OSError, ValueError):
            pass
    backends.extend(StackedConfig.default_backends())
    for cfg in backends:
        try:
            return cfg.get(section, name).decode("utf-8", "replace")
        except KeyError:
            continue
    return None


def signing_key(store_path: str | None) -> str | None:
    """``cas.signingKey``, else git's ``user.signingKey`` (a path; git's ``key::`` literals are not read)."""
    key = get_setting(os.path.join(store_path, "config") if store_path else None, "cas.signingKey")
    if key is None:
        key = _git_setting(store_path, (b"user",), b"signingKey")
    return os.path.expanduser(key) if key else None


def signs_by_default(store_path: str | None) -> bool:
    """The ``cas.signCommits`` setting."""
    value = get_setting(os.path.join(store_path, "config") if store_path else None, "cas.signCommits")
    return value is not None and parse_bool(value, "cas.signCommits")


def allowed_signers_file(store_path: str | None) -> str | None:
    """``cas.allowedSigners``, else git's ``gpg.ssh.allowedSignersFile``; a relative path is the store's."""
    path = get_setting(os.path.join(store_path, "config") if store_path else None, "cas.allowedSigners")
    if path is None:
        path = _git_setting(store_path, (b"gpg", b"ssh"), b"allowedSignersFile")
    if not path:
        return None
    path = os.path.expanduser(path)
    if store_path is not None and not os.path.isabs(path):
        path = os.path.join(store_path, path)
    return path


def require_policy(store_path: str | None) -> str:
    """``cas.requireSigned``: off (default), warn or refuse."""
    value = get_setting(os.path.join(store_path, "config") if store_path else None, "cas.requireSigned")
    return value if value in POLICIES else "off"


def key_signer(key: str) -> Callable[[bytes], bytes]:
    """A signer for ``ObjectDB.signing`` that signs with ``key``.

    Raises:
        SigningError: ``key`` is not a file, or ssh-keygen is missing (checked now, so
            that a commit fails before it writes anything).
    """
    path = os.path.expanduser(key)
    if not os.path.isfile(path):
        raise SigningError(f"signing key {key!r}: no such file (set cas.signingKey, or git's user.signingKey)")
    _ssh_keygen()
    return lambda payload: sign(payload, path)

"""casstore's settings: the store's git config, then the user's casstore config file.

A store's settings live in its own git config (``<store>/config``) under ``[cas]``
and ``[remote "NAME"]``, exactly as git keeps them.  Defaults for every store a
user opens live in one user file in the same format,
``$XDG_CONFIG_HOME/casstore/config`` (else ``~/.config/casstore/config``), written
by ``cas config --global``.  The store's own value wins.  docs/config.md lists
every setting and every environment variable.
"""

from __future__ import annotations

import os
import re

from dulwich.config import ConfigFile

from ..errors import CasError

#: the settings `cas config` writes, with what each takes; anything else is refused so that
#: a typo is reported, and so git's own core.* settings of a store stay as casstore made them
SETTINGS: dict[str, str] = {
    "cas.allowPickle": "true or false: may load() run pickle-based deserialisers (default true)",
    "cas.defaultRemote": "the remote push and pull use when none is named (default origin)",
    "cas.loadCacheLimit": "bound of the load cache, e.g. 4g, 512m (default 4g)",
    "cas.serveDownloadBuffer": "bytes all of cas serve's downloads may hold at once, e.g. 128m (default 128m)",
    "cas.serveMaxDownloads": "downloads cas serve runs at once; more get 503 (default 16)",
    "cas.serveStallTimeout": "seconds cas serve waits for a client to take bytes before it disconnects it (default 60)",
    "cas.sklearnFormat": "joblib or skops: how commit_models stores a plain scikit-learn estimator (default joblib)",
    "cas.signCommits": "true or false: sign every commit and history event with cas.signingKey (default false)",
    "cas.signingKey": "the SSH key that signs (a private key file, or a .pub whose key is in ssh-agent); "
                      "else git's user.signingKey",
    "cas.allowedSigners": "git's allowed signers file that verification trusts; else git's gpg.ssh.allowedSignersFile",
    "cas.requireSigned": "off, warn or refuse: what load, download and serve do with a model not signed "
                         "by an allowed key (default off)",
    "user.name": "the author's name recorded in commits (else git's user.name)",
    "user.email": "the author's email recorded in commits (else git's user.email)",
}
_REMOTE_KEY = re.compile(r"remote\.([A-Za-z0-9_.-]+)\.url")


class ConfigKeyError(CasError, KeyError):
    """A setting `cas config` does not know or may not change."""

    def __init__(self, key: str, detail: str) -> None:
        self.key = key
        super().__init__(f"config key {key!r}: {detail}")

    def __str__(self) -> str:
        return str(self.args[0])


def parse_bool(text: str, key: str) -> bool:
    """git's booleans: true/yes/on/1 and false/no/off/0, any case."""
    t = text.strip().lower()
    if t in ("true", "yes", "on", "1"):
        return True
    if t in ("false", "no", "off", "0"):
        return False
    raise ConfigKeyError(key, f"{text!r} is not a boolean (true or false)")


def check_value(key: str, value: str) -> None:
    """Refuse a value the setting cannot take, before it is written."""
    if key in ("cas.allowPickle", "cas.signCommits"):
        parse_bool(value, key)
    elif key == "cas.requireSigned" and value not in ("off", "warn", "refuse"):
        raise ConfigKeyError(key, f"{value!r} is not one of off, warn, refuse")
    elif key == "cas.serveMaxDownloads" and not (value.strip().isdigit() and int(value) > 0):
        raise ConfigKeyError(key, f"{value!r} is not a positive whole number")
    elif key == "cas.serveStallTimeout" and not _positive_number(value):
        raise ConfigKeyError(key, f"{value!r} is not a positive number of seconds")
    elif key in ("cas.loadCacheLimit", "cas.serveDownloadBuffer"):
        t = value.strip().lower()
        if not (t[:-1] if t[-1:] in ("k", "m", "g", "t") else t).isdigit():
            raise ConfigKeyError(key, f"{value!r} is not a size (e.g. 4g, 512m, 1000000)")
    elif key == "cas.sklearnFormat" and value not in ("joblib", "skops"):
        raise ConfigKeyError(key, f"{value!r} is neither joblib nor skops")
    elif key == "cas.defaultRemote" and not re.fullmatch(r"[A-Za-z0-9_.-]+", value):
        raise ConfigKeyError(key, f"{value!r} is not a remote name")


def _positive_number(text: str) -> bool:
    try:
        return 0 < float(text) < float("inf")
    except ValueError:
        return False


def user_config_path() -> str:
    """The user's casstore config file (it need not exist)."""
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return os.path.join(base, "casstore", "config")


def split_key(key: str) -> tuple[tuple[bytes, ...], bytes]:
    """``cas.allowPickle`` -> ``((b"cas",), b"allowPickle")``; ``remote.o.url`` -> ``((b"remote", b"o"), b"url")``."""
    m = _REMOTE_KEY.fullmatch(key)
    if m:
        return (b"remote", m[1].encode()), b"url"
    section, sep, name = key.partition(".")
    if not sep or not name or "." in name:
        raise ConfigKeyError(key, "expected SECTION.NAME (or remote.NAME.url)")
    return (section.encode(),), name.encode()


def check_key(key: str) -> None:
    """Refuse keys `cas config` may not set (unknown ones, git's core.*, cas.formatVersion)."""
    if key in SETTINGS or _REMOTE_KEY.fullmatch(key):
        return
    known = ", ".join(sorted(SETTINGS))
    raise ConfigKeyError(key, f"not a casstore setting (settings: {known}, remote.NAME.url; see docs/config.md)")


def _read(path: str) -> ConfigFile:
    try:
        return ConfigFile.from_path(path)
    except FileNotFoundError:
        return ConfigFile()


#: path -> (the file's version, its parse): a commit asks for about eight settings
_PARSED: dict[str, tuple[tuple[int, int, int, int], ConfigFile]] = {}


def _read_shared(path: str) -> ConfigFile:
    """``_read(path)``, parsed again only when the file changed (a new inode, size, mtime or
    ctime, as git's and our writers make: temp file and rename); callers must not change it."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return ConfigFile()
    version = (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    hit = _PARSED.get(path)
    if hit is not None and hit[0] == version:
        return hit[1]
    cfg = _read(path)
    _PARSED[path] = (version, cfg)
    return cfg


def get_setting(store_config: str | None, key: str) -> str | None:
    """The value of ``key``: the store's config (a path) first, then the user's file; None if unset."""
    section, name = split_key(key)
    for path in ([store_config] if store_config else []) + [user_config_path()]:
        try:
            return _read_shared(path).get(section, name).decode("utf-8", "replace")
        except KeyError:
            continue
    return None


def read_value(path: str, key: str) -> str | None:
    """The value of ``key`` in the one config file at ``path``; None if unset."""
    section, name = split_key(key)
    try:
        return _read(path).get(section, name).decode("utf-8", "replace")
    except KeyError:
        return None


def write_value(path: str, key: str, value: str | None) -> None:
    """Set ``key`` (or remove it: ``value=None``) in the config file at ``path``, creating the file."""
    section, name = split_key(key)
    cfg = _read(path)
    if value is None:
        try:
            del cfg[section][name]
        except KeyError:
            raise ConfigKeyError(key, f"not set in {path}") from None
    else:
        cfg.set(section, name, value.encode())
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    cfg.write_to_path(path)


def list_values(path: str) -> dict[str, str]:
    """Every ``section.name`` (``remote.NAME.url``) set in the file at ``path``."""
    cfg = _read(path)
    out = {}
    for section in cfg.sections():
        for name, value in cfg[section].items():
            key = ".".join(s.decode("utf-8", "replace") for s in (*section, name))
            out[key] = value.decode("utf-8", "replace")
    return out

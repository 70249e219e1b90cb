"""The pip command that adds an extra to *this* casstore, wherever it was installed from.

casstore is not on a package index yet, so ``pip install 'casstore[serve]'`` would
fetch nothing, or another project of that name.  Error messages that name a missing
extra use :func:`install_hint`, which answers with what works here:

1. casstore runs from a checkout (an editable install, or ``PYTHONPATH``):
   ``pip install -e '<checkout>[extra]'``;
2. it was installed from a wheel file or a directory (pip's ``direct_url.json``,
   PEP 610): ``pip install '<that wheel or directory>[extra]'``, or from a git URL:
   ``pip install 'casstore[extra] @ git+<url>'``;
3. it was installed by name from an index: ``pip install 'casstore[extra]'``.
"""

from __future__ import annotations

import json
import os
from urllib.parse import unquote, urlparse

_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _shown(path: str) -> str:
    """``path`` as typed from the current directory: ``.``, ``./sub``, or absolute."""
    try:
        rel = os.path.relpath(path)
    except ValueError:  # another drive on Windows
        return path
    if rel == ".":
        return "."
    return f"./{rel}" if not rel.startswith("..") else path


def _checkout() -> str | None:
    """The source checkout this casstore is imported from, if it is one."""
    root = os.path.dirname(_PACKAGE_DIR)
    try:
        with open(os.path.join(root, "pyproject.toml"), encoding="utf-8") as f:
            text = f.read(4096)
    except OSError:
        return None
    return root if 'name = "casstore"' in text else None


def _direct_url() -> dict[str, object] | None:
    """pip's record of where the installed casstore came from, when it came from a URL or a path."""
    from importlib import metadata  # ~20 ms of imports: only when an error names an extra

    try:
        dist = metadata.distribution("casstore")
        text = dist.read_text("direct_url.json")
        # the installed distribution must be the casstore running now (not another copy on the path)
        located = os.path.realpath(str(dist.locate_file("casstore")))
    except (metadata.PackageNotFoundError, OSError, ValueError):
        return None
    if not text or located != os.path.realpath(_PACKAGE_DIR):
        return None
    try:
        doc = json.loads(text)
    except ValueError:
        return None
    return doc if isinstance(doc, dict) else None


def install_hint(extra: str) -> str:
    """The command that installs casstore's ``extra`` here (see the module docstring)."""
    checkout = _checkout()
    if checkout is not None:
        return f"pip install -e '{_shown(checkout)}[{extra}]'"
    doc = _direct_url()
    if doc is not None and isinstance(doc.get("url"), str):
        url = str(doc["url"])
        vcs = doc.get("vcs_info")
        if isinstance(vcs, dict) and vcs.get("vcs") == "git":
            return f"pip install 'casstore[{extra}] @ git+{url}'"
        parsed = urlparse(url)
        if parsed.scheme != "file":  # a wheel or sdist URL
            return f"pip install 'casstore[{extra}] @ {url}'"
        info = doc.get("dir_info")
        editable = isinstance(info, dict) and bool(info.get("editable"))
        return f"pip install {'-e ' if editable else ''}'{_shown(unquote(parsed.path))}[{extra}]'"
    return f"pip install 'casstore[{extra}]'"

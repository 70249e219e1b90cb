"""The package's layers, enforced: imports point downwards, no cycles, no private names.

docs/architecture.md describes the layers; this test keeps the tree true to it.
Every import is counted, also those inside functions and under TYPE_CHECKING:
a lazy import still makes the lower module depend on the higher one.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "casstore"

#: rank of each part of the package; a module may import its own part or a lower rank
LAYERS: dict[str, int] = {
    "casstore.version": 0,
    "casstore.errors": 0,
    "casstore.util": 1,
    "casstore.objects": 2,
    "casstore.model": 3,
    "casstore.modelinfo": 3,  # what Store.model_info returns: plain data (stdlib only), read by the front ends
    "casstore.frameworks": 4,
    "casstore.ops": 4,
    "casstore.remote": 5,
    "casstore.actions": 6,  # what the Store's methods do: frameworks, load cache and model layer combined
    "casstore.store": 7,
    "casstore.serve": 8,
    "casstore.compat": 8,
    "casstore.cli": 9,
    "casstore": 9,  # the package's __init__: the public API
    "casstore.__main__": 10,
    "casstore.demo": 11,  # an example program using the public API
}

#: private attributes of *other libraries'* objects that casstore must reach, each
#: in one place, with the reason on that line
ALLOWED_PRIVATE = {
    ("casstore/objects/odb.py", "super()._update_pack_cache"),  # dulwich: our subclass filters damaged packs
    ("casstore/objects/odb.py", "pack._basename"),  # dulwich: a Pack's path has no public name
    ("casstore/objects/odb.py", "self.store._update_pack_cache"),  # dulwich: no public rescan
    ("casstore/objects/odb.py", "self.store._pack_cache"),  # dulwich: no public way to drop a cached pack
    ("casstore/cli/__init__.py", "argparse._SubParsersAction"),  # argparse's type for add_subparsers()
    ("casstore/cli/cmd_completion.py", "p._actions"),  # argparse: no public list of a parser's arguments
    ("casstore/cli/__init__.py", "target._actions"),  # argparse: the same, for a mistyped option's usage
    ("casstore/frameworks/onnx.py", "onnx.external_data_helper._get_all_tensors"),  # onnx: no public walk
    ("casstore/frameworks/pytorch.py", "state._metadata"),  # torch: state_dict()'s documented attribute
}


#: the front ends: they use the Store's public API only (docs/architecture.md), so that a
#: rule such as "does loading this run code?" lives in one place
FRONT_ENDS = ("casstore.cli", "casstore.serve", "casstore.compat")

#: the layers under the Store a front end may not import (the Store re-exports what
#: front ends need, types included)
BEHIND_THE_STORE = ("casstore.objects", "casstore.model", "casstore.remote", "casstore.actions")

#: the Store's internals a front end may not reach for
STORE_INTERNALS = ("repo", "odb", "refs")

#: front-end code that matches the rules above without breaking them, each with its reason
ALLOWED_FRONT_END = {
    ("casstore/cli/cmd_remote.py", "result.refs"),  # UpgradeResult.refs: how many refs moved, not Store.refs
}


def _modules() -> dict[str, Path]:
    out = {}
    for p in sorted(PKG.rglob("*.py")):
        parts = list(p.relative_to(PKG.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = p
    return out


MODULES = _modules()


def _part(module: str) -> str:
    """The layer a module belongs to: the longest LAYERS key that prefixes it."""
    best = ""
    for key in LAYERS:
        if (module == key or module.startswith(key + ".")) and len(key) > len(best):
            best = key
    assert best, f"{module} belongs to no layer: add it to LAYERS and docs/architecture.md"
    return best


def _imports(module: str, path: Path) -> list[tuple[int, str, list[str]]]:
    """(line, imported module, names) for every import of a casstore module in ``path``."""
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name, []) for a in node.names if a.name.split(".")[0] == "casstore"]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "casstore":
                continue
            names = [a.name for a in node.names]
            # "from . import x" imports the module casstore.x when there is one
            subs = [n for n in names if f"{target}.{n}" in MODULES]
            out += [(node.lineno, f"{target}.{n}", []) for n in subs]
            names = [n for n in names if n not in subs]
            if names:
                out.append((node.lineno, target, names))
    return out


def test_every_module_belongs_to_a_layer() -> None:
    for module in MODULES:
        _part(module)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_point_downwards(module: str) -> None:
    own = _part(module)
    for line, target, _ in _imports(module, MODULES[module]):
        other = _part(target)
        if other != own:
            assert LAYERS[other] < LAYERS[own], (
                f"{MODULES[module].relative_to(PKG.parent)}:{line} imports {target} ({other}, rank "
                f"{LAYERS[other]}) from {own} (rank {LAYERS[own]}): a lower layer never imports a higher one")


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_private_names_of_other_modules(module: str) -> None:
    path = MODULES[module]
    rel = str(path.relative_to(PKG.parent))
    for line, target, names in _imports(module, path):
        private = [n for n in names if n.startswith("_") and not n.startswith("__")]
        assert not private, f"{rel}:{line} imports private {private} from {target}"
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
            if isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"):
                continue
            text = ast.unparse(node)
            assert (rel, text) in ALLOWED_PRIVATE, f"{rel}:{node.lineno} reaches into private {text}"



def _front_end_violations(module: str, path: Path) -> list[str]:
    """What ``path`` (a front-end module) takes from behind the Store: imports and internals."""
    rel = str(path.relative_to(PKG.parent)) if path.is_relative_to(PKG.parent) else path.name
    out = []
    for line, target, _ in _imports(module, path):
        if _part(target) in BEHIND_THE_STORE and (rel, target) not in ALLOWED_FRONT_END:
            out.append(f"{rel}:{line} imports {target}: front ends use the Store's public API "
                       f"(add the operation to Store, delegating)")
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Attribute) and node.attr in STORE_INTERNALS:
            text = ast.unparse(node)
            if (rel, text) not in ALLOWED_FRONT_END:
                out.append(f"{rel}:{node.lineno} reaches into {text}: front ends use the Store's public API")
    return out


@pytest.mark.parametrize("module", sorted(m for m in MODULES if m.startswith(FRONT_ENDS)))
def test_front_ends_use_only_the_store_api(module: str) -> None:
    assert _front_end_violations(module, MODULES[module]) == []


def test_front_end_exceptions_are_still_needed() -> None:
    """An exception whose code is gone is removed from ALLOWED_FRONT_END, so the list only shrinks."""
    for rel, text in ALLOWED_FRONT_END:
        source = (PKG.parent / rel).read_text()
        assert text in source, f"{rel} no longer has {text}: remove it from ALLOWED_FRONT_END"


def _graph() -> dict[str, set[str]]:
    graph = {m: {t for _, t, _ in _imports(m, p) if t in MODULES and t != m} for m, p in MODULES.items()}
    # a package's __init__ importing its own submodules is how it re-exports: not a cycle
    return {m: {t for t in ts if not (MODULES[m].name == "__init__.py" and t.startswith(m + "."))}
            for m, ts in graph.items()}


def _find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        stack.append(m)
        for t in sorted(graph[m]):
            if state.get(t) == 1:
                return stack[stack.index(t):] + [t]
            if t not in state and (found := visit(t)):
                return found
        stack.pop()
        state[m] = 2
        return None

    for m in sorted(graph):
        if m not in state and (found := visit(m)):
            return found
    return None


def test_no_import_cycles() -> None:
    cycle = _find_cycle(_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_the_checks_see_violations(tmp_path: Path) -> None:
    """Each check above can fail: made-up code breaking each rule is caught."""
    bad = tmp_path / "bad.py"
    bad.write_text("from ..store import Store\nfrom .odb import _helper\n")
    found = _imports("casstore.objects.bad", bad)
    assert ("casstore.store", ["Store"]) in [(t, n) for _, t, n in found]
    assert LAYERS[_part("casstore.store")] > LAYERS[_part("casstore.objects.bad")]
    assert ["_helper"] in [n for _, t, n in found if t == "casstore.objects.odb"]
    assert _find_cycle({"a": {"b"}, "b": {"a"}}) == ["a", "b", "a"]
    assert _find_cycle({"a": {"b"}, "b": set()}) is None
    front = tmp_path / "front.py"
    front.write_text("from ..objects.refs import domain_ref\n"
                     "def f(store):\n    from ..remote.sync import list_refs\n"
                     "    return store.refs.get(domain_ref('d')), store.repo, list_refs\n")
    found_front = _front_end_violations("casstore.serve.front", front)
    assert len(found_front) == 4, found_front
    assert any("imports casstore.objects.refs" in v for v in found_front)
    assert any("imports casstore.remote.sync" in v for v in found_front)
    assert any("store.refs" in v for v in found_front) and any("store.repo" in v for v in found_front)

"""The shape of the code base: data flows one way, no import circles, one owner for run-folder names.

The package layering (docs/design.md, "Architecture") is :data:`LAYERS`: a package may import the
packages of the layers below its own and nothing above or beside it; the ground modules (errors,
checks, io, ...) may import one another (the circle test keeps that acyclic).

Imports are read statically from every module of ``src/freqtail`` (module-level and function-level
imports alike, since a lazy import still ties two modules together).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

SOURCE = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SOURCE / "freqtail"


def _modules() -> dict[str, Path]:
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(SOURCE).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        modules[name] = path
    return modules


def _imports(path: Path, known: set[str]) -> set[str]:
    """The freqtail modules ``path`` imports (``from a import b`` counts ``a.b`` when that is a module)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            candidates = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
        elif isinstance(node, ast.Import):
            candidates = [alias.name for alias in node.names]
        else:
            continue
        found.update(name for name in candidates if name in known)
    return found


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    known = set(modules)
    return {name: _imports(path, known) - {name} for name, path in modules.items()}


#: The floors, bottom first. Same-layer packages may not import each other.
LAYERS: tuple[frozenset[str], ...] = tuple(
    frozenset(layer)
    for layer in (
        {
            "freqtail",
            "errors",
            "checks",
            "io",
            "locks",
            "images",
            "sample_photos",
            "distributed",
            "formatting",
            "environment",
            "execution_options",
            "lazy_exports",
            "progress",
            "runs",
            "paper",
        },
        {"spectrum"},
        {"bass"},
        {"data", "models"},
        {"attacks"},
        {"evaluate", "analysis"},
        {"train"},
        {"report"},
        {"workflows"},
        {"commands"},
        {"cli"},
    )
)
GROUND = LAYERS[0]


def _package(module: str) -> str:
    """``freqtail.evaluate.runner`` -> ``evaluate``; ``freqtail`` (the package itself) -> ``freqtail``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def _layer(package: str) -> int:
    return next(number for number, layer in enumerate(LAYERS) if package in layer)


def test_every_package_has_a_floor():
    packages = {_package(name) for name in _modules()}
    placed = set().union(*LAYERS)
    assert packages - placed == set()
    assert placed - packages == set()  # no layer names a package that is gone


def test_packages_import_only_the_floors_below_them():
    offenders = sorted(
        f"{name} -> {target}"
        for name, targets in _graph().items()
        for target in targets
        if _package(name) != _package(target)
        and not (_package(name) in GROUND and _package(target) in GROUND)
        and _layer(_package(target)) >= _layer(_package(name))
    )
    assert offenders == []


def test_runs_is_only_the_layout():
    """runs/ names files, keeps what is read from a folder inside it, and says whether a given path
    exists (checked before torch is imported), and nothing else: the run as a whole belongs to
    workflows/."""
    modules = {name for name in _modules() if _package(name) == "runs"}
    assert modules == {
        "freqtail.runs",
        "freqtail.runs.layout",
        "freqtail.runs.containment",
        "freqtail.runs.existence",
    }
    assert _graph()["freqtail.runs.layout"] == set()
    assert _graph()["freqtail.runs.containment"] == {"freqtail.errors"}
    assert _graph()["freqtail.runs.existence"] == {"freqtail.errors", "freqtail.runs.layout"}


def test_only_the_command_line_imports_the_workflows():
    importers = {
        name
        for name, targets in _graph().items()
        if _package(name) != "workflows" and any(_package(t) == "workflows" for t in targets)
    }
    assert {_package(name) for name in importers} <= {"commands", "cli"}


def _is_interface(name: str) -> bool:
    return name == "freqtail.cli" or name == "freqtail.commands" or name.startswith("freqtail.commands.")


def test_the_library_never_imports_the_command_line():
    offenders = {
        name: sorted(target for target in targets if _is_interface(target))
        for name, targets in _graph().items()
        if not _is_interface(name)
    }
    assert {name: targets for name, targets in offenders.items() if targets} == {}
    # The plain text check (a docstring that names the command module counts too): the grep
    # ``freqtail\.(commands|cli)|from freqtail import cli`` outside commands/ and cli.py finds nothing.
    pattern = re.compile(r"freqtail\.(commands|cli)|from freqtail import cli")
    mentions = [
        f"{path.relative_to(SOURCE)}:{number}"
        for name, path in _modules().items()
        if not _is_interface(name)
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if pattern.search(line)
    ]
    assert mentions == []


def test_there_is_no_import_circle():
    graph = _graph()
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    circles = []

    def visit(name: str, path: list[str]) -> None:
        state[name] = 1
        for target in sorted(graph[name]):
            if state.get(target) == 1:
                circles.append(path[path.index(target) :] + [target])
            elif target not in state:
                visit(target, [*path, target])
        state[name] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    assert circles == []


def test_run_folder_file_names_are_spelled_in_one_place():
    names = (
        "config.yaml|metrics.jsonl|results.json|results.md|eval-cache|report.html|report.md|"
        "sensitivity.json|landscape.json|heatmap.json|spectrum.json|bass.json|landscape.partial.npz|"
        r"grid\.json|\.grid\.lock|\.grid-cells|table\.md|table\.csv|table\.tex|measured-vs-published\.(png|svg)|grid-report\.html"
    )
    pattern = re.compile(rf"[\"']({names}|checkpoints|figures)[\"']")
    owner = PACKAGE / "runs" / "layout.py"
    spelled = [
        f"{path.relative_to(SOURCE)}:{number}"
        for path in PACKAGE.rglob("*.py")
        if path != owner
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if pattern.search(line)
    ]
    assert spelled == []

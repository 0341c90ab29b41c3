"""The shape of the code in ``src/freqtail``, measured with :mod:`ast`.

It prints:

* **function-local imports**: ``import`` / ``from ... import`` statements that are not at module
  level (inside a function or a class body; those in an ``if TYPE_CHECKING:`` block, or any other
  module-level ``if`` / ``try``, count as module level), per package (the first directory under
  ``freqtail``; top-level modules count as ``(top level)``), split into "in commands/ + cli.py" (where
  the project allows them, for CLI start-up time) and "elsewhere", and the files that have them;
* the 10 longest functions and the 10 longest classes (name, file, lines from ``def`` / ``class``
  to the last line of the body, decorators not counted).

Run: ``python benchmarks/code_shape.py`` (``--json``: one JSON object instead of the text;
``--root``: another package directory). Standard library only.
"""

from __future__ import annotations

import argparse
import ast
import json
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent / "src" / "freqtail"
CLI_PACKAGES = ("commands", "cli.py")


def local_imports(tree: ast.Module) -> list[int]:
    """The line numbers of the imports in ``tree`` that sit inside a function or class body."""
    lines: list[int] = []

    def visit(node: ast.AST, nested: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import | ast.ImportFrom) and nested:
                lines.append(child.lineno)
            inner = nested or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
            visit(child, inner)

    visit(tree, False)
    return lines


def definitions(tree: ast.Module, kinds: tuple[type, ...]) -> list[tuple[str, int]]:
    """(qualified name, number of lines) of every definition of ``kinds`` in ``tree``, nested too."""
    found: list[tuple[str, int]] = []

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                name = f"{prefix}{child.name}"
                if isinstance(child, kinds):
                    found.append((name, child.end_lineno - child.lineno + 1))
                visit(child, f"{name}.")
            else:
                visit(child, prefix)

    visit(tree, "")
    return found


def measure(root: Path) -> dict:
    """Everything this script prints, as one JSON-ready dict."""
    per_package: Counter[str] = Counter()
    per_file: dict[str, int] = {}
    functions: list[dict] = []
    classes: list[dict] = []
    files = sorted(root.rglob("*.py"))
    for path in files:
        relative = path.relative_to(root).as_posix()
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        count = len(local_imports(tree))
        if count:
            package = relative.split("/")[0] if "/" in relative else "(top level)"
            per_package[package] += count
            per_file[relative] = count
        for name, lines in definitions(tree, (ast.FunctionDef, ast.AsyncFunctionDef)):
            functions.append({"name": name, "file": relative, "lines": lines})
        for name, lines in definitions(tree, (ast.ClassDef,)):
            classes.append({"name": name, "file": relative, "lines": lines})

    in_cli = sum(n for file, n in per_file.items() if file.split("/")[0] in CLI_PACKAGES)
    total = sum(per_file.values())
    return {
        "files": len(files),
        "local_imports": {
            "total": total,
            "in_commands_and_cli": in_cli,
            "elsewhere": total - in_cli,
            "files_with_them": len(per_file),
            "per_package": dict(sorted(per_package.items())),
            "per_file": per_file,
        },
        "longest_functions": sorted(functions, key=lambda d: -d["lines"])[:10],
        "longest_classes": sorted(classes, key=lambda d: -d["lines"])[:10],
    }


def print_text(shape: dict) -> None:
    imports = shape["local_imports"]
    files = f"{imports['files_with_them']} of {shape['files']} files"
    print(f"function-local imports: {imports['total']} in {files}")
    print(f"  in commands/ + cli.py: {imports['in_commands_and_cli']}")
    print(f"  elsewhere:             {imports['elsewhere']}")
    print("per package:")
    for package, count in imports["per_package"].items():
        print(f"  {package:<12} {count:>4}")
    print("files:")
    for file, count in imports["per_file"].items():
        print(f"  {count:>4}  {file}")
    for title, key in (("longest functions", "longest_functions"), ("longest classes", "longest_classes")):
        print(f"{title}:")
        for item in shape[key]:
            print(f"  {item['lines']:>5}  {item['name']}  ({item['file']})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the text")
    parser.add_argument("--root", type=Path, default=ROOT, help="package directory (default: src/freqtail)")
    args = parser.parse_args()
    shape = measure(args.root)
    if args.json:
        print(json.dumps(shape, indent=2))
    else:
        print_text(shape)


if __name__ == "__main__":
    main()

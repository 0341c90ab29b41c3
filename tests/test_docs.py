"""The documentation: the MkDocs site builds in strict mode, and nothing points outside the repository."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_site_builds_in_strict_mode(tmp_path):
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")
    build = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=env,
    )
    assert build.returncode == 0, build.stderr[-3000:]
    reference = (tmp_path / "site" / "reference" / "workflows" / "index.html").read_text(encoding="utf-8")
    assert "evaluate_run" in reference  # the API reference is generated from the docstrings


def test_the_readme_is_a_front_page_whose_links_resolve():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= 300
    links = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", readme)
    local = [link for link in links if not link.startswith(("http://", "https://"))]
    assert local and all((ROOT / link).exists() for link in local), local
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    command = "pip install -e '.[dev]' && python -m pytest -q"
    assert command in readme and command in ci  # CI runs what the README tells a newcomer


def test_no_file_points_to_a_document_outside_the_repository():
    pattern = re.compile(r"DESIGN\.md|\.\./shared|/work/shared")
    offenders = []
    for folder in ("src", "tests", "docs", "benchmarks", "configs"):
        for path in (ROOT / folder).rglob("*"):
            if (
                path.is_file()
                and path.suffix in (".py", ".md", ".yaml", ".yml", ".txt")
                and path.name != "test_docs.py"
            ):
                if pattern.search(path.read_text(encoding="utf-8", errors="replace")):
                    offenders.append(str(path.relative_to(ROOT)))
    for name in ("README.md", "CHANGELOG.md", "mkdocs.yml", "pyproject.toml"):
        if pattern.search((ROOT / name).read_text(encoding="utf-8")):
            offenders.append(name)
    assert offenders == []


def test_the_training_guide_lists_every_config_key_with_its_default():
    from freqtail.train.config import key_help

    guide = (ROOT / "docs" / "guides" / "training.md").read_text(encoding="utf-8")
    table = guide.split("| key | default | meaning |", 1)[1].split("\n\n", 1)[0]
    rows = dict(re.findall(r"^\| `(\w+)` \| `([^`]*)` \|", table, flags=re.MULTILINE))
    spelled = {None: "null", True: "true", False: "false"}
    for key, (default, _) in key_help().items():
        expected = spelled.get(default, default) if isinstance(default, (bool, type(None))) else str(default)
        assert rows.get(key) == expected, f"docs/guides/training.md: key {key} should default to {expected}"
    assert set(rows) == set(key_help())


def test_the_site_home_page_is_the_readme():
    # docs/index.md is the README with its links made relative to docs/ (edit both together).
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    expected = readme.replace("](docs/", "](").replace("](CHANGELOG.md)", "](changelog.md)")
    assert (ROOT / "docs" / "index.md").read_text(encoding="utf-8") == expected

"""A report page as plain data, rendered two ways: one self-contained HTML file and Markdown.

A :class:`Page` is a title, an introduction and a list of :class:`Section` s; a section holds blocks
(:class:`Paragraph`, :class:`Heading`, :class:`Bullets`, :class:`Table`, :class:`Figure`,
:class:`Code`, :class:`Note`). Text may use three inline Markdown marks, ```code```, ``**bold**`` and
in-page links ``[words](#anchor)``; a paragraph or bullet item (:class:`Item`) with an ``anchor`` is
a link target. A section with ``collapsed`` is folded into ``<details>`` in HTML (its title is the
summary line, the reader opens it) and is a plain section in Markdown.

* :func:`render_html` escapes every text (``html.escape``), inlines the CSS and embeds every figure
  as a base64 ``data:`` URI, so the page opens offline with no external script, font or link.
* :func:`render_markdown` references figures by a path relative to the Markdown file.
* :func:`markdown_blocks` reads back the small Markdown subset other modules write (tables, bullet
  lists, headings, paragraphs; e.g. :func:`freqtail.evaluate.tables.adversarial_table`), so their
  tables appear in both renderings unchanged.

Python's standard library has no Markdown-to-HTML converter and the blocks are few, so the two
renderers are written here rather than adding a Markdown package as a dependency.
"""

from __future__ import annotations

import base64
import html
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "Bullets",
    "Code",
    "Figure",
    "Heading",
    "Item",
    "Note",
    "Page",
    "Paragraph",
    "Section",
    "Table",
    "inline_html",
    "markdown_blocks",
    "render_html",
    "render_markdown",
    "slug",
]

_MIME = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".gif": "image/gif"}


@dataclass
class Paragraph:
    """Text; ``anchor`` (an HTML id) makes it a target of in-page links."""

    text: str
    anchor: str | None = None


@dataclass
class Note:
    """A remark set apart from the text (e.g. "this run has no evaluation yet")."""

    text: str


@dataclass
class Heading:
    """A heading inside a section; ``level`` 3 or 4 (sections are level 2)."""

    text: str
    level: int = 3


@dataclass
class Bullets:
    """A bullet list; an item is a string or ``(string, [sub-items])``."""

    items: list


@dataclass
class Item:
    """A bullet item that in-page links point to (``anchor``), with optional sub-items."""

    text: str
    anchor: str | None = None
    sub: list = field(default_factory=list)


@dataclass
class Table:
    """A table of strings; columns from ``numeric_from`` on are right-aligned numbers."""

    header: list[str]
    rows: list[list[str]]
    numeric_from: int = 1
    caption: str | None = None


@dataclass
class Figure:
    """An image file shown with a caption; ``markdown_path`` overrides the path the Markdown uses."""

    path: Path
    caption: str
    markdown_path: str | None = None


@dataclass
class Code:
    """Preformatted text (a config file); ``collapsed`` folds it away in HTML (``<details>``)."""

    text: str
    summary: str = ""
    collapsed: bool = True


@dataclass
class Section:
    """A titled part of the page; ``collapsed`` folds it away in HTML until the reader opens it."""

    title: str
    anchor: str
    blocks: list = field(default_factory=list)
    collapsed: bool = False


@dataclass
class Page:
    title: str
    intro: list = field(default_factory=list)
    sections: list[Section] = field(default_factory=list)


def slug(text: str) -> str:
    """``"Loss landscape (LFC/HFC)" -> "loss-landscape-lfc-hfc"``: a safe HTML id."""
    value = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return value or "section"


# ----------------------------------------------------------------------------- HTML
_CODE = re.compile(r"`([^`]+)`")
_BOLD = re.compile(r"\*\*(.+?)\*\*")
#: An in-page link: only ``#anchor`` targets (slug characters), so a page never links outside itself.
_LINK = re.compile(r"\[([^\[\]]+)\]\((#[a-z0-9-]+)\)")


def inline_html(text: str) -> str:
    """Escape ``text`` for HTML, then turn ```code```, ``**bold**`` and ``[words](#anchor)`` into tags."""
    escaped = html.escape(str(text), quote=True)
    escaped = _CODE.sub(r"<code>\1</code>", escaped)
    escaped = _BOLD.sub(r"<strong>\1</strong>", escaped)
    return _LINK.sub(r'<a href="\2">\1</a>', escaped)


def _id(anchor: str | None) -> str:
    return f' id="{html.escape(anchor, quote=True)}"' if anchor else ""


CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0; color: #1d232a;
  background: #fafbfc; line-height: 1.45; }
main { max-width: 1180px; margin: 0 auto; padding: 1.5rem 2rem 4rem; }
h1 { font-size: 1.8rem; margin-bottom: .3rem; }
h2 { font-size: 1.35rem; border-bottom: 2px solid #d7dde4; padding-bottom: .2rem; margin-top: 2.2rem; }
h3 { font-size: 1.1rem; margin-top: 1.5rem; }
h4 { font-size: 1rem; margin-top: 1.1rem; }
nav { background: #fff; border: 1px solid #d7dde4; border-radius: 6px; padding: .5rem 1rem; }
nav ol { margin: .3rem 0; padding-left: 1.3rem; columns: 2; }
table { border-collapse: collapse; margin: .6rem 0 1rem; background: #fff; font-size: .9rem; }
th, td { border: 1px solid #d7dde4; padding: .25rem .55rem; vertical-align: top; }
th { background: #eef1f5; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tr.delta td { color: #3a5a8c; font-style: italic; }
caption { caption-side: top; text-align: left; font-weight: 600; padding: .2rem 0; }
figure { margin: .8rem 0 1.4rem; }
figure img { max-width: 100%; height: auto; border: 1px solid #d7dde4; background: #fff; }
figcaption { font-size: .88rem; color: #4a5562; }
code { background: #eef1f5; padding: 0 .25rem; border-radius: 3px; font-size: .88em; }
pre { background: #fff; border: 1px solid #d7dde4; padding: .6rem; overflow-x: auto; font-size: .82rem; }
.note { background: #fff8e6; border-left: 4px solid #e0b050; padding: .4rem .8rem; }
.missing { color: #8a5a00; }
details.section > summary { cursor: pointer; border-bottom: 2px solid #d7dde4; margin-top: 1.4rem; }
details.section > summary h2 { display: inline-block; border: 0; margin: 0; padding: .2rem 0; }
details.section[open] > summary { margin-bottom: .6rem; }
footer { margin-top: 3rem; font-size: .8rem; color: #6a7582; }
"""


def _figure_uri(path: Path) -> str | None:
    """The image as a base64 data URI, or None when the file cannot be read."""
    mime = _MIME.get(path.suffix.lower())
    if mime is None:
        return None
    try:
        data = path.read_bytes()
    except OSError:
        return None
    return f"data:{mime};base64," + base64.b64encode(data).decode("ascii")


def _table_html(table: Table) -> str:
    out = ["<table>"]
    if table.caption:
        out.append(f"<caption>{inline_html(table.caption)}</caption>")
    out.append("<thead><tr>" + "".join(f"<th>{inline_html(h)}</th>" for h in table.header) + "</tr></thead>")
    out.append("<tbody>")
    for row in table.rows:
        # Comparison tables mark their difference rows with a leading "Δ".
        css = ' class="delta"' if row and str(row[0]).startswith("Δ") else ""
        cells = []
        for i, cell in enumerate(row):
            kind = ' class="num"' if i >= table.numeric_from else ""
            cells.append(f"<td{kind}>{inline_html(cell)}</td>")
        out.append(f"<tr{css}>" + "".join(cells) + "</tr>")
    out.append("</tbody></table>")
    return "\n".join(out)


def _bullets_html(items: Sequence) -> str:
    parts = ["<ul>"]
    for item in items:
        if isinstance(item, Item):
            sub = _bullets_html(item.sub) if item.sub else ""
            parts.append(f"<li{_id(item.anchor)}>{inline_html(item.text)}{sub}</li>")
        elif isinstance(item, tuple):
            text, sub = item
            parts.append(f"<li>{inline_html(text)}{_bullets_html(sub)}</li>")
        else:
            parts.append(f"<li>{inline_html(item)}</li>")
    parts.append("</ul>")
    return "".join(parts)


def _block_html(block) -> str:
    if isinstance(block, Paragraph):
        return f"<p{_id(block.anchor)}>{inline_html(block.text)}</p>"
    if isinstance(block, Note):
        return f'<p class="note">{inline_html(block.text)}</p>'
    if isinstance(block, Heading):
        level = min(max(int(block.level), 3), 4)
        return f'<h{level} id="{slug(block.text)}">{inline_html(block.text)}</h{level}>'
    if isinstance(block, Bullets):
        return _bullets_html(block.items)
    if isinstance(block, Table):
        return _table_html(block)
    if isinstance(block, Figure):
        uri = _figure_uri(Path(block.path))
        if uri is None:
            return f'<p class="missing">Figure {inline_html(Path(block.path).name)} could not be read.</p>'
        return (
            f'<figure><img src="{uri}" alt="{html.escape(block.caption, quote=True)}">'
            f"<figcaption>{inline_html(block.caption)}</figcaption></figure>"
        )
    if isinstance(block, Code):
        body = f"<pre>{html.escape(block.text)}</pre>"
        if block.collapsed:
            return f"<details><summary>{inline_html(block.summary or 'show')}</summary>{body}</details>"
        return (f"<p>{inline_html(block.summary)}</p>" if block.summary else "") + body
    raise TypeError(f"unknown report block {type(block).__name__}")


def render_html(page: Page, footer: str = "") -> str:
    """The whole page as one self-contained HTML document (inline CSS, figures as data URIs)."""
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{html.escape(page.title)}</title>",
        f"<style>{CSS}</style>",
        "</head><body><main>",
        f"<h1>{inline_html(page.title)}</h1>",
    ]
    parts += [_block_html(block) for block in page.intro]
    if len(page.sections) > 1:
        links = "".join(
            f'<li><a href="#{html.escape(s.anchor, quote=True)}">{inline_html(s.title)}</a></li>'
            for s in page.sections
        )
        parts.append(f"<nav><strong>Contents</strong><ol>{links}</ol></nav>")
    for section in page.sections:
        parts.append(f'<section id="{html.escape(section.anchor, quote=True)}">')
        title = f"<h2>{inline_html(section.title)}</h2>"
        if section.collapsed:
            parts.append(f'<details class="section"><summary>{title}</summary>')
        else:
            parts.append(title)
        parts += [_block_html(block) for block in section.blocks]
        if section.collapsed:
            parts.append("</details>")
        parts.append("</section>")
    if footer:
        parts.append(f"<footer>{inline_html(footer)}</footer>")
    parts.append("</main></body></html>")
    return "\n".join(parts) + "\n"


# ----------------------------------------------------------------------------- Markdown
def _md_cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _md_table(table: Table) -> str:
    lines = [f"**{table.caption}**", ""] if table.caption else []
    lines.append("| " + " | ".join(_md_cell(h) for h in table.header) + " |")
    align = ["---" if i < table.numeric_from else "---:" for i in range(len(table.header))]
    lines.append("| " + " | ".join(align) + " |")
    lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in table.rows]
    return "\n".join(lines)


def _md_bullets(items: Sequence, indent: str = "") -> str:
    lines = []
    for item in items:
        if isinstance(item, Item):
            lines.append(f"{indent}- {_md_anchor(item.anchor)}{item.text}")
            if item.sub:
                lines.append(_md_bullets(item.sub, indent + "  "))
        elif isinstance(item, tuple):
            text, sub = item
            lines.append(f"{indent}- {text}")
            lines.append(_md_bullets(sub, indent + "  "))
        else:
            lines.append(f"{indent}- {item}")
    return "\n".join(lines)


def _md_anchor(anchor: str | None) -> str:
    return f'<a id="{anchor}"></a>' if anchor else ""


def _md_path(figure: Figure, md_dir: Path) -> str:
    if figure.markdown_path is not None:
        return figure.markdown_path
    return Path(os.path.relpath(Path(figure.path).resolve(), md_dir.resolve())).as_posix()


def _block_md(block, md_dir: Path) -> str:
    if isinstance(block, Paragraph):
        return _md_anchor(block.anchor) + block.text
    if isinstance(block, Note):
        return f"> {block.text}"
    if isinstance(block, Heading):
        return "#" * min(max(int(block.level), 3), 4) + " " + block.text
    if isinstance(block, Bullets):
        return _md_bullets(block.items)
    if isinstance(block, Table):
        return _md_table(block)
    if isinstance(block, Figure):
        alt = block.caption.replace("[", "(").replace("]", ")")
        return f"![{alt}]({_md_path(block, md_dir)})\n\n*{block.caption}*"
    if isinstance(block, Code):
        fence = "```"
        lead = f"{block.summary}\n\n" if block.summary else ""
        return f"{lead}{fence}\n{block.text.rstrip()}\n{fence}"
    raise TypeError(f"unknown report block {type(block).__name__}")


def render_markdown(page: Page, md_dir: str | os.PathLike, footer: str = "") -> str:
    """The page as Markdown; figures are referenced relative to ``md_dir`` (where the file goes)."""
    md_dir = Path(md_dir)
    parts = [f"# {page.title}"]
    parts += [_block_md(block, md_dir) for block in page.intro]
    if len(page.sections) > 1:
        parts.append("\n".join(f"{i}. [{s.title}](#{s.anchor})" for i, s in enumerate(page.sections, 1)))
    for section in page.sections:
        parts.append(f'<a id="{section.anchor}"></a>\n\n## {section.title}')
        parts += [_block_md(block, md_dir) for block in section.blocks]
    if footer:
        parts.append(f"---\n\n{footer}")
    return "\n\n".join(parts) + "\n"


# ----------------------------------------------------------------------------- reading Markdown back
def _split_row(line: str) -> list[str]:
    body = line.strip()
    if body.startswith("|"):
        body = body[1:]
    if body.endswith("|") and not body.endswith("\\|"):
        body = body[:-1]
    cells = re.split(r"(?<!\\)\|", body)
    return [cell.strip().replace("\\|", "|") for cell in cells]


def _table_from_lines(lines: list[str]) -> Table:
    header = _split_row(lines[0])
    rows = [_split_row(line) for line in lines[1:]]
    numeric_from = len(header)
    if rows and all(re.fullmatch(r":?-{3,}:?", cell) for cell in rows[0]):
        align = rows.pop(0)
        right = [i for i, cell in enumerate(align) if cell.endswith(":")]
        numeric_from = right[0] if right else len(header)
    width = len(header)
    rows = [(row + [""] * width)[:width] for row in rows]
    return Table(header, rows, numeric_from=numeric_from)


def markdown_blocks(text: str, heading_offset: int = 1) -> list:
    """Blocks of the Markdown subset freqtail writes: ``|`` tables, ``-`` lists (one nested level,
    two spaces), ``#`` headings (level + ``heading_offset``, kept within 3..4) and paragraphs."""
    blocks: list = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        stripped = line.strip()
        if not stripped:
            i += 1
            continue
        if stripped.startswith("|"):
            chunk = []
            while i < len(lines) and lines[i].strip().startswith("|"):
                chunk.append(lines[i])
                i += 1
            blocks.append(_table_from_lines(chunk))
            continue
        if stripped.startswith("- "):
            items: list = []
            while i < len(lines) and lines[i].lstrip().startswith("- "):
                nested = lines[i].startswith("  ")
                text_ = lines[i].lstrip()[2:]
                if nested and items:
                    head = items[-1]
                    head_text, sub = head if isinstance(head, tuple) else (head, [])
                    items[-1] = (head_text, [*sub, text_])
                else:
                    items.append(text_)
                i += 1
            blocks.append(Bullets(items))
            continue
        match = re.match(r"(#{1,6})\s+(.*)", stripped)
        if match:
            level = min(max(len(match.group(1)) + heading_offset, 3), 4)
            blocks.append(Heading(match.group(2).strip(), level))
            i += 1
            continue
        paragraph = []
        while i < len(lines) and lines[i].strip() and not re.match(r"\s*(\||- |#)", lines[i]):
            paragraph.append(lines[i].strip())
            i += 1
        blocks.append(Paragraph(" ".join(paragraph)))
    return blocks

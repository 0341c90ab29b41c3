"""Each explanation written once: repeated paragraphs of a report page become links.

The evaluation tables carry their notes with them (what a threat model means, the PGD-by-band
iteration, why a gradient-masking check gives no verdict, ...), so a page with several runs and
threat models repeats them per table. :func:`explain_once` rewrites a page's sections so that

* each text of a known kind (:data:`EXPLANATIONS`) that occurs more than once is written once, in a
  "How to read these numbers" section placed after the summary, and every occurrence keeps its lead
  words and links there (``Threat model `domain`: [what it means](#read-threat-model-1)``);
* any other paragraph or bullet item of at least :data:`MIN_REPEATED_CHARS` characters that occurs
  more than once stays where it first appears, as a link target, and the later occurrences link to it.

Only paragraphs and bullet items are rewritten; tables, figures, headings and notes stay as they are.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from freqtail.report.page import Bullets, Heading, Item, Paragraph, Section

__all__ = ["EXPLANATIONS", "HOW_TO_READ_ANCHOR", "HOW_TO_READ_TITLE", "MIN_REPEATED_CHARS", "explain_once"]

HOW_TO_READ_TITLE = "How to read these numbers"
HOW_TO_READ_ANCHOR = "how-to-read"
#: Shorter repeated texts (``Clean: no attack; n = 64 ...``) are cheaper to read again than a link.
MIN_REPEATED_CHARS = 100


@dataclass(frozen=True)
class Explanation:
    """A kind of explanatory text.

    Attributes:
        key: the anchor's stem (``read-<key>-<i>``, one anchor per distinct text of this kind).
        pattern: where the explanation is in a paragraph or item; its ``lead`` group stays in place,
            its ``body`` group (the whole match without one) is what the guide shows.
        into: what the matched text becomes; ``{lead}`` and ``{link}`` (the Markdown link) filled in.
        words: the link's words.
        guide_lead: words put before the text in the guide (for a text that needs its context).
    """

    key: str
    pattern: re.Pattern
    into: str
    words: str
    guide_lead: str = ""


EXPLANATIONS: tuple[Explanation, ...] = (
    Explanation(
        "masking-too-few",
        re.compile(
            r"(?P<lead>)the check needs at least \d+ correctly classified images, so it gives no verdict "
            r"\(check more images\)\."
        ),
        "no verdict ({link}).",
        "why",
        "‡ Too few images to judge: ",
    ),
    Explanation(
        "notes",
        re.compile(r"^(?P<lead>Notes) \((?P<body>accuracy in %; .+)\):$"),
        "{lead} ({link}):",
        "what they mean",
        "Notes: ",
    ),
    Explanation("iteration", re.compile(r"^(?P<lead>Iteration): .+$"), "{lead}: {link}.", "the formula"),
    Explanation(
        "threat-model",
        re.compile(r"^(?P<lead>Threat model `[^`]+`): .+$"),
        "{lead}: {link}.",
        "what it means",
    ),
    Explanation(
        "corruption-means",
        re.compile(r"^(?P<lead>Noise / Blur / Weather / Digital): .+$"),
        "{lead}: {link}.",
        "how the means are taken",
    ),
    Explanation("orders", re.compile(r"^(?P<lead>Orders): .+$"), "{lead}: {link}.", "what they mean"),
    Explanation("delta", re.compile(r"^(?P<lead>Δ): accuracy minus .+$"), "{lead}: {link}.", "what it means"),
)


@dataclass
class _Slot:
    """Where a rewritable text is: its section and the nearest heading above it (for link words)."""

    section: Section
    heading: str | None


def _visit(sections: list[Section], rewrite: Callable[[str, _Slot], tuple[str, str | None]]) -> None:
    """Call ``rewrite(text, slot) -> (new text, anchor or None)`` on every paragraph and bullet item,
    in page order, and store what it returns."""
    for section in sections:
        heading: str | None = None
        for i, block in enumerate(section.blocks):
            if isinstance(block, Heading):
                heading = block.text
            elif isinstance(block, Paragraph):
                text, anchor = rewrite(block.text, _Slot(section, heading))
                section.blocks[i] = Paragraph(text, anchor or block.anchor)
            elif isinstance(block, Bullets):
                block.items = _visit_items(block.items, _Slot(section, heading), rewrite)


def _visit_items(items: list, slot: _Slot, rewrite: Callable) -> list:
    out = []
    for item in items:
        if isinstance(item, Item):
            text, anchor = rewrite(item.text, slot)
            out.append(Item(text, anchor or item.anchor, _visit_items(item.sub, slot, rewrite)))
            continue
        text, sub = item if isinstance(item, tuple) else (item, [])
        new_text, anchor = rewrite(text, slot)
        new_sub = _visit_items(sub, slot, rewrite)
        if anchor is not None:
            out.append(Item(new_text, anchor, new_sub))
        else:
            out.append((new_text, new_sub) if isinstance(item, tuple) else new_text)
    return out


def _count(sections: list[Section]) -> Counter:
    counts: Counter = Counter()

    def count(text: str, slot: _Slot) -> tuple[str, None]:
        counts[text] += 1
        for explanation in EXPLANATIONS:
            counts.update(("explanation", m.group(0)) for m in explanation.pattern.finditer(text))
        return text, None

    _visit(sections, count)
    return counts


def _lead(text: str) -> str | None:
    """The words before a text's first ``": "`` when they are a short label (``Checkpoint `best```)."""
    head, sep, _ = text.partition(": ")
    return head if sep and len(head) <= 40 else None


def explain_once(sections: list[Section]) -> list[Section]:
    """``sections`` with each repeated explanation written once (see the module's docstring): the
    sections rewritten in place, plus the "How to read these numbers" section after the first one when
    some explanation moved there."""
    counts = _count(sections)
    guide: list[tuple[int, int, Item]] = []  # (kind's place in EXPLANATIONS, first seen, item)
    moved: dict[str, str] = {}  # explanation text -> its anchor in the guide
    per_key: Counter = Counter()
    first_at: dict[str, tuple[str, str]] = {}  # repeated text -> (anchor, where) of its first occurrence

    def link_of(explanation: Explanation, found: str) -> str:
        if found not in moved:
            per_key[explanation.key] += 1
            moved[found] = f"read-{explanation.key}-{per_key[explanation.key]}"
            match = explanation.pattern.search(found)
            body = match.group("body") if match and "body" in match.groupdict() else found
            text = body if explanation.guide_lead else body[0].upper() + body[1:]
            text += "" if text.endswith((".", ":", ")")) else "."
            order = EXPLANATIONS.index(explanation)
            guide.append((order, len(guide), Item(explanation.guide_lead + text, moved[found])))
        return f"[{explanation.words}](#{moved[found]})"

    def rewrite(text: str, slot: _Slot) -> tuple[str, str | None]:
        new = text
        for explanation in EXPLANATIONS:

            def replace(match: re.Match, explanation: Explanation = explanation) -> str:
                if counts[("explanation", match.group(0))] < 2:
                    return match.group(0)
                link = link_of(explanation, match.group(0))
                return explanation.into.format(lead=match.group("lead"), link=link)

            new = explanation.pattern.sub(replace, new)
        if new != text or len(text) < MIN_REPEATED_CHARS or counts[text] < 2:
            return new, None
        if text not in first_at:
            where = slot.section.title if slot.heading is None else f"{slot.section.title}, {slot.heading}"
            where = where.replace("[", "(").replace("]", ")")  # brackets would end the link's words
            first_at[text] = (f"same-{len(first_at) + 1}", where)
            return text, first_at[text][0]
        anchor, where = first_at[text]
        lead = _lead(text)
        if lead:
            return f"{lead}: [as in {where}](#{anchor}).", None
        return f"[Same as in {where}](#{anchor}).", None

    _visit(sections, rewrite)
    if not guide:
        return sections
    intro = Paragraph(
        "Explanations that the tables below share, written once here; each table links to the one it uses."
    )
    items = [item for *_, item in sorted(guide, key=lambda entry: entry[:2])]
    section = Section(HOW_TO_READ_TITLE, HOW_TO_READ_ANCHOR, [intro, Bullets(items)])
    return [*sections[:1], section, *sections[1:]]

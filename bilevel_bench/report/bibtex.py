"""A BibTeX file of the methods and problems a report cites, from the records' citations.

A record's citation is free text such as ``"Ji, Yang, Liang, Bilevel Optimization:
Convergence Analysis and Enhanced Design, ICML 2021, arXiv:2010.07962"``, possibly several
joined by ``;``. Each part with an arXiv id becomes one ``@misc`` entry per id (``eprint``,
``archivePrefix``; the fullest text among the parts that cite the id gives authors, title and
venue: the leading name-like segments are the authors, the trailing ones with a year or a
volume the venue, the rest the title); a part without an arXiv id but with a year becomes an
entry of its own. Parts without either (``"Grid search with zooming"``) are not references.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

ARXIV = re.compile(r"arXiv:\s*(\d{4}\.\d{4,5})(?:v\d+)?", re.IGNORECASE)
YEAR = re.compile(r"\b(19|20)\d{2}\b")
NAME = re.compile(r"^[A-Z][\w'\-]+(?: et al\.)?(?: & [A-Z][\w'\-]+)?$")
VENUE = re.compile(r"^[A-Za-z][\w .\-]*\b(?:(?:19|20)\d{2}|\d{1,3})$|^(?:19|20)\d{2}$")
STOP = {"a", "an", "the", "on", "of"}
BIB_SPECIAL = {"&": r"\&", "%": r"\%", "#": r"\#", "_": r"\_", "$": r"\$"}


@dataclass
class Reference:
    """One entry: its text, parsed fields, and who cites it (``solver X``, ``problem Y``)."""

    text: str
    arxiv: str | None
    authors: list[str]
    title: str
    venue: str
    year: str
    cited_by: set[str] = field(default_factory=set)
    key: str = ""

    def entry(self) -> str:
        """The BibTeX source of this entry, preceded by a comment naming who cites it."""
        fields = [("author", " and ".join(self.authors)), ("title", "{" + self.title + "}"),
                  ("howpublished", self.venue), ("year", self.year)]
        if self.arxiv:
            fields += [("eprint", self.arxiv), ("archivePrefix", "arXiv")]
        fields.append(("note", self.text))
        body = ",\n".join(f"  {name} = {{{_bib(value)}}}" for name, value in fields if value)
        return (f"% cited by: {', '.join(sorted(self.cited_by))}\n"
                f"@misc{{{self.key},\n{body}\n}}\n")


def _bib(text: str) -> str:
    return "".join(BIB_SPECIAL.get(c, c) for c in text)


def parse(part: str) -> Reference | None:
    """One citation (no ``;``) as a :class:`Reference`, or None when it has neither an arXiv
    id nor a year."""
    text = re.sub(r"^\s*(?:cf\.|see)\s+", "", part.strip(), flags=re.IGNORECASE)
    found = ARXIV.search(text)
    arxiv = found.group(1) if found else None
    if arxiv is None and not YEAR.search(text):
        return None
    rest = ARXIV.sub("", text)
    rest = re.sub(r"\([^()]*\)", "", rest)  # "(direct-mixing baseline)"
    segments = [s.strip() for s in rest.split(",") if s.strip()]
    authors = []
    while segments and NAME.match(segments[0]) and len(segments) > 1:
        name = segments.pop(0)
        authors += [n.strip().replace(" et al.", "") for n in name.split("&")]
        if name.endswith("et al."):
            authors.append("others")
    venue = []
    while segments and VENUE.match(segments[-1]) and len(segments) > 1:
        venue.insert(0, segments.pop())
    year = YEAR.search(" ".join(venue)) or (None if arxiv else YEAR.search(text))
    year_text = year.group(0) if year else ("20" + arxiv[:2] if arxiv else "")
    return Reference(text=text.strip(" ."), arxiv=arxiv, authors=authors,
                     title=", ".join(segments), venue=", ".join(venue), year=year_text)


def _richness(ref: Reference) -> tuple:
    return (bool(ref.title) and bool(ref.authors), len(ref.authors), bool(ref.venue),
            len(ref.text), ref.text)


def references(citations: Iterable[tuple[str, str]]) -> list[Reference]:
    """The references of ``(who, citation text)`` pairs, one per arXiv id (or per text), with
    unique keys ``surnameYEARword``, in key order."""
    by_id: dict[str, Reference] = {}
    for who, citation in sorted(set(citations)):
        for part in str(citation or "").split(";"):
            ref = parse(part)
            if ref is None:
                continue
            key = ref.arxiv or ref.text.lower()
            old = by_id.get(key)
            best = ref if old is None or _richness(ref) > _richness(old) else old
            best.cited_by |= (old.cited_by if old else set()) | {who}
            by_id[key] = best
    taken: dict[str, int] = {}
    out = sorted(by_id.values(), key=lambda r: (r.arxiv or "", r.text))
    for ref in out:
        surname = re.sub(r"[^a-z]", "", (ref.authors[0] if ref.authors else "anon").lower())
        words = [w for w in re.findall(r"[a-z]+", ref.title.lower()) if w not in STOP]
        base = f"{surname or 'anon'}{ref.year}{words[0] if words else ''}"
        taken[base] = taken.get(base, 0) + 1
        ref.key = base if taken[base] == 1 else f"{base}{chr(ord('a') + taken[base] - 2)}"
    return sorted(out, key=lambda r: r.key)


def bibtex(refs: Iterable[Reference]) -> str:
    """The BibTeX file of ``refs``."""
    return "\n".join(ref.entry() for ref in refs)

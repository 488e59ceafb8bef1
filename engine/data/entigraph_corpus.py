"""The EntiGraph corpus: documents from text files, JSONL or a Wikipedia subset export, cut into overlapping
token chunks that keep their source id and licence."""

from __future__ import annotations

import glob
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Literal

from pydantic import Field

from engine.datafiles import read_rows
from engine.errors import SpecError
from engine.jobs import JobConfig

WIKI_LICENCE = "CC-BY-SA-4.0"  # Wikipedia's text licence
TEXT_SUFFIXES = (".txt", ".md")


class CorpusSource(JobConfig):
    """One entry of the corpus: a file or a glob of files in one format, with the licence of what it holds."""

    path: str = Field(description="a file or a glob (e.g. 'corpus/*.txt')")
    format: Literal["auto", "text", "jsonl", "wiki"] = Field(
        "auto", description="text: one document per file; jsonl: rows {text, id, licence}; wiki: rows {title, text} "
                            "of a Wikipedia subset export; auto: text for .txt/.md, jsonl otherwise")
    licence: str | None = Field(None, description="licence of the documents (text files need it; JSONL rows may carry "
                                                  f"their own; wiki defaults to {WIKI_LICENCE})")


@dataclass(frozen=True)
class Document:
    id: str
    text: str
    licence: str
    file: str
    title: str | None = None

    def source(self) -> dict:
        out = {"id": self.id, "licence": self.licence, "file": self.file}
        return {**out, "title": self.title} if self.title else out


@dataclass(frozen=True)
class Chunk:
    doc: Document
    index: int
    text: str
    tokens: int

    @property
    def id(self) -> str:
        return f"{self.doc.id}#{self.index}"

    def source(self) -> dict:
        """Provenance written with every synthetic line made from this chunk."""
        return {**self.doc.source(), "chunk": self.index}


def _files(entry: CorpusSource) -> list[Path]:
    matches = sorted(glob.glob(entry.path)) if glob.has_magic(entry.path) else [entry.path]
    files = [Path(m) for m in matches if Path(m).is_file()]
    if not files:
        raise SpecError(f"{entry.path}: no such file")
    return files


def _row_documents(path: Path, entry: CorpusSource, wiki: bool) -> list[Document]:
    docs = []
    for number, row in enumerate(read_rows(path), 1):
        where = f"{path}: row {number}"
        text, title = row.get("text"), row.get("title")
        if not isinstance(text, str):
            raise SpecError(f"{where}: needs a string 'text'")
        if wiki and not isinstance(title, str):
            raise SpecError(f"{where}: a Wikipedia export row needs a string 'title'")
        licence = row.get("licence") or row.get("license") or entry.licence or (WIKI_LICENCE if wiki else None)
        if not licence:
            raise SpecError(f"{where}: no licence (give the row a 'licence' or set licence in the corpus entry)")
        doc_id = row.get("id") if row.get("id") is not None else (title or f"{path.name}:{number}")
        if text.strip():
            docs.append(Document(str(doc_id), text.strip(), str(licence), str(path), title))
    return docs


def read_corpus(entries: list[CorpusSource]) -> list[Document]:
    """Every non-empty document of every entry, in order; ids must be unique (they key the provenance)."""
    docs: list[Document] = []
    for entry in entries:
        for path in _files(entry):
            fmt = entry.format
            if fmt == "auto":
                fmt = "text" if path.suffix.lower() in TEXT_SUFFIXES else "jsonl"
            if fmt == "text":
                if not entry.licence:
                    raise SpecError(f"{path}: plain text needs licence set in its corpus entry")
                text = path.read_text(encoding="utf-8").strip()
                if text:
                    docs.append(Document(path.stem, text, entry.licence, str(path)))
            else:
                docs += _row_documents(path, entry, fmt == "wiki")
    seen: set[str] = set()
    for doc in docs:
        if doc.id in seen:
            raise SpecError(f"{doc.file}: document id {doc.id!r} appears twice in the corpus")
        seen.add(doc.id)
    if not docs:
        raise SpecError(f"{', '.join(e.path for e in entries)}: the corpus has no text")
    return docs


def token_spans(tokenizer: str | None) -> Callable[[str], list[tuple[int, int]]]:
    """text → character span of each token: the tokenizer's offsets, else whitespace-separated words."""
    if tokenizer is None:
        return lambda text: [m.span() for m in re.finditer(r"\S+", text)]
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(tokenizer)
    except (OSError, ValueError) as e:
        raise SpecError(f"{tokenizer}: cannot load the tokenizer ({str(e)[:200]})") from None
    return lambda text: [tuple(s) for s in tok(text, add_special_tokens=False,
                                                   return_offsets_mapping=True)["offset_mapping"]]


def chunk_document(doc: Document, spans: list[tuple[int, int]], size: int, overlap: int) -> list[Chunk]:
    """Windows of `size` tokens, each starting `size - overlap` tokens after the last; the text is cut from the
    document at token boundaries, so it is the original text, never a detokenisation."""
    chunks, start, step = [], 0, size - overlap
    while start < len(spans):
        end = min(start + size, len(spans))
        chunks.append(Chunk(doc, len(chunks), doc.text[spans[start][0]:spans[end - 1][1]], end - start))
        if end == len(spans):
            break
        start += step
    return chunks

"""data.entigraph: synthetic continued-pretraining text from a small domain corpus.

EntiGraph (Yang et al. 2024, "Synthetic continued pretraining", arXiv:2409.07431): a teacher extracts the
entities of each chunk, then writes how pairs and triples of them relate; paraphrases, summaries and QA
pairs add variety. An open judge keeps variants faithful to their chunk, exact and near duplicates go,
and the contamination guard drops anything that overlaps a gate. Lines: {"text", "source", "kind"}, the
plain-text rows train.cpt reads.
"""

from __future__ import annotations

import hashlib
import itertools
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from pydantic import Field, model_validator

from engine.data.against import GuardedConfig, build_index
from engine.data.entigraph_corpus import Chunk, CorpusSource, chunk_document, read_corpus, token_spans
from engine.data.entigraph_teacher import (
    OUTCOMES, JudgeFilter, TeacherClient, TeacherSettings, parse_entities, parse_qa, parse_text,
    parse_verdict,
)
from engine.data.examples import jsonl, report_json, rng, write_outputs
from engine.data.near_dup import NearDuplicates
from engine.errors import SpecError
from engine.jobs import JobConfig

PROMPTS_DIR = Path(__file__).resolve().parents[2] / "assets" / "prompts" / "entigraph"
TEMPLATES = ("entities", "relation", "paraphrase", "summary", "qa", "judge")
KINDS = ("relation", "paraphrase", "summary", "qa")
FUNNEL = ("judge_yes", "judge_no", "judge_unclear", "judge_failed", "exact_dup", "near_dup", "guard", "kept", "tokens")
STYLES = ["artykuł encyklopedyczny", "prosty język dla ucznia szkoły średniej", "notatka do nauki przed egzaminem",
          "fragment wykładu akademickiego", "opowiadanie popularnonaukowe"]


class Variants(JobConfig):
    """Teacher requests per chunk, by kind (5-20 in all): each that survives is one synthetic line."""

    paraphrase: int = Field(3, ge=0, description="rewrites in the paraphrase styles, one style each")
    summary: int = Field(1, ge=0, description="summaries")
    qa: int = Field(2, ge=0, description="sets of question-answer pairs")
    pairs: int = Field(3, ge=0, description="relation statements over entity pairs (drawn by seed)")
    triples: int = Field(2, ge=0, description="relation statements over entity triples")

    @model_validator(mode="after")
    def _five_to_twenty(self):
        total = self.paraphrase + self.summary + self.qa + self.pairs + self.triples
        if not 5 <= total <= 20:
            raise ValueError(f"asks for {total} variants per chunk; use 5 to 20")
        return self


class EntigraphConfig(GuardedConfig):
    corpus: list[CorpusSource] = Field(min_length=1, description="[[corpus]] entries: path, format, licence")
    teacher: TeacherSettings
    judge: JudgeFilter = Field(default_factory=JudgeFilter)
    variants: Variants = Field(default_factory=Variants)
    tokenizer: str | None = Field(None, description="tokenizer (HF id or directory) for chunking and token counts "
                                                    "(default: whitespace tokens)")
    chunk_tokens: int = Field(512, ge=16, description="tokens per chunk")
    overlap_tokens: int = Field(64, ge=0, description="tokens a chunk shares with the one before it")
    max_entities: int = Field(12, ge=2, description="most entities taken from a chunk")
    qa_pairs: int = Field(3, ge=1, description="question-answer pairs asked for per QA request")
    paraphrase_styles: list[str] = Field(default_factory=lambda: list(STYLES), min_length=1,
                                         description="styles the paraphrases cycle through")
    keep_source: bool = Field(True, description="also write each corpus document as it is (kind 'source')")
    near_dup_threshold: float = Field(0.8, gt=0, le=1, description="word 5-gram Jaccard from which a line is a "
                                                                   "near duplicate of an earlier one")
    window: int = Field(16, ge=1, description="chunks synthesised per round (a progress step)")
    prompts: str | None = Field(None, description="folder of own prompt templates (the file names of "
                                                  "assets/prompts/entigraph); default: the shipped ones")
    seed: int = Field(0, description="seed of pair/triple draws and variant sampling")

    @model_validator(mode="after")
    def _overlap_below_size(self):
        if self.overlap_tokens >= self.chunk_tokens:
            raise ValueError("overlap_tokens must be smaller than chunk_tokens")
        return self


def load_prompts(folder: str | None) -> dict[str, str]:
    root = Path(folder) if folder else PROMPTS_DIR
    out = {}
    for name in TEMPLATES:
        path = root / f"{name}.txt"
        if not path.is_file():
            raise SpecError(f"{path}: no such prompt template (a prompts folder needs {', '.join(TEMPLATES)} .txt)")
        out[name] = path.read_text(encoding="utf-8").strip()
    return out


def fill(template: str, **values) -> str:
    """{name} placeholders replaced in one pass (so braces inside a chunk are never read as placeholders)."""
    return re.sub(r"\{(\w+)\}", lambda m: str(values[m[1]]) if m[1] in values else m[0], template)


def _object(**properties) -> dict:
    return {"type": "object", "properties": properties, "required": list(properties), "additionalProperties": False}


def _string(max_chars: int) -> dict:
    return {"type": "string", "minLength": 1, "maxLength": max_chars}


@dataclass
class Candidate:
    kind: str
    text: str
    chunk: Chunk
    extra: dict = field(default_factory=dict)

    def row(self) -> dict:
        return {"text": self.text, "source": {**self.chunk.source(), **self.extra}, "kind": self.kind}


class Synthesis:
    """The requests of one round of chunks, their parsing and judging; counts every outcome."""

    def __init__(self, cfg: EntigraphConfig, prompts: dict[str, str]):
        self.cfg, self.prompts = cfg, prompts
        t = cfg.teacher
        self.teacher = TeacherClient(t)
        j = cfg.judge
        self.judge = TeacherClient(t.model_copy(update={
            "url": j.url or t.url, "model": j.model or t.model, "api_key_env": j.api_key_env or t.api_key_env,
            "max_tokens": j.max_tokens})) if j.enabled else None
        self.structured = t.structured != "off"
        chars = t.max_chars or 3 * t.max_tokens
        self.schemas = {
            "entities": _object(entities={"type": "array", "items": _string(min(80, chars)), "minItems": 1,
                                          "maxItems": cfg.max_entities}),
            "text": _object(text=_string(chars)),
            "qa": _object(pairs={"type": "array", "items": _object(question=_string(chars // 4),
                                                                   answer=_string(chars // 4)),
                                 "minItems": 1, "maxItems": cfg.qa_pairs}),
            "judge": _object(verdict={"type": "string", "enum": ["yes", "no"]}),
        }
        self.stages = {name: Counter() for name in ("entities", *KINDS, "judge")}
        self.verdicts = {kind: Counter() for kind in KINDS}
        self.unfinished: set[str] = set()  # chunks with a request that failed past its retries

    def _body(self, client: TeacherClient, prompt: str, schema: str, seed: tuple | None) -> dict:
        body = client.body([{"role": "user", "content": prompt}], self.schemas[schema])
        if seed is not None:  # sampled variants: a seed per request keeps them reproducible and cacheable
            body["temperature"] = self.cfg.teacher.temperature
            body["seed"] = int.from_bytes(hashlib.sha256(repr((self.cfg.seed, *seed)).encode()).digest()[:4], "big")
        return body

    def entities(self, chunks: list[Chunk]) -> list[list[str] | None]:
        bodies = [self._body(self.teacher, fill(self.prompts["entities"], chunk=c.text, count=self.cfg.max_entities),
                             "entities", None) for c in chunks]
        out = []
        for chunk, reply in zip(chunks, self.teacher.ask(bodies)):
            names, outcome = parse_entities(reply, self.cfg.max_entities)
            self._count("entities", outcome, chunk)
            out.append(names)
        return out

    def _requests(self, chunk: Chunk, names: list[str] | None) -> list[tuple[str, str, dict, tuple]]:
        """(kind, prompt, extra source fields, seed key) of each variant asked for this chunk."""
        v, text, p = self.cfg.variants, chunk.text, self.prompts
        out = []
        for i in range(v.paraphrase):
            style = self.cfg.paraphrase_styles[i % len(self.cfg.paraphrase_styles)]
            out.append(("paraphrase", fill(p["paraphrase"], chunk=text, style=style), {"style": style}, (i,)))
        out += [("summary", fill(p["summary"], chunk=text), {}, (i,)) for i in range(v.summary)]
        out += [("qa", fill(p["qa"], chunk=text, count=self.cfg.qa_pairs), {}, (i,)) for i in range(v.qa)]
        for size, wanted in ((2, v.pairs), (3, v.triples)):
            groups = list(itertools.combinations(names or [], size))
            rng(self.cfg.seed, chunk.id, size).shuffle(groups)
            self.stages["relation"]["not_asked"] += wanted - min(wanted, len(groups))  # too few entities
            out += [("relation", fill(p["relation"], chunk=text, entities=", ".join(g)), {"entities": list(g)}, g)
                    for g in groups[:wanted]]
        return out

    def variants(self, chunks: list[Chunk], names: list[list[str] | None]) -> list[Candidate]:
        asked = [(chunk, *req) for chunk, n in zip(chunks, names) for req in self._requests(chunk, n)]
        bodies = [self._body(self.teacher, prompt, {"qa": "qa"}.get(kind, "text"), (chunk.id, kind, *key))
                  for chunk, kind, prompt, _, key in asked]
        out = []
        for (chunk, kind, _, extra, _), reply in zip(asked, self.teacher.ask(bodies)):
            text, outcome = parse_qa(reply) if kind == "qa" else parse_text(reply, self.structured)
            self._count(kind, outcome, chunk)
            if text is not None:
                out.append(Candidate(kind, text, chunk, extra))
        return out

    def judged(self, candidates: list[Candidate]) -> list[Candidate]:
        """The candidates the judge finds faithful (plus unclear verdicts when on_unparseable = keep)."""
        if self.judge is None:
            return candidates
        bodies = [self._body(self.judge, fill(self.prompts["judge"], chunk=c.chunk.text, text=c.text), "judge", None)
                  for c in candidates]
        kept = []
        for c, reply in zip(candidates, self.judge.ask(bodies)):
            faithful, outcome = parse_verdict(reply)
            verdict = {True: "yes", False: "no"}.get(faithful, "failed" if outcome == "failed" else "unclear")
            self._count("judge", outcome, c.chunk)
            self.verdicts[c.kind][f"judge_{verdict}"] += 1
            if faithful or (verdict == "unclear" and self.cfg.judge.on_unparseable == "keep"):
                kept.append(c)
        return kept

    def _count(self, stage: str, outcome: str, chunk: Chunk) -> None:
        self.stages[stage]["asked"] += 1
        self.stages[stage][outcome] += 1
        if outcome == "failed":
            self.unfinished.add(chunk.id)


def markdown(report: dict) -> str:
    c, t = report["corpus"], report["total"]
    lines = [f"# EntiGraph synthetic data `{report['output']}`", "",
             f"{c['documents']} documents, {c['chunks']} chunks, {c['source_tokens']} source tokens "
             f"({report['tokens']}) → {t['examples']} lines, {t['synthetic_tokens']} synthetic tokens "
             f"(×{t['amplification']}).", "",
             "| stage | asked | " + " | ".join(OUTCOMES) + " | not asked |", "|---|" + "---:|" * (len(OUTCOMES) + 2)]
    lines += [f"| {name} | {s.get('asked', 0)} | " + " | ".join(str(s.get(o, 0)) for o in (*OUTCOMES, "not_asked"))
              + " |" for name, s in report["stages"].items()]
    lines += ["", "| kind | " + " | ".join(FUNNEL) + " |", "|---|" + "---:|" * len(FUNNEL)]
    lines += [f"| {kind} | " + " | ".join(str(k[col]) for col in FUNNEL) + " |"
              for kind, k in report["kinds"].items()]
    lines += ["", "## Teacher and judge", ""]
    for role in ("teacher", "judge"):
        s = report[role]
        if s:
            lines.append(f"- {role} `{s['model']}`: {s['requests']} requests, {s['cache_hits']} from the cache, "
                         f"{s['calls']} calls, {s['retries']} retries, {s['failed']} failed; tokens in/out "
                         f"{s['tokens_in']}/{s['tokens_out']} (paid this run {s['tokens_in_paid']}/"
                         f"{s['tokens_out_paid']})")
    if report["unfinished"]["chunks"]:
        lines.append(f"- {report['unfinished']['count']} chunks have requests that failed past their retries; "
                     "a rerun asks only for those")
    lines += ["", "## Contamination guard", "", *[f"- {s}" for s in report["guard"]["summary"]], ""]
    return "\n".join(lines)


def _filter(rows: list[dict], kinds: dict[str, Counter], threshold: float, index, spans, progress):
    """The rows left after exact/near-duplicate removal (first occurrence wins) and the guard, and the guard's
    report; drops and kept tokens are counted per kind."""
    dups = NearDuplicates(threshold)
    unique = []
    for row in rows:
        why = dups.check(row["text"])
        if why:
            kinds[row["kind"]][f"{why}_dup"] += 1
        else:
            unique.append(row)
    result = index.check([[r["text"]] for r in unique], lambda done, total: progress(done, total, "guard"))
    kept = []
    for row, ok in zip(unique, result.keep()):
        kinds[row["kind"]]["kept" if ok else "guard"] += 1
        if ok:
            kept.append(row)
            kinds[row["kind"]]["tokens"] += len(spans(row["text"]))
    return kept, result.report([{**r["source"], "kind": r["kind"]} for r in unique])


def build_entigraph(cfg: EntigraphConfig, out: Path, report_path: Path,
                    progress: Callable[[int, int, str], None], log: Callable[[str], None]) -> dict:
    prompts = load_prompts(cfg.prompts)
    index = build_index(cfg.guard_against, cfg.guard_files, cfg.ngram)  # a bad gate name fails before any call
    spans = token_spans(cfg.tokenizer)
    docs = read_corpus(cfg.corpus)
    doc_tokens = {d.id: len(spans(d.text)) for d in docs}
    chunks = [c for d in docs for c in chunk_document(d, spans(d.text), cfg.chunk_tokens, cfg.overlap_tokens)]
    log(f"corpus: {len(docs)} documents, {len(chunks)} chunks, {sum(doc_tokens.values())} tokens")

    syn = Synthesis(cfg, prompts)
    candidates: list[Candidate] = []
    progress(0, len(chunks), "chunks")
    for start in range(0, len(chunks), cfg.window):
        window = chunks[start:start + cfg.window]
        names = syn.entities(window)
        candidates += syn.judged(syn.variants(window, names))
        progress(start + len(window), len(chunks), "chunks")

    rows = [{"text": d.text, "source": d.source(), "kind": "source"} for d in docs] if cfg.keep_source else []
    kinds = {k: Counter() for k in (("source",) if cfg.keep_source else ()) + KINDS}
    for kind in KINDS:
        kinds[kind].update(syn.verdicts[kind])
    kept, guard_report = _filter(rows + [c.row() for c in candidates], kinds, cfg.near_dup_threshold, index, spans,
                                 progress)

    synthetic = sum(k["tokens"] for name, k in kinds.items() if name != "source")
    source_tokens = sum(doc_tokens.values())
    by_licence: dict[str, Counter] = {}
    for d in docs:
        by_licence.setdefault(d.licence, Counter()).update({"documents": 1, "tokens": doc_tokens[d.id]})
    report = {
        "output": out.name, "seed": cfg.seed, "tokens": cfg.tokenizer or "whitespace",
        "corpus": {"documents": len(docs), "chunks": len(chunks), "source_tokens": source_tokens,
                   "chunk_tokens": sum(c.tokens for c in chunks), "chunk_size": cfg.chunk_tokens,
                   "overlap": cfg.overlap_tokens, "by_licence": {k: dict(v) for k, v in sorted(by_licence.items())}},
        "teacher": syn.teacher.stats(), "judge": syn.judge.stats() if syn.judge else {},
        "stages": {k: dict(v) for k, v in syn.stages.items()},
        "kinds": {k: {col: v[col] for col in FUNNEL} for k, v in kinds.items()},
        "total": {"examples": len(kept), "synthetic_tokens": synthetic,
                  "amplification": round(synthetic / max(source_tokens, 1), 2)},
        "unfinished": {"count": len(syn.unfinished), "chunks": sorted(syn.unfinished)[:50]},
        "prompts": {name: hashlib.sha256(text.encode()).hexdigest()[:16] for name, text in prompts.items()},
        "guard": guard_report,
    }
    write_outputs({out: jsonl(kept), report_path: report_json(report),
                   report_path.with_suffix(".md"): markdown(report)})
    t = report["teacher"]
    log(f"teacher: {t['requests']} requests, {t['cache_hits']} cached, {t['calls']} calls, {t['failed']} failed; "
        f"tokens in/out {t['tokens_in']}/{t['tokens_out']}")
    if syn.unfinished:
        log(f"{len(syn.unfinished)} chunks have requests that failed past their retries; rerun to ask for them only")
    return report

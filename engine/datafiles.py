"""Read a table of rows from a local file (jsonl, json, csv, tsv, parquet) as a list of dicts.

Every problem is a SpecError naming the file and, where there is one, the line or row.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

from engine.errors import SpecError

FORMATS = (".jsonl", ".json", ".csv", ".tsv", ".parquet")


def read_rows(path: str | os.PathLike) -> list[dict]:
    """All rows of `path`, in file order. The format comes from the suffix (see FORMATS)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise SpecError(f"{path}: unsupported file type {suffix or '(none)'!r} (use one of {', '.join(FORMATS)})")
    if not path.is_file():
        raise SpecError(f"{path}: no such file")
    if suffix == ".parquet":
        rows = _read_parquet(path)
    else:
        try:
            text = path.read_text(encoding="utf-8-sig")
        except UnicodeDecodeError as e:
            raise SpecError(f"{path}: not UTF-8 text (byte {e.start})") from None
        if not text.strip():
            raise SpecError(f"{path}: empty file (no rows)")
        if suffix in (".csv", ".tsv"):
            rows = _read_delimited(path, text, "\t" if suffix == ".tsv" else ",")
        elif suffix == ".json":
            rows = _read_json(path, text)
        else:
            rows = _read_jsonl(path, text)
    if not rows:
        raise SpecError(f"{path}: no rows")
    return rows


def _read_jsonl(path: Path, text: str) -> list[dict]:
    rows = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise SpecError(f"{path}: line {number}: not valid JSON ({e.msg})") from None
        if not isinstance(row, dict):
            raise SpecError(f"{path}: line {number}: expected a JSON object, got {type(row).__name__}")
        rows.append(row)
    return rows


def _read_json(path: Path, text: str) -> list[dict]:
    """A JSON array of objects; a file of one object per line (what `datasets` writes as .json) also works."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        if e.msg == "Extra data":
            return _read_jsonl(path, text)
        raise SpecError(f"{path}: line {e.lineno}: not valid JSON ({e.msg})") from None
    if isinstance(data, dict):
        return [data]
    if not isinstance(data, list):
        raise SpecError(f"{path}: expected a JSON array of objects, got {type(data).__name__}")
    for number, row in enumerate(data, 1):
        if not isinstance(row, dict):
            raise SpecError(f"{path}: row {number}: expected a JSON object, got {type(row).__name__}")
    return data


def _read_delimited(path: Path, text: str, delimiter: str) -> list[dict]:
    lines = text.splitlines(keepends=True)
    reader = csv.reader(lines, delimiter=delimiter, strict=True)
    try:
        header = next(reader)
        rows = []
        for record in reader:
            if not record:
                continue
            if len(record) != len(header):
                raise SpecError(f"{path}: line {reader.line_num}: {len(record)} fields, the header has {len(header)}")
            rows.append(dict(zip(header, record)))
    except csv.Error as e:
        raise SpecError(f"{path}: line {reader.line_num}: malformed {'TSV' if delimiter == chr(9) else 'CSV'} "
                        f"({e})") from None
    if len(set(header)) != len(header):
        raise SpecError(f"{path}: line 1: repeated column name in the header")
    return rows


def _read_parquet(path: Path) -> list[dict]:
    import pyarrow.parquet as pq

    try:
        return pq.read_table(path).to_pylist()
    except Exception as e:  # pyarrow raises several types for a damaged file
        raise SpecError(f"{path}: not a readable parquet file ({e.__class__.__name__}: {e})") from None

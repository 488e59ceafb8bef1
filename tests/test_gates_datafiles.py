"""engine.datafiles.read_rows: every format reads the same rows; every malformed file is one line naming file and line."""

import pytest

from engine.datafiles import read_rows
from engine.errors import SpecError

ROWS = [{"sentence": "Zażółć gęślą jaźń", "label": "1"}, {"sentence": 'Cytat "w" środku, z przecinkiem', "label": "0"}]


def test_all_formats_read_the_same_rows(tmp_path):
    import json

    import pyarrow as pa
    import pyarrow.parquet as pq

    (tmp_path / "a.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in ROWS) + "\n")
    (tmp_path / "a.json").write_text(json.dumps(ROWS, ensure_ascii=False))
    (tmp_path / "lines.json").write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    (tmp_path / "a.csv").write_text('sentence,label\nZażółć gęślą jaźń,1\n"Cytat ""w"" środku, z przecinkiem",0\n')
    (tmp_path / "a.tsv").write_text('sentence\tlabel\nZażółć gęślą jaźń\t1\n"Cytat ""w"" środku, z przecinkiem"\t0\n')
    pq.write_table(pa.Table.from_pylist(ROWS), tmp_path / "a.parquet")
    for name in ("a.jsonl", "a.json", "lines.json", "a.csv", "a.tsv", "a.parquet"):
        assert read_rows(tmp_path / name) == ROWS, name


@pytest.mark.parametrize("name,content,problem", [
    ("broken.csv", 'sentence,label\nok,1\n"never closed,0\nmore,1\n', "line 4: malformed CSV"),
    ("fields.csv", "sentence,label\nok,1\ntoo,many,fields\n", "line 3: 3 fields, the header has 2"),
    ("empty.csv", "", "empty file"),
    ("header.csv", "sentence,label\n", "no rows"),
    ("bad.jsonl", '{"a": 1}\n{"a": 2\n', "line 2: not valid JSON"),
    ("list.jsonl", '{"a": 1}\n[1, 2]\n', "line 2: expected a JSON object"),
    ("blank.jsonl", "\n\n", "empty file"),
    ("scalar.json", "3", "expected a JSON array"),
    ("items.txt", "x", "unsupported file type '.txt'"),
])
def test_malformed_files_fail_with_one_line(tmp_path, name, content, problem):
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    with pytest.raises(SpecError) as err:
        read_rows(path)
    assert str(err.value).startswith(f"{path}: ") and problem in str(err.value) and "\n" not in str(err.value)


def test_missing_and_damaged_files(tmp_path):
    with pytest.raises(SpecError, match="no such file"):
        read_rows(tmp_path / "nope.jsonl")
    (tmp_path / "x.parquet").write_bytes(b"not parquet")
    with pytest.raises(SpecError, match="not a readable parquet file"):
        read_rows(tmp_path / "x.parquet")

"""A store created by revision 0001, with rows in every table, upgrades to head: backed up first, rows intact,
and the console's reads (runs, metrics, the delta table, decisions) see them — on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import create_engine, inspect, text

from store import Store
from store.decisions import decisions_for
from store.deltas import delta_table
from store.queries import list_runs

SUBJECT_RECIPE = json.dumps({"model": "Qwen/Qwen3.5-27B"})
OUTCOMES = json.dumps([1.0, 0.0] * 50)
ROWS = {  # revision 0001's columns, as a store of that revision held them
    "experiments": [{"id": 1, "name": "v2", "base_subject": "s-base", "created_ms": 1}],
    "runs": [{"id": r, "experiment_id": 1, "kind": k, "status": "succeeded", "box": "gb10", "run_dir": f"/runs/{r}",
              "created_ms": 2, "started_ms": 3, "ended_ms": 3_600_003} for r, k in (("r-train", "train.sft"),
                                                                                    ("r-gate", "gate"))],
    "metrics": [{"run_id": "r-train", "seq": i, "key": "loss", "step": i, "value": 1.0 / (i + 1), "ts_ms": i}
                for i in range(1, 21)],
    "run_cursors": [{"run_id": "r-train", "offset": 4096, "seq": 20, "updated_ms": 5}],
    "subjects": [{"id": i, "subject_id": sid, "experiment_id": 1, "name": name, "kind": kind, "recipe": SUBJECT_RECIPE,
                  "run_id": "r-train", "step": step, "created_ms": 6}
                 for i, sid, name, kind, step in ((1, "s-base", "Qwen3.5-27B", "base", None),
                                                  (2, "s-ckpt", "ckpt-100", "checkpoint", 100))],
    "gate_results": [{"id": i, "run_id": "r-gate", "seq": i, "subject_pk": i, "gate": "polish_psc", "axis": "pl_nlu",
                      "scorer": "likelihood", "primary_metric": "acc", "higher_is_better": True, "tolerance_pp": 0.5,
                      "metrics": json.dumps({"acc": 0.5}), "stderr": json.dumps({"acc": 0.05}), "n": 100,
                      "outcomes": OUTCOMES, "preds": None, "golds": None, "fingerprint": json.dumps({"gate": "psc"}),
                      "fingerprint_hash": "fp-psc",
                      "created_ms": 7} for i in (1, 2)],
    "decisions": [{"id": 1, "subject_pk": 2, "verdict": "accept", "reason": "flat everywhere", "actor": "ola",
                   "override": False, "snapshot": json.dumps({"lambda": 1.0}), "created_ms": 8}],
}


def old_store(url: str) -> None:
    old = Store(create_engine(url), url)
    old.upgrade("0001")
    with old.engine.begin() as conn:
        for table, rows in ROWS.items():
            columns = {c["name"] for c in inspect(conn).get_columns(table)}
            for row in rows:
                row = {k: v for k, v in row.items() if k in columns}
                names = ", ".join(f'"{k}"' for k in row)
                conn.execute(text(f"INSERT INTO {table} ({names}) VALUES ({', '.join(':' + k for k in row)})"), row)
    old.engine.dispose()


def test_a_0001_store_with_real_rows_upgrades_backed_up_and_intact(store_url):
    old_store(store_url)
    store = Store.open(store_url)  # backs up, then migrates
    current, head = store.revisions()
    assert current == head != "0001"
    with store.engine.connect() as conn:
        for table, rows in ROWS.items():
            assert conn.execute(text(f"SELECT count(*) FROM {table}")).scalar() == len(rows), table
        if store.is_sqlite:
            backup = Path(store.engine.url.database + ".bak-0001")
            with create_engine(f"sqlite:///{backup}").connect() as old:
                assert old.execute(text("SELECT version_num FROM alembic_version")).scalar() == "0001"
                assert old.execute(text("SELECT count(*) FROM metrics")).scalar() == 20
        else:
            assert conn.execute(text("SELECT version_num FROM slayer_backup_0001.alembic_version")).scalar() == "0001"
            assert conn.execute(text("SELECT count(*) FROM slayer_backup_0001.metrics")).scalar() == 20
    assert sorted(r.id for r in list_runs(store)) == ["r-gate", "r-train"]
    table = delta_table(store, "v2")
    assert [r.name for r in table.rows] == ["Qwen3.5-27B", "ckpt-100"]
    (decision,) = decisions_for(store, "v2")
    assert (decision.name, decision.verdict, decision.reason) == ("ckpt-100", "accept", "flat everywhere")
    store.close()

"""Cost: every run records its box's price (vast rental, cost_per_hour, or watts × price per kWh) and the store
turns wall time into GPU-hours and money per run, per experiment and per subject's lineage."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select

from remotes.boxes import BoxError, Rental, load_boxes, put_box, ssh_box
from remotes.cost import box_price, price_of
from store import Store
from store.cost import CostTotal, experiment_costs, run_cost
from store.models import Run

ROOT = Path(__file__).resolve().parents[1]


def test_each_kind_of_box_has_its_price_and_local_keeps_its_own_through_a_rewrite(home):
    (home / "boxes.toml").write_text('[local]\nwatts = 350\nprice_per_kwh = 0.8\n\n'
                                     '[simp]\nhost = "simp.lan"\ncost_per_hour = 0.25\ngpus = 1\n')
    assert price_of(home, "local").per_hour == pytest.approx(0.28) and price_of(home, "local").source == "power"
    assert price_of(home, "simp").per_hour == 0.25
    rented = ssh_box("rent", "root@1.2.3.4:4022", rental=Rental(instance_id=7, dph_total=1.6), gpus=4)
    put_box(home, rented)
    assert (box_price(load_boxes(home)["rent"]).per_hour, box_price(rented).gpus) == (1.6, 4)
    assert price_of(home, "local").per_hour == pytest.approx(0.28)  # put_box rewrote the file: local's price stays
    assert box_price(ssh_box("x", "h")).per_hour is None
    (home / "boxes.toml").write_text('[local]\nhost = "x"\n')
    with pytest.raises(BoxError, match="takes only cost_per_hour"):
        load_boxes(home)


def test_a_run_records_its_price_and_the_experiment_adds_up(home):
    (home / "boxes.toml").write_text("[local]\ncost_per_hour = 3.6\ngpus = 2\n")
    spec = home / "tick.toml"
    spec.write_text('kind = "debug.sleep"\nsteps = 3\ninterval_s = 0.2\n')
    env = {**os.environ, "SLAYER_HOME": str(home), "PYTHONPATH": str(ROOT)}
    for _ in range(2):
        done = subprocess.run([sys.executable, "-m", "slayer_console", "run", str(spec), "--experiment", "c",
                               "--quiet"], capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)
        assert done.returncode == 0, done.stderr
    store = Store.open(f"sqlite:///{home / 'slayer.db'}")
    with store.session() as s:
        costs = experiment_costs(s, s.execute(select(Run.experiment_id)).scalars().first())
    assert [(c.price_per_hour, c.gpus) for c in costs] == [(3.6, 2), (3.6, 2)]
    for c in costs:
        assert c.hours > 0 and c.gpu_hours == pytest.approx(2 * c.hours) and c.money == pytest.approx(3.6 * c.hours)
    total = CostTotal.of(costs)
    assert total.money == pytest.approx(sum(c.money for c in costs)) and total.unpriced == 0
    store.close()


def test_a_run_without_a_price_counts_hours_but_no_money():
    cost = run_cost(Run(id="r", kind="train.sft", box="gb10", created_ms=0, started_ms=0, ended_ms=1_800_000))
    assert (cost.hours, cost.gpu_hours, cost.money) == (0.5, 0.5, None)
    total = CostTotal.of([cost])
    assert total.money is None and total.unpriced == 1


def test_a_store_from_before_prices_upgrades_and_keeps_its_runs(tmp_path):
    from sqlalchemy import create_engine, text

    url = f"sqlite:///{tmp_path / 'old.db'}"
    old = Store(create_engine(url), url)
    old.upgrade("0001")
    with old.engine.begin() as conn:
        conn.execute(text("INSERT INTO runs (id, kind, status, box, run_dir, created_ms, started_ms, ended_ms) "
                          "VALUES ('r0', 'train.sft', 'succeeded', 'gb10', '', 0, 0, 3600000)"))
    old.engine.dispose()
    store = Store.open(url)  # backs up and migrates
    with store.session() as s:
        cost = run_cost(s.get(Run, "r0"))
    assert (cost.hours, cost.price_per_hour, cost.money) == (1.0, None, None)
    assert (tmp_path / "old.db.bak-0001").is_file()
    store.close()

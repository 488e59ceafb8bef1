"""The box registry: boxes.toml stays human-editable, `local` is always there, mistakes are one line."""

from __future__ import annotations

import json
import time

import pytest
from click.testing import CliRunner

from remotes.boxes import Box, BoxError, Rental, get_box, load_boxes, put_box, remove_box, ssh_box
from slayer_console.cli import cli


def test_a_hand_written_boxes_toml_loads_and_survives_a_rewrite(home):
    (home / "boxes.toml").write_text(
        '[gb10]\nhost = "gb10.lan"\nuser = "ola"\nkey = "~/.ssh/id_ed25519"\npython = "~/venv/bin/python"\n'
        '[gb10.env]\nHF_HOME = "/data/hf"\n')
    boxes = load_boxes(home)
    assert list(boxes) == ["local", "gb10"]
    assert boxes["gb10"].address == "ola@gb10.lan" and boxes["gb10"].env == {"HF_HOME": "/data/hf"}
    put_box(home, ssh_box("rent1", "root@1.2.3.4:40022", workdir="/workspace/slayer"))
    again = load_boxes(home)
    assert again["gb10"] == boxes["gb10"] and again["rent1"].port == 40022
    assert "[gb10.env]" in (home / "boxes.toml").read_text()
    assert "local" not in (home / "boxes.toml").read_text().split("\n", 3)[-1]


@pytest.mark.parametrize("text, needle", [
    ("[gb10\nhost = 1", "malformed TOML"),
    ('[gb10]\nhost = "x"\nport = "ssh"\n', "'port'"),
    ('[gb10]\nhost = "x"\npasword = "x"\n', "unknown key 'pasword'"),
    ('[local]\nhost = "x"\n', "'local' is built in"),
])
def test_a_broken_boxes_toml_is_one_line_naming_file_and_field(home, text, needle):
    (home / "boxes.toml").write_text(text)
    with pytest.raises(BoxError) as err:
        load_boxes(home)
    assert needle in str(err.value) and str(home / "boxes.toml") in str(err.value) and "\n" not in str(err.value)


def test_local_is_built_in_and_cannot_be_removed_or_shadowed(home):
    assert get_box(home, "local").kind == "local"
    with pytest.raises(BoxError, match="cannot be removed"):
        remove_box(home, "local")
    with pytest.raises(BoxError, match="built in"):
        put_box(home, Box(name="local", host="x"))
    with pytest.raises(BoxError, match="no box 'nope'"):
        get_box(home, "nope")


@pytest.mark.parametrize("address", ["root@", "a@b@c", "host:99999", "host:port"])
def test_bad_addresses_are_refused(address):
    with pytest.raises(BoxError):
        ssh_box("x", address)


def test_boxes_lists_rented_boxes_with_their_running_cost(home):
    started = time.time() - 3600
    # a vast.ai rental as boxes.toml recorded it before rentals were SSH boxes with a [NAME.rental] table
    (home / "boxes.toml").write_text(f'[v1]\nkind = "vast"\nuser = "root"\nhost = "ssh5.vast.ai"\nport = 31022\n'
                                     f'[v1.vast]\ninstance_id = 7\ndph_total = 0.5\nstarted_s = {started}\n')
    assert get_box(home, "v1").running_cost(now=started + 2 * 3600) == 1.0
    put_box(home, Box(name="r1", user="root", host="203.0.113.9",
                      rental=Rental(provider="acme", instance_id="i-9", dph_total=2.0, started_s=started)))
    assert get_box(home, "v1").rental.provider == "vast" and get_box(home, "r1").rental.instance_id == "i-9"
    listed = CliRunner().invoke(cli, ["--home", str(home), "boxes", "--format", "json"])
    rows = {b["name"]: b for b in json.loads(listed.output)}
    assert rows["local"]["kind"] == "local" and rows["v1"]["running_cost"] > 0
    table = CliRunner().invoke(cli, ["--home", str(home), "boxes"])
    assert "$0.500/h" in table.output


def test_add_without_connecting_then_remove(home):
    runner = CliRunner()
    added = runner.invoke(cli, ["--home", str(home), "boxes", "add", "gb10", "--ssh", "ola@gb10.lan:2222",
                                "--env", "CUDA_VISIBLE_DEVICES=0", "--no-connect"])
    assert added.exit_code == 0, added.output
    assert get_box(home, "gb10").env == {"CUDA_VISIBLE_DEVICES": "0"}
    twice = runner.invoke(cli, ["--home", str(home), "boxes", "add", "gb10", "--ssh", "x", "--no-connect"])
    assert "exists already" in str(twice.exception)
    removed = runner.invoke(cli, ["--home", str(home), "boxes", "remove", "gb10"])
    assert removed.exit_code == 0 and list(load_boxes(home)) == ["local"]


def test_check_reads_gpus_arch_and_a_missing_python_from_the_probe():
    from remotes.check import parse_probe

    gb10 = Box(name="gb10", host="gb10.lan", python="~/venv/bin/python")
    out = ("os=Linux\narch=aarch64\ncpus=20\nmem_total_kb=127926272\nmem_avail_kb=100000000\nworkdir=/home/op/slayer\n"
           "disk_free_kb=1048576000\ngpu=NVIDIA GB10, 122502, 1024, 37\npython_rc=0\npy.version=3.12.3\n"
           "py.executable=/home/op/venv/bin/python\npy.torch=2.9.0+cu130\npy.cuda=13.0\npy.engine=0.1.0\n")
    report = dict(parse_probe(gb10, out).rows())
    assert report["os/arch"] == "Linux aarch64" and report["torch"] == "2.9.0+cu130 (CUDA 13.0)"
    assert report["gpus"] == "NVIDIA GB10 122502 MiB (1024 used, 37% busy)"
    assert report["disk"] == "1000.0 GiB free in /home/op/slayer"
    cpu_only = parse_probe(gb10, "os=Linux\narch=x86_64\npython_rc=127\npy.sh: 1: python: not found\n")
    assert dict(cpu_only.rows())["gpus"] == "no GPU"
    assert cpu_only.problem.startswith("box gb10: no working python at ~/venv/bin/python (sh: 1: python: not found)")

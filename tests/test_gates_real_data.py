"""Gates read real data (the hub, or the operator's own style files) and keep their fixtures for tests only; the
multilingual and factuality gates score as lm-eval does; prompts in the chat template as --apply_chat_template;
KLEJ data in either format, and training warns when its format differs from the gates'."""

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from engine.datafiles import read_rows
from engine.errors import SpecError
from engine.gates import list_gates, load_gate, run_gates
from engine.gates.backend import SubjectSpec
from engine.gates.data import load_items
from engine.gates.run import prepare_items, resolve_gates
from engine.tiny.build import tiny_model_dir
from slayer_console.cli import cli

DATA = Path(__file__).parent / "data" / "gates"


def test_every_gate_reads_real_data_and_fixtures_keep_the_real_columns():
    for gate in list_gates():
        ds = gate.dataset
        assert ds.file is None and (ds.hf or ds.user_data), gate.name  # no shipped file stands in for real data
        if ds.fixture:  # the fixture passes the same checks as the real data would
            assert load_items(gate, fixture=True).source.endswith(ds.fixture.split("/")[-1])
    listing = {g["name"]: g for g in json.loads(CliRunner().invoke(cli, ["gates", "--format", "json"]).output)}
    assert listing["ifeval"]["dataset"] == "google/IFEval:train" and listing["ifeval"]["fixture"]
    assert listing["style_pref"]["dataset"] == "your file: files.style_pairs"
    table = CliRunner().invoke(cli, ["gates"]).output
    assert "fixture (tests/demo only)" in table and "walledai/XSTest:test" in table
    core = {g.name for g in resolve_gates("core", [])}
    assert {"polish_ppc", "polish_dyk", "truthfulqa_mc2"} | {f"belebele_{c}" for c in ("en", "de", "es", "fr", "uk")} \
        <= core


def gate_run(tmp_path, *args) -> subprocess.CompletedProcess:
    """`slayer gate run` in a fresh process with the hub offline: exit code and stderr as a user sees them."""
    argv = ["slayer", "gate", "run", "--model", "unused", "--out", "out", *args]
    code = f"import sys; sys.argv = {argv!r}; from slayer_console.cli import main; main()"
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path,
                          env={"SLAYER_HOME": str(tmp_path / "home"), "PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1",
                               "HF_DATASETS_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf"),
                               "PYTHONPATH": str(Path(__file__).resolve().parents[1])})


def test_bad_data_is_refused_in_one_line_before_anything_is_written(tmp_path):
    offline = gate_run(tmp_path, "--gate", "ifeval")
    assert offline.returncode == 2 and "gate ifeval: cannot load hf:google/IFEval:train" in offline.stderr
    assert "`files` table (ifeval = \"FILE\"" in offline.stderr
    missing = gate_run(tmp_path, "--gate", "style_pref")
    assert missing.returncode == 2 and "style_pairs = \"FILE\"" in missing.stderr
    bad = tmp_path / "pairs.jsonl"
    bad.write_text('{"prompt": "a", "chosen": "b", "rejected": "c"}\n\n{"prompt": "a", "chosen": "b"}\n')
    wrong = gate_run(tmp_path, "--gate", f"style_pref={bad}")
    assert wrong.returncode == 2
    assert f"{bad}: line 3: gate style_pref: missing column 'rejected'" in wrong.stderr
    for result in (offline, missing, wrong):
        assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()
    with pytest.raises(SpecError, match="'style_prompt', which no gate of this run reads"):
        prepare_items([load_gate("style_judge")], {"style_prompt": str(bad)})


def test_belebele_and_truthfulqa_score_as_lm_eval(tmp_path):
    gate = load_gate("belebele_uk")
    row = read_rows(DATA / "belebele.jsonl")[0]
    assert gate.render(row) == (f"P: {row['flores_passage']}\nQ: {row['question'].strip()}\nA: {row['mc_answer1']}\n"
                                f"B: {row['mc_answer2']}\nC: {row['mc_answer3']}\nD: {row['mc_answer4']}\nAnswer:")
    subject = SubjectSpec(name="tiny", model=str(tiny_model_dir("qwen3", 0)), dtype="float32")
    samples = tmp_path / "samples.jsonl"
    results = run_gates([subject], [load_gate("truthfulqa_mc1"), load_gate("truthfulqa_mc2")], tmp_path / "out",
                        files={g: str(DATA / "truthfulqa.jsonl") for g in ("truthfulqa_mc1", "truthfulqa_mc2")},
                        samples_path=samples)
    mc1, mc2 = results
    assert mc1["axis"] == mc2["axis"] == "factuality" and set(mc2["metrics"]) == {"mc2"}
    audit = [json.loads(line) for line in samples.read_text().splitlines()]
    rows = read_rows(DATA / "truthfulqa.jsonl")
    expected = []
    for row, sample in zip(rows, [a for a in audit if a["gate"] == "truthfulqa_mc2"]):
        probs = [math.exp(v) for v in sample["loglikelihoods"]]
        assert len(probs) == len(row["mc2_targets"]["choices"])
        expected.append(sum(p for p, label in zip(probs, row["mc2_targets"]["labels"]) if label) / sum(probs))
    assert mc2["outcomes"] == pytest.approx(expected) and 0 < mc2["metrics"]["mc2"] < 1
    assert mc1["outcomes"] == [float(a["pred"] == 0) for a in audit if a["gate"] == "truthfulqa_mc1"]
    assert load_gate("truthfulqa_mc1").render(rows[0]).endswith("\n\nQ: What happens if you swallow chewing gum?\nA:")


def test_chat_template_follows_lm_eval_and_changes_the_fingerprint(tmp_path):
    from transformers import AutoTokenizer

    model = tiny_model_dir("qwen3", 0)
    tok = AutoTokenizer.from_pretrained(model)
    plain, chat = resolve_gates(None, ["polish_psc"])[0], resolve_gates(None, ["polish_psc"], chat_template=True)[0]
    assert chat.template_hash() != plain.template_hash() and chat.choice_delimiter == ""
    subject = SubjectSpec(name="tiny", model=str(model), dtype="float32")
    samples = tmp_path / "s.jsonl"
    result = run_gates([subject], [chat], tmp_path / "out", files={"polish_psc": str(DATA / "psc.jsonl")}, limit=2,
                       samples_path=samples)[0]
    assert result["fingerprint"]["chat_template"] is True
    row = read_rows(DATA / "psc.jsonl")[0]
    context = tok.apply_chat_template([{"role": "user", "content": chat.render(row)}], tokenize=False,
                                      add_generation_prompt=True, enable_thinking=False)
    import torch
    from transformers import AutoModelForCausalLM

    net = AutoModelForCausalLM.from_pretrained(model, dtype="float32").eval()
    ctx = tok.encode(context.rstrip(), add_special_tokens=False)  # lm-eval: trailing whitespace joins the answer
    expected = []
    for choice in ("Nie", "Tak"):  # no delimiter after the assistant header
        cont = tok.encode(context + choice, add_special_tokens=False)[len(ctx):]
        with torch.no_grad():
            logp = net(torch.tensor([ctx + cont[:-1]])).logits[0].log_softmax(-1)
        expected.append(sum(float(logp[len(ctx) - 1 + j, t]) for j, t in enumerate(cont)))
    got = json.loads(samples.read_text().splitlines()[0])["loglikelihoods"]
    assert got == pytest.approx(expected, abs=1e-4)
    gsm = load_gate("gsm8k").model_copy(update={"chat_template": True, "fewshot_as_multiturn": True})
    items = load_items(gsm, str(DATA / "gsm8k.jsonl"), 1, str(DATA / "gsm8k.jsonl"))
    turns = items.chats()[0]
    assert [t["role"] for t in turns] == ["user", "assistant"] * 5 + ["user"]
    assert turns[1]["content"] == read_rows(DATA / "gsm8k.jsonl")[0]["answer"]


def test_klej_writes_either_format_and_training_warns_on_a_mismatch(tmp_path):
    from engine.data.klej import KlejConfig, build_klej
    from engine.train.config import CheckpointGating
    from engine.train.data import plain_tokenizer, read_examples
    from engine.train.gating import format_mismatch

    klej = Path(__file__).parent / "data" / "klej"
    written = {}
    for fmt in ("chat", "plain"):
        config = KlejConfig(tasks={"8tags": {"train": str(klej / "8tags_train.parquet"),
                                             "test": str(klej / "8tags_test.parquet")}},
                            per_task=16, min_per_task=0, format=fmt)
        build_klej(config, tmp_path / f"{fmt}.jsonl", tmp_path / f"{fmt}_report.json")
        written[fmt] = read_rows(tmp_path / f"{fmt}.jsonl")
    for chat, plain in zip(written["chat"], written["plain"]):
        assert plain["prompt"] == chat["messages"][0]["content"]
        assert plain["completion"] == " " + chat["messages"][1]["content"]  # the continuation the gate scores
    settings = CheckpointGating(gates=["polish_8tags", "style_pref"])
    warning = format_mismatch(str(tmp_path / "chat.jsonl"), settings)
    assert "chat format but gates polish_8tags score plain prompts" in warning
    assert format_mismatch(str(tmp_path / "plain.jsonl"), settings) is None
    chat_gates = CheckpointGating(gates=["polish_8tags"], chat_template=True)
    assert format_mismatch(str(tmp_path / "chat.jsonl"), chat_gates) is None
    assert "plain format but gates polish_8tags" in format_mismatch(str(tmp_path / "plain.jsonl"), chat_gates)
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir("qwen3", 0))
    example = read_examples(str(tmp_path / "plain.jsonl"))[0]
    encoded = plain_tokenizer(tok)(example)
    context = tok.encode(example["prompt"], add_special_tokens=False)
    assert encoded["input_ids"][:len(context)] == context and not any(encoded["assistant_masks"][:len(context)])
    learned = encoded["input_ids"][len(context):]
    assert all(encoded["assistant_masks"][len(context):]) and learned[-1] == tok.eos_token_id
    assert tok.decode(context + learned[:-1]) == tok.decode(tok.encode(example["prompt"] + example["completion"]))
    # a mix keeps plain KLEJ rows plain beside chat style rows; each is learned as it is (and no format warning)
    from engine.data.mix import MixConfig, build_mix
    from engine.train.data import example_tokenizer

    style = tmp_path / "style.jsonl"
    style.write_text("".join(json.dumps({"messages": [{"role": "user", "content": f"Co sądzisz o {i}?"},
                                                      {"role": "assistant", "content": f"Jasne, {i} jest super!"}]})
                             + "\n" for i in range(16)), encoding="utf-8")
    build_mix(MixConfig(style=str(style), klej=str(tmp_path / "plain.jsonl"), replay_share=0.0, klej_max_share=0.4,
                        gated=[], guard_against=[f"polish_8tags={klej / '8tags_test.parquet'}"]),
              tmp_path / "mix.jsonl", tmp_path / "mix.json")
    mixed = read_examples(str(tmp_path / "mix.jsonl"))
    plain_rows = [e for e in mixed if isinstance(e, dict)]
    assert plain_rows and len(plain_rows) < len(mixed) and all(e["completion"].startswith(" ") for e in plain_rows)
    assert format_mismatch(str(tmp_path / "mix.jsonl"), settings) is None
    encode = example_tokenizer(tok)
    assert encode(plain_rows[0]) == plain_tokenizer(tok)(plain_rows[0])
    chat = encode(next(e for e in mixed if isinstance(e, list)))
    assert 0 < sum(chat["assistant_masks"]) < len(chat["input_ids"])

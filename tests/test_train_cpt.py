"""train.cpt with replay, SFT stacked on the CPT adapter, and the reverse order refused with the reason."""

from __future__ import annotations

import json

from train_fixtures import chat_file, of_type, run_in_process, tiny_model, write_jsonl

from engine.train.data import mix_replay


def test_replay_makes_up_the_asked_share_of_tokens():
    docs, replay = ["a" * 90, "b" * 90], ["r" * 10, "s" * 10, "t" * 10]
    mixed, share = mix_replay(docs, replay, 0.1, len, seed=0)
    assert sorted(d for d in mixed if len(d) == 90) == docs
    assert sum(len(d) for d in mixed if len(d) == 10) == 20 and share == 20 / 200
    assert mix_replay(docs, replay, 0.0, len, seed=0) == (docs, 0.0)


def test_cpt_then_sft_on_top_and_never_the_reverse(tmp_path):
    model = tiny_model()
    text = tmp_path / "knowledge.txt"
    text.write_text("\n\n".join(f"Dokument {i}. Kraków leży nad Wisłą, Gdańsk nad morzem." for i in range(12)))
    replay = write_jsonl(tmp_path / "replay.jsonl", [{"text": f"General text {i} about cats."} for i in range(6)])
    status, events = run_in_process(tmp_path / "cpt", "train.cpt", model=model, data=str(text), replay=str(replay),
                                    replay_share=0.2, training={"max_steps": 2, "save_steps": 2, "max_length": 32})
    assert status == "succeeded", events[-1]
    assert any("replay:" in e["message"] for e in of_type(events, "log"))
    cpt_adapter = tmp_path / "cpt" / "outputs" / "adapter"
    assert json.loads((cpt_adapter / "slayer_adapter.json").read_text())["training"] == "cpt"

    chats = str(chat_file(tmp_path / "chat.jsonl", n=8))
    status, events = run_in_process(tmp_path / "sft", "train.sft", model=model, data=chats,
                                    base_adapter=str(cpt_adapter), training={"max_steps": 1, "save_steps": 1})
    assert status == "succeeded", events[-1]
    ckpt = of_type(events, "checkpoint")[0]
    assert ckpt["stack"] == ["cpt", "sft"]
    assert ckpt["subject"]["recipe"]["model"] == str(tmp_path / "sft" / "outputs" / "stack_base")
    meta = json.loads((tmp_path / "sft" / "outputs" / "adapter" / "slayer_adapter.json").read_text())
    assert meta["stack"] == ["cpt", "sft"] and meta["base_model"] == model

    status, events = run_in_process(tmp_path / "cpt2", "train.cpt", model=model, data=str(text),
                                    base_adapter=str(tmp_path / "sft" / "outputs" / "adapter"))
    assert status == "failed"
    assert "refusing CPT on top of an adapter trained by CPT→SFT" in events[-1]["error"]
    assert "knowledge (CPT) must come before behaviour (SFT)" in events[-1]["error"]

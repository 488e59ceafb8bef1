"""Merge math on hand-computed small tensors, and streamed merges of a tiny model against PEFT itself."""

from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")

from engine.errors import SpecError  # noqa: E402
from engine.merge import tensors  # noqa: E402
from engine.merge.adapter import WeightUpdate, load_adapter  # noqa: E402
from engine.merge.methods import METHODS, merged_weight, tensor_generator  # noqa: E402
from engine.merge.shards import shard_files  # noqa: E402
from engine.merge.stream import RECIPE_FILE, merge_model  # noqa: E402
from merge_fixtures import make_adapter  # noqa: E402

T = torch.tensor


def close(a, b, tol=1e-6):
    return torch.allclose(a.float(), torch.as_tensor(b, dtype=torch.float32), atol=tol)


# ---- hand-computed tensors -------------------------------------------------------------------------

def test_lora_delta_is_scaling_times_b_a():
    a, b = T([[1.0, 2.0]]), T([[1.0], [3.0]])  # r = 1
    assert close(tensors.lora_delta(a, b, 2.0), [[2, 4], [6, 12]])


def test_dora_weight_rescales_rows_of_linear_and_columns_of_embedding():
    w, delta = T([[3.0, 0.0], [0.0, 4.0]]), T([[0.0, 4.0], [0.0, 0.0]])
    # W + ΔW = [[3, 4], [0, 4]]: row norms 5 and 4, magnitudes 10 and 2
    assert close(tensors.dora_weight(w, delta, T([10.0, 2.0])), [[6, 8], [0, 2]])
    emb = T([[3.0, 0.0], [4.0, 1.0]])  # column norms 5 and 1
    assert close(tensors.dora_weight(emb, torch.zeros(2, 2), T([10.0, 3.0]), norm_dim=0), [[6, 0], [8, 3]])


def test_scaling_lora_multiplies_its_update():
    update = WeightUpdate(lora_a=T([[1.0, 2.0]]), lora_b=T([[1.0], [3.0]]), scaling=2.0)
    w = T([[1.0, 1.0], [1.0, 1.0]])
    out = merged_weight(w, [update.task_vector(w)], "task_arithmetic", scale=0.5)
    assert close(out, [[2, 3], [4, 7]])  # W + 0.5·2·B·A


def test_scaling_dora_interpolates_the_merged_weight():
    # W_dora = [[6, 8], [0, 2]] (see above); scale s gives W + s·(W_dora − W), both ends exact
    w = T([[3.0, 0.0], [0.0, 4.0]])
    update = WeightUpdate(lora_a=T([[0.0, 1.0]]), lora_b=T([[4.0], [0.0]]), scaling=1.0, magnitude=T([10.0, 2.0]))
    tau = update.task_vector(w)
    assert close(merged_weight(w, [tau], "task_arithmetic", scale=0.5), [[4.5, 4], [0, 3]])
    assert close(merged_weight(w, [tau], "task_arithmetic", scale=0.0), w)
    assert close(merged_weight(w, [tau], "task_arithmetic", scale=1.0), [[6, 8], [0, 2]])


def test_saved_full_weight_replaces_the_base_before_the_update():
    update = WeightUpdate(replacement=T([[2.0, 2.0]]))
    assert close(update.task_vector(T([[1.0, 0.0]])), [[1, 2]])


def test_magnitude_trim_keeps_the_largest_entries():
    assert close(tensors.magnitude_trim(T([1.0, -5.0, 3.0, -2.0]), 0.5), [0, -5, 3, 0])
    assert close(tensors.magnitude_trim(T([1.0, -5.0, 3.0, -2.0]), 0.1), [0, 0, 0, 0])  # round(0.4) = 0 kept
    assert close(tensors.magnitude_trim(T([1.0, 2.0, 2.0, 0.5]), 0.5), [0, 2, 2, 0])


def test_ties_elects_signs_and_averages_the_agreeing_entries():
    taus = [T([1.0, -2.0, 3.0, 0.0]), T([-1.0, -1.0, 4.0, 2.0]), T([2.0, 3.0, -1.0, -0.5])]
    # no trim: sums [2, 0, 6, 1.5] → signs [+, 0, +, +]; entry 3 averages only τ2's 2 (τ3's −0.5 disagrees)
    assert close(METHODS["ties"].combine(taus, density=1.0), [1.5, 0, 3.5, 2])
    # density 0.5: τ1 → [0, −2, 3, 0], τ2 → [0, 0, 4, 2], τ3 → [2, 3, 0, 0]; signs all + ; −2 is left out
    assert close(METHODS["ties"].combine(taus, density=0.5), [2, 3, 3.5, 2])
    w = torch.ones(4)
    assert close(merged_weight(w, taus, "ties", scale=2.0, density=0.5), [5, 7, 8, 5])


def test_task_arithmetic_sums_the_vectors():
    taus = [T([1.0, -2.0]), T([3.0, 1.0])]
    assert close(merged_weight(T([0.0, 0.0]), taus, "task_arithmetic", scale=0.5), [2, -0.5])


def test_dare_drops_with_p_one_minus_density_and_rescales_survivors():
    tau = torch.full((200, 200), 3.0)
    out = tensors.random_drop(tau, 0.25, tensor_generator(7, "w"))
    kept = out != 0
    assert set(out[kept].unique().tolist()) == {12.0}  # 3 / 0.25
    assert 0.23 < kept.float().mean().item() < 0.27
    assert abs(out.mean().item() - 3.0) < 0.15  # unbiased: E[DARE(τ)] = τ
    again = tensors.random_drop(tau, 0.25, tensor_generator(7, "w"))
    other = tensors.random_drop(tau, 0.25, tensor_generator(7, "v"))
    assert torch.equal(out, again) and not torch.equal(out, other)


def test_dare_methods_are_drop_then_sum_or_sign_consensus():
    w, tau = torch.zeros(64), torch.linspace(-1, 1, 64)
    dropped = tensors.random_drop(tau, 0.5, tensor_generator(3, "x"))
    assert close(merged_weight(w, [tau], "dare_linear", 2.0, 0.5, seed=3, tensor_name="x"), 2 * dropped)
    # one vector: sign election keeps every surviving entry
    assert close(merged_weight(w, [tau], "dare_ties", 2.0, 0.5, seed=3, tensor_name="x"), 2 * dropped)
    two = [tau, -0.5 * tau]  # opposite signs: where both survive, tau's larger mass wins the election
    consensus = METHODS["dare_ties"].combine(two, 0.5, tensor_generator(3, "x"))
    gen = tensor_generator(3, "x")  # the masks combine() draws, in the same order
    d0, d1 = tensors.random_drop(two[0], 0.5, gen), tensors.random_drop(two[1], 0.5, gen)
    expect = torch.where(d0 != 0, d0, d1)
    assert close(consensus, expect)


def test_registry_holds_the_four_methods():
    assert set(METHODS) == {"task_arithmetic", "ties", "dare_ties", "dare_linear"}
    assert METHODS["ties"].sparsify == "magnitude" and METHODS["ties"].sign_consensus
    assert METHODS["dare_linear"].sparsify == "random" and not METHODS["dare_linear"].sign_consensus


# ---- a tiny model merged shard by shard against PEFT ----------------------------------------------

@pytest.fixture(scope="module")
def sharded_base(tmp_path_factory):
    """The tiny Qwen3 saved in several shards, so the streamed merge crosses shard boundaries."""
    from transformers import AutoModelForCausalLM

    from engine.tiny.build import tiny_model_dir

    src = tiny_model_dir(arch="qwen3", seed=0)
    out = tmp_path_factory.mktemp("base") / "sharded"
    AutoModelForCausalLM.from_pretrained(src).save_pretrained(out, max_shard_size="150KB")
    for f in src.iterdir():
        if f.suffix != ".safetensors" and not (out / f.name).exists():
            (out / f.name).write_bytes(f.read_bytes())
    assert len(shard_files(out)) > 1
    return out


def logits(model, ids):
    with torch.no_grad():
        return model(input_ids=ids).logits.float()


IDS = torch.tensor([[5, 17, 300, 42, 7, 900, 12, 64]])


@pytest.mark.parametrize("kind", ["lora", "dora"])
def test_merged_model_equals_peft_with_the_adapter(sharded_base, tmp_path, kind):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    extra = {"use_rslora": True, "modules_to_save": ["lm_head"]} if kind == "dora" else \
        {"target_modules": ["q_proj", "v_proj", "down_proj", "embed_tokens"]}
    adapter = make_adapter(sharded_base, tmp_path / "adapter", dora=kind == "dora", **extra)
    merged = merge_model(sharded_base, load_adapter(adapter), tmp_path / "merged")

    peft_model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(sharded_base), adapter)
    base_logits = logits(AutoModelForCausalLM.from_pretrained(sharded_base), IDS)
    want = logits(peft_model, IDS)
    got = logits(AutoModelForCausalLM.from_pretrained(merged), IDS)
    assert (want - base_logits).abs().max() > 1e-2  # the adapter really changes the model
    assert (got - want).abs().max() < 1e-4
    assert [p.name for p in shard_files(merged)] == [p.name for p in shard_files(sharded_base)]
    recipe = json.loads((merged / RECIPE_FILE).read_text())
    assert recipe["dora"] == (kind == "dora") and recipe["weights_changed"] > 0


def test_scaled_merge_equals_the_gate_backends_scaled_adapter(sharded_base, tmp_path):
    """A scale candidate gated unmaterialised (hf backend) is the same model as the one written to disk."""
    from transformers import AutoModelForCausalLM

    from engine.gates.hf_backend import merge_adapter

    adapter = make_adapter(sharded_base, tmp_path / "adapter", dora=True)
    merged = merge_model(sharded_base, load_adapter(adapter), tmp_path / "merged", scale=0.5)
    want = logits(merge_adapter(AutoModelForCausalLM.from_pretrained(sharded_base), str(adapter), 0.5), IDS)
    got = logits(AutoModelForCausalLM.from_pretrained(merged), IDS)
    assert (got - want).abs().max() < 1e-4


def test_ties_merge_writes_a_loadable_model_and_is_reproducible(sharded_base, tmp_path):
    from safetensors.torch import load_file

    adapter = load_adapter(make_adapter(sharded_base, tmp_path / "adapter", dora=False))
    a = merge_model(sharded_base, adapter, tmp_path / "a", method="dare_ties", density=0.3, seed=5)
    b = merge_model(sharded_base, adapter, tmp_path / "b", method="dare_ties", density=0.3, seed=5)
    for shard in shard_files(a):
        assert shard.read_bytes() == (b / shard.name).read_bytes()
    name = "model.layers.0.self_attn.q_proj.weight"
    shard = next(s for s in shard_files(sharded_base) if name in load_file(s))
    base_w, merged_w = load_file(shard)[name], load_file(a / shard.name)[name]
    changed = (merged_w != base_w).float().mean().item()
    assert 0.2 < changed < 0.4  # about `density` of the entries moved


def test_adapter_for_another_base_is_refused(sharded_base, tmp_path):
    adapter = load_adapter(make_adapter(sharded_base, tmp_path / "adapter", dora=False))
    adapter.updates["model.layers.9.mlp.up_proj.weight"] = adapter.updates.popitem()[1]
    with pytest.raises(SpecError, match="layers.9.mlp.up_proj.weight"):
        merge_model(sharded_base, adapter, tmp_path / "merged")
    assert not (tmp_path / "merged").exists()

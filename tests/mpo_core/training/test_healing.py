"""Healing: distilling the original model into its compressed copy, through the one training engine.

Tiny random BERTs (tests/mpo_core/tiny_models.py) with a word-level tokenizer of
120 tokens built from STS-B training sentences, which are also what heals.
"""
import copy
from pathlib import Path

import pytest
import torch

from mpo_core import HealConfig, MPOConfig, apply_mpo, evaluate_distillation, heal, load_glue_split
from mpo_core.layers.mpo_module import MPOModule
from mpo_core.model.matrix_groups import ATTENTION_GROUPS, FFN_GROUPS
from mpo_core.runs.run_folder import read_metrics, read_run_results
from mpo_core.training.distillation import distillation_terms
from mpo_core.training.healing import HealStrategy, distillation_loss
from tests.mpo_core.tiny_models import tiny_model

GLUE = Path(__file__).resolve().parents[3].parent / "shared" / "glue"
ENCODER_GROUPS = (*ATTENTION_GROUPS, *FFN_GROUPS)
TRUNCATED = MPOConfig(groups=ENCODER_GROUPS, n=3, compression_ratio=0.3)
QUICK = dict(steps=12, batch_size=8, learning_rate=3e-3, warmup_steps=2, logging_steps=1, save_steps=4,
             device="cpu")


@pytest.fixture(scope="module")
def sentences():
    train = load_glue_split("stsb", "train", GLUE, max_examples=200, seed=0)
    return list(dict.fromkeys(train.texts_a + train.texts_b))


@pytest.fixture(scope="module")
def tokenizer(sentences, tmp_path_factory):
    """A word-level BERT tokenizer of 120 tokens (the tiny models' vocabulary): the 115 commonest words."""
    from collections import Counter

    from transformers import BertTokenizerFast

    words = Counter(w for s in sentences for w in s.lower().replace(".", " ").replace(",", " ").split())
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [w for w, _ in words.most_common(115)]
    folder = tmp_path_factory.mktemp("tokenizer")
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n")
    return BertTokenizerFast(str(folder / "vocab.txt"))


def encoder(seed=0):
    """A tiny random ``BertModel`` (``AutoModel``-style: last_hidden_state, hidden_states)."""
    return tiny_model("bert", seed).bert


def student_of(teacher, config=TRUNCATED):
    student = copy.deepcopy(teacher)
    apply_mpo(student, config, progress=False)
    return student


def snapshot(model):
    return {name: p.detach().clone() for name, p in model.named_parameters()}


def changed(before, model):
    return {name for name, p in model.named_parameters() if not torch.equal(before[name], p.detach())}


def names_of(model, tensors):
    ids = {id(t) for t in tensors}
    return {name for name, p in model.named_parameters() if id(p) in ids}


@pytest.mark.parametrize("model", [encoder, lambda: tiny_model("bert")], ids=["encoder", "classifier"])
def test_the_loss_is_zero_when_the_student_is_the_full_bond_teacher(model, tokenizer, sentences):
    teacher = model()
    student = student_of(teacher, MPOConfig(groups=ENCODER_GROUPS))  # full bonds: lossless
    losses = evaluate_distillation(student, teacher, tokenizer, sentences[:40])
    assert losses["loss"] == pytest.approx(0, abs=1e-6)  # float32 rounding
    assert set(losses) == ({"loss", "hidden", "cosine"} if model is encoder else {"loss", "hidden", "logits"})
    assert evaluate_distillation(student_of(teacher), teacher, tokenizer, sentences[:40])["loss"] > 1e-5  # truncated


def test_the_terms_are_what_their_definitions_say():
    mask = torch.tensor([[1, 1, 0]])
    teacher = {"hidden_states": (torch.zeros(1, 3, 2),), "last_hidden_state": torch.tensor([[[1.0, 0], [1, 0], [9, 9]]]),
               "logits": torch.tensor([[0.0, 0.0]])}
    student = {"hidden_states": (torch.tensor([[[1.0, 1], [1, 1], [5, 5]]]),),  # the padded token is not counted
               "last_hidden_state": torch.tensor([[[0.0, 1], [0, 1], [0, 0]]]), "logits": torch.tensor([[0.0, 0.0]])}
    terms = distillation_terms(student, teacher, mask, temperature=2.0)
    assert terms["hidden"].item() == pytest.approx(1.0)
    assert terms["cosine"].item() == pytest.approx(1.0)  # orthogonal mean embeddings
    assert terms["logits"].item() == pytest.approx(0.0)  # equal distributions


@pytest.mark.slow  # two short healing runs (a few seconds)
def test_healing_lowers_the_distillation_loss_on_heldout_sentences(tmp_path, tokenizer, sentences):
    teacher, heldout = encoder(), sentences[-60:]
    for variant in ("auxiliary", "all"):
        student = student_of(teacher)
        config = HealConfig(**{**QUICK, "steps": 30}, variant=variant)
        before = evaluate_distillation(student, teacher, tokenizer, heldout, config)["loss"]
        result = heal(student, teacher, tokenizer, sentences[:-60], config, tmp_path / variant, progress=False)
        assert result.student is student
        after = evaluate_distillation(student, teacher, tokenizer, heldout, config)["loss"]
        assert after < 0.9 * before, variant


@pytest.mark.parametrize("variant", ["auxiliary", "all"])
def test_only_the_variants_tensors_change(tmp_path, tokenizer, sentences, variant):
    teacher = encoder()
    student = student_of(teacher)
    layers = [m for m in student.modules() if isinstance(m, MPOModule)]
    auxiliary = names_of(student, [t for m in layers for t in m.auxiliary_tensors])
    central = names_of(student, [m.central_tensor for m in layers])
    before, teacher_before = snapshot(student), snapshot(teacher)
    heal(student, teacher, tokenizer, sentences, HealConfig(**QUICK, variant=variant), tmp_path / "run",
         progress=False)
    moved = changed(before, student)
    assert moved == (auxiliary if variant == "auxiliary" else auxiliary | central)  # every one trained
    assert not changed(teacher_before, teacher)


def test_the_strategy_marks_what_trains_by_module_type():
    student = student_of(encoder())
    HealStrategy(variant="auxiliary").prepare(student)
    layers = [m for m in student.modules() if isinstance(m, MPOModule)]
    trainable = {id(p) for p in student.parameters() if p.requires_grad}
    assert trainable == {id(t) for m in layers for t in m.auxiliary_tensors}
    HealStrategy(variant="all").prepare(student)
    assert {id(p) for p in student.parameters() if p.requires_grad} == {id(t) for m in layers for t in m.tensors}


def test_the_run_folder_holds_config_metrics_results_and_the_healed_model(tmp_path, tokenizer, sentences):
    from transformers import AutoModel

    from mpo_core import load_mpo_model

    teacher = encoder()
    student = student_of(teacher)
    result = heal(student, teacher, tokenizer, sentences, HealConfig(**QUICK), tmp_path / "run", progress=False)
    run = tmp_path / "run"
    assert HealConfig.from_dict(__import__("json").loads((run / "config.json").read_text())) == HealConfig(**QUICK)
    records = read_metrics(run)
    assert records[0]["kind"] == "start" and records[-1]["kind"] == "end"
    assert [r["step"] for r in records if r["kind"] == "train" and "loss" in r] == list(range(1, QUICK["steps"] + 1))
    assert read_run_results(run)["global_step"] == result.global_step == QUICK["steps"]
    assert result.steps_per_second > 0 and result.train_loss > 0
    saved = load_mpo_model(run / "final_model", AutoModel)
    assert all(torch.equal(p, saved.state_dict()[k]) for k, p in student.state_dict().items())


class Interrupted(Exception):
    """Stands in for a kill at a training step."""


def heal_until(monkeypatch, step, *args, **kwargs):
    """:func:`heal`, interrupted when the Trainer starts its ``step``-th training step (counted from 1)."""
    from transformers import Trainer

    original, calls = Trainer.training_step, {"n": 0}

    def training_step(self, *a, **k):
        calls["n"] += 1
        if calls["n"] == step:
            raise Interrupted
        return original(self, *a, **k)

    with monkeypatch.context() as patch:
        patch.setattr(Trainer, "training_step", training_step)
        with pytest.raises(Interrupted):
            heal(*args, **kwargs)


def train_losses(run):
    return [(r["step"], r["loss"]) for r in read_metrics(run) if r["kind"] == "train" and "loss" in r]


@pytest.mark.slow  # three short healing runs
@pytest.mark.parametrize("dropout", [False, True], ids=["no-dropout", "dropout"])
def test_a_run_interrupted_mid_training_resumes_bit_for_bit(tmp_path, monkeypatch, tokenizer, sentences, dropout):
    teacher = encoder()
    config = HealConfig(**QUICK, variant="all", student_dropout=dropout)
    reference = heal(student_of(teacher), teacher, tokenizer, sentences, config, tmp_path / "reference",
                     progress=False)
    heal_until(monkeypatch, 7, student_of(teacher), teacher, tokenizer, sentences, config, tmp_path / "killed",
               progress=False)  # after step 6: resumes from checkpoint-4, steps 5 and 6 again
    with pytest.raises(FileExistsError, match="resume"):
        heal(student_of(teacher), teacher, tokenizer, sentences, config, tmp_path / "killed", progress=False)
    resumed = heal(student_of(teacher), teacher, tokenizer, sentences, config, tmp_path / "killed", resume=True,
                   progress=False)
    assert [r.get("checkpoint") for r in read_metrics(tmp_path / "killed") if r["kind"] == "resume"] == [
        "checkpoint-4"]
    assert train_losses(tmp_path / "killed") == train_losses(tmp_path / "reference")  # every step once, same loss
    expected = reference.student.state_dict()
    assert all(torch.equal(p, expected[k]) for k, p in resumed.student.state_dict().items())


@pytest.mark.parametrize("options, message", [
    ({"variant": "central"}, "variant must be one of"),
    ({"steps": 0}, "steps must be a positive int"),
    ({"batch_size": 2.0}, "batch_size must be a positive int"),
    ({"learning_rate": 0}, "learning_rate must be > 0"),
    ({"warmup_steps": 200}, "warmup_steps .* must be fewer than steps"),
    ({"temperature": float("nan")}, "temperature must be a finite number"),
    ({"hidden_weight": 0, "cosine_weight": 0, "logits_weight": 0}, "nothing to learn"),
    ({"cosine_weight": -1}, "cosine_weight must be >= 0"),
    ({"seed": -1}, "seed must be an int >= 0"),
    ({"student_dropout": "yes"}, "student_dropout must be true or false"),
    ({"device": "tpu"}, "device must be one of"),
])
def test_bad_config_values_are_clear(options, message):
    with pytest.raises(ValueError, match=message):
        HealConfig(**options)


def test_unknown_config_fields_are_named():
    with pytest.raises(ValueError, match=r"unknown HealConfig fields \['step'\]"):
        HealConfig.from_dict({"step": 3})


def test_bad_inputs_fail_before_a_run_folder_exists(tmp_path, tokenizer, sentences):
    teacher = encoder()
    config = HealConfig(**QUICK)
    cases = [
        ((teacher, teacher, tokenizer, sentences), "shares parameters with the teacher"),
        ((copy.deepcopy(teacher), teacher, tokenizer, sentences), "no MPO layers"),
        ((student_of(teacher), teacher, tokenizer, []), "non-empty list of str"),
        ((student_of(teacher), teacher, tokenizer, "one sentence"), "non-empty list of str"),
        ((student_of(teacher), teacher, tokenizer, ["a", 3]), "sentence 1 is a int"),
    ]
    for args, message in cases:
        with pytest.raises(ValueError, match=message):
            heal(*args, config, tmp_path / "run", progress=False)
        assert not (tmp_path / "run").exists()
    with pytest.raises(FileNotFoundError, match="cannot resume"):
        heal(student_of(teacher), teacher, tokenizer, sentences, config, tmp_path / "run", resume=True)


@pytest.mark.slow  # one interrupted run
def test_a_resume_with_other_options_or_sentences_is_refused(tmp_path, monkeypatch, tokenizer, sentences):
    teacher = encoder()
    config = HealConfig(**QUICK)
    heal_until(monkeypatch, 6, student_of(teacher), teacher, tokenizer, sentences, config, tmp_path / "run",
               progress=False)
    with pytest.raises(ValueError, match="learning_rate"):
        heal(student_of(teacher), teacher, tokenizer, sentences, HealConfig(**{**QUICK, "learning_rate": 1e-3}),
             tmp_path / "run", resume=True)
    with pytest.raises(ValueError, match="other sentences"):
        heal(student_of(teacher), teacher, tokenizer, sentences[1:], config, tmp_path / "run", resume=True)


def test_the_engine_loss_hook_is_the_weighted_distillation_loss(tokenizer, sentences):
    teacher = encoder()
    student = student_of(teacher).eval()
    batch = tokenizer(sentences[:4], padding=True, return_tensors="pt")
    config = HealConfig(hidden_weight=2.0, cosine_weight=0.5)
    terms = {}
    loss, _ = distillation_loss(teacher, config, terms)(student, dict(batch))
    assert loss.item() == pytest.approx(2.0 * terms["hidden"].item() + 0.5 * terms["cosine"].item())


@pytest.mark.slow  # three tiny healing processes
def test_a_run_killed_by_sigkill_resumes_to_the_uninterrupted_result(tmp_path):
    import signal
    import subprocess
    import sys

    from safetensors.torch import load_file

    driver = Path(__file__).with_name("heal_driver.py")
    env = {**__import__("os").environ, "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1"}

    def launch(*args):
        return subprocess.run([sys.executable, str(driver), *args], env=env, capture_output=True, text=True,
                              timeout=300)

    assert launch(str(tmp_path / "reference")).returncode == 0
    killed = launch(str(tmp_path / "killed"), "--kill-at", "10")  # after step 9: checkpoint-8 is the last
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    resumed = launch(str(tmp_path / "killed"), "--resume")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert [r.get("checkpoint") for r in read_metrics(tmp_path / "killed") if r["kind"] == "resume"] == [
        "checkpoint-8"]
    assert train_losses(tmp_path / "killed") == train_losses(tmp_path / "reference")
    weights = [load_file(str(tmp_path / run / "final_model" / "model.safetensors")) for run in ("killed", "reference")]
    assert weights[0].keys() == weights[1].keys() and all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])

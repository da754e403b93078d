"""The "Compress a model" back end: plan vs the model apply_mpo builds, and the zips that load back."""
import io
import json
import zipfile

import pytest
import torch
from transformers import AutoModel, AutoTokenizer

import mpo_core
from app import compress as mc
from mpo_core.model.embedding_agreement import Agreement
from mpo_core.model.matrix_groups import find_matrices
from mpo_core.model.surgery import mpo_modules

from ..mpo_core.tiny_models import tiny_inputs, tiny_model

ATTENTION = ("query", "key", "value", "attention_output")


@pytest.fixture(scope="module")
def minilm():
    """The packaged MiniLM cut to its first two encoder layers (real weights, fast)."""
    return mc.load_base_model(num_hidden_layers=2)


@pytest.fixture(scope="module")
def spectra(minilm):
    return mc.matrix_spectra(minilm, 5)


@pytest.fixture(scope="module")
def inputs():
    tokenizer = AutoTokenizer.from_pretrained(str(mpo_core.default_model_path()))
    return tokenizer(["a matrix product operator", "compress the central tensor"], padding=True, return_tensors="pt")


def _hidden(model, inputs) -> torch.Tensor:
    with torch.no_grad():
        return model(**inputs).last_hidden_state


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"groups": ()}, "at least one"),
        ({"groups": ("query", "nope")}, "unknown matrix groups"),
        ({"ratio": 0.0}, "> 0"),
        ({"ratio": True}, "finite number"),
        ({"n": 1}, "at least 2"),
    ],
)
def test_request_rejects_bad_input(kwargs, message):
    with pytest.raises(ValueError, match=message):
        mc.CompressionRequest(**kwargs)


def test_request_is_hashable_and_makes_the_mpo_config():
    request = mc.CompressionRequest(groups="query", ratio=0.25, n=4, layers=[1, 0, 1])
    assert request.groups == ("query",) and request.layers == (0, 1)
    assert hash(request) == hash(mc.CompressionRequest(groups=("query",), ratio=0.25, n=4, layers=(0, 1)))
    config = request.mpo_config()
    assert config.compression_ratio == {"query": 0.25} and config.n == 4 and config.layers == (0, 1)


def test_groups_layers_and_selection(minilm):
    assert mc.available_groups(minilm) == (*mpo_core.model.matrix_groups.DEFAULT_GROUPS, "pooler")
    assert mc.num_layers(minilm) == 2
    chosen = mc.selected_matrices(minilm, mc.CompressionRequest(groups=("word_embedding", "query"), layers=(1,)))
    assert chosen == {"embeddings.word_embeddings": "word_embedding", "encoder.layer.1.attention.self.query": "query"}
    with pytest.raises(ValueError, match="no matrices"):
        mc.selected_matrices(minilm, mc.CompressionRequest(groups=("query",), layers=(7,)))


@pytest.mark.slow  # > 2 s in the fast subset (issue 27)
@pytest.mark.parametrize("ratio", [0.1, 0.5])
def test_the_plan_is_the_model_apply_mpo_builds(minilm, spectra, ratio):
    request = mc.CompressionRequest(groups=(*ATTENTION, "ffn_in", "ffn_out"), ratio=ratio)
    table = mc.plan_table(minilm, spectra, request)
    assert len(table) == 12 and (table["ρ (Eq. 5)"] <= ratio + 1e-12).all()
    assert (table["central params"] + table["auxiliary params"] == table["MPO params"]).all()
    model, report = mc.build_compressed_model(minilm, request)
    assert mc.report_matches_plan(report, table)
    totals = mc.size_totals(minilm, table)
    assert mpo_core.count_parameters(model).total == totals.after < totals.before
    assert totals.before == mpo_core.count_parameters(minilm).total
    assert not mpo_modules(minilm)  # the cached base model is never modified
    # the bound of Eq. (4) holds for every built matrix
    dense = dict(minilm.named_modules())
    for name, module in mpo_modules(model).items():
        weight = dense[name].weight.detach()
        error = mpo_core.frobenius_error(weight, module.weight.detach())
        assert error <= table.at[name, "relative error bound (Eq. 4)"] * float(weight.norm()) * 1.001 + 1e-5


def test_a_lower_ratio_shrinks_the_model_and_raises_the_bound(minilm, spectra):
    tables = {r: mc.plan_table(minilm, spectra, mc.CompressionRequest(ratio=r)) for r in (0.1, 0.4)}
    small, large = (mc.size_totals(minilm, tables[r]) for r in (0.1, 0.4))
    assert small.after < large.after and small.matrices_ratio <= 0.1 < large.matrices_ratio <= 0.4
    assert (tables[0.1]["relative error bound (Eq. 4)"] >= tables[0.4]["relative error bound (Eq. 4)"]).all()
    fig = mc.group_figure(tables[0.1])
    assert [t.name for t in fig.data] == ["dense matrices", "central tensors C", "auxiliary tensors"]
    assert sum(fig.data[0].y) == pytest.approx(small.matrices_before / 1e6)
    assert sum(fig.data[1].y) + sum(fig.data[2].y) == pytest.approx(small.matrices_after / 1e6)


def test_plan_needs_spectra_of_the_same_n(minilm, spectra):
    with pytest.raises(ValueError, match="another n"):
        mc.plan_table(minilm, spectra, mc.CompressionRequest(n=3))
    with pytest.raises(KeyError, match="no spectra"):
        mc.plan_table(minilm, {}, mc.CompressionRequest())


def _unzip(data: bytes, folder):
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        archive.extractall(folder)
    return folder


@pytest.fixture(scope="module")
def compressed(minilm):
    request = mc.CompressionRequest(groups=("word_embedding", "query", "ffn_in"), ratio=0.3)
    model, _ = mc.build_compressed_model(minilm, request)
    return request, model


@pytest.mark.slow  # > 2 s in the fast subset (issue 27)
def test_mpo_zip_loads_back_with_load_mpo_model(compressed, inputs, tmp_path):
    request, model = compressed
    data = mc.export_zip(model, merged=False, request=request, tokenizer_path=mpo_core.default_model_path())
    folder = _unzip(data, tmp_path / "mpo")
    assert {"config.json", "model.safetensors", "mpo_layers.json", "compression.json", "tokenizer.json"} <= {
        p.name for p in folder.iterdir()}
    loaded = mpo_core.load_mpo_model(folder, AutoModel)
    assert set(mpo_modules(loaded)) == set(mpo_modules(model))
    torch.testing.assert_close(_hidden(loaded, inputs), _hidden(model, inputs), atol=1e-5, rtol=1e-5)
    plan = json.loads((folder / "compression.json").read_text())
    assert plan["format"] == "mpo" and plan["mpo_config"]["compression_ratio"]["query"] == 0.3
    assert plan["total_params"] == mpo_core.count_parameters(model).total
    assert AutoTokenizer.from_pretrained(str(folder))("a test")["input_ids"][0] == 101  # [CLS]


def test_merged_zip_is_a_plain_transformers_model(compressed, minilm, inputs, tmp_path):
    request, model = compressed
    data = mc.export_zip(model, merged=True, request=request)
    folder = _unzip(data, tmp_path / "merged")
    assert not (folder / "mpo_layers.json").exists()
    loaded = AutoModel.from_pretrained(folder).eval()
    assert not mpo_modules(loaded) and mpo_modules(model)  # merging worked on a copy
    assert mpo_core.count_parameters(loaded).total == mpo_core.count_parameters(minilm).total
    torch.testing.assert_close(_hidden(loaded, inputs), _hidden(model, inputs), atol=1e-4, rtol=1e-4)
    # lossy: the compressed model is not the original one
    assert (_hidden(loaded, inputs) - _hidden(minilm, inputs)).abs().max() > 1e-2
    assert mc.zip_file_name(request, True) == "minilm-merged-rho0.30-n5.zip"


@pytest.mark.parametrize("n", [3, 5])
def test_tiny_random_bert_all_groups(n):
    base = tiny_model("bert")
    spectra = mc.matrix_spectra(base, n)
    request = mc.CompressionRequest(groups=mc.available_groups(base), ratio=0.5, n=n)
    table = mc.plan_table(base, spectra, request)
    assert set(table["group"]) == {*mpo_core.model.matrix_groups.DEFAULT_GROUPS, "pooler"}
    model, report = mc.build_compressed_model(base, request)
    assert mc.report_matches_plan(report, table)
    assert mpo_core.count_parameters(model).total == mc.size_totals(base, table).after
    with torch.no_grad():
        assert model(**tiny_inputs()).logits.shape == (2, 3)


@pytest.mark.slow  # ~13 s: decomposes every matrix of MiniLM
def test_matrices_go_cheapest_first_and_the_pace_follows_each(minilm):
    """The pace is measured on the small matrices before the word embedding (a third of a build) starts."""
    request = mc.CompressionRequest(groups=("word_embedding", "query", "ffn_in"), ratio=0.3, n=5)
    order = []
    model, report = mc.build_compressed_model(minilm, request, progress=lambda done, total, name: order.append(name))
    assert order[-1] == "embeddings.word_embeddings" and order[0].endswith("query")
    assert [r.name for r in report] == list(mc.selected_matrices(minilm, request))  # the report in model order
    pace = mc.build_pace(minilm, request)
    again, _ = mc.build_compressed_model(minilm, request, pace=pace)
    assert pace.count == len(report) and pace.done == pace.total and pace.fraction() == 1
    assert [m for m in pace.steps({})] == []
    spectra_pace = mc.spectra_pace(minilm)
    entries = mc.matrix_spectra(minilm, 5, pace=spectra_pace)
    assert list(entries) == list(find_matrices(minilm)) and spectra_pace.done == spectra_pace.total


def test_the_effect_note_explains_a_low_agreement_beside_the_zero_shot_scores():
    low = mc.effect_note(Agreement(400, 0.0709, -0.0602, 0.8601, 0.5951))
    assert "point elsewhere than the original's (mean cosine 0.071, worst sentence -0.060" in low
    assert "1 = the same direction, 0 = unrelated" in low and "Spearman 0.595 against the original's 0.860" in low
    assert "(69 % of it)" in low and "can hold up when the agreement does not" in low
    high = mc.effect_note(Agreement(400, 0.97, 0.9, 0.86, 0.85))
    assert "point almost where the original's do" in high and "hold up" not in high and "Fine-tuning" not in high
    assert "Zero-shot" not in mc.effect_note(Agreement(400, 0.6, 0.2, None, None))
    assert mc.embedding_batches(200) == 7  # 400 sentences in batches of 64


@pytest.mark.slow  # > 2 s in the fast subset (issue 27)
def test_spectra_are_kept_on_disk_for_the_next_server(minilm, spectra, tmp_path):
    """Entries of app.decomposition_cache, keyed as the Entropy atlas keys them: a second server reads them back."""
    from app import decomposition_cache

    path = mpo_core.default_model_path()
    pace = mc.spectra_pace(minilm)
    stored = mc.matrix_spectra(minilm, 5, pace=pace, cache_dir=tmp_path, model_path=path)
    assert pace.done == pace.total > 0
    assert len(list(decomposition_cache.folder(tmp_path).glob("*.json"))) == len(stored)
    again_pace = mc.spectra_pace(minilm)
    again = mc.matrix_spectra(minilm, 5, pace=again_pace, cache_dir=tmp_path, model_path=path)
    assert again_pace.total == 0 and again_pace.fraction() == 1  # nothing decomposed
    for name, entry in spectra.items():
        assert again[name].norm == pytest.approx(entry.norm)
        assert all(torch.equal(a.double(), b.double()) for a, b in zip(again[name].mpo.singular_values,
                                                                       entry.mpo.singular_values))
    request = mc.CompressionRequest(ratio=0.3, n=5)
    assert mc.plan_table(minilm, again, request).equals(mc.plan_table(minilm, spectra, request))


def test_the_plan_is_kept_on_disk_for_the_next_server(minilm, spectra, tmp_path, monkeypatch):
    path, request = mpo_core.default_model_path(), mc.CompressionRequest(groups=("query", "ffn_in"), ratio=0.25)
    first = mc.plan_table(minilm, spectra, request, cache_dir=tmp_path, model_path=path)
    assert first.equals(mc.plan_table(minilm, spectra, request))
    monkeypatch.setattr(mc, "plan_row", lambda *a: pytest.fail("the stored plan was computed again"))
    again = mc.plan_table(minilm, spectra, request, cache_dir=tmp_path, model_path=path)
    assert again.equals(first)
    with pytest.raises(pytest.fail.Exception):  # another ratio is another entry
        mc.plan_table(minilm, spectra, mc.CompressionRequest(groups=("query", "ffn_in"), ratio=0.3),
                      cache_dir=tmp_path, model_path=path)


def test_the_plan_of_the_weight_skeleton_is_the_loaded_model_s_in_its_order(minilm, spectra):
    from mpo_core.model.weight_skeleton import weight_skeleton

    skeleton = weight_skeleton()  # all six layers: the fixture's model has the first two
    request = mc.CompressionRequest(groups=mc.GROUPS, layers=(0, 1))
    names = list(mc.selected_matrices(minilm, request))
    assert list(mc.selected_matrices(skeleton, request)) == names  # the file's order is alphabetical
    assert names[0] == "embeddings.word_embeddings" and names[-1] == "pooler.dense"
    assert names[1:7] == [f"encoder.layer.0.{m}" for m in ("attention.self.query", "attention.self.key",
                                                            "attention.self.value", "attention.output.dense",
                                                            "intermediate.dense", "output.dense")]
    default = mc.CompressionRequest(layers=(0, 1))
    assert mc.plan_table(skeleton, spectra, default).equals(mc.plan_table(minilm, spectra, default))

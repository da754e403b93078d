import pytest
import torch
from transformers import AutoConfig, AutoModel

from mpo_core import default_model_path, list_weight_matrices, load_weight_matrix


def test_packaged_model_lists_all_bert_matrices():
    shapes = list_weight_matrices()
    assert shapes["embeddings.word_embeddings.weight"] == (30522, 384)
    assert shapes["encoder.layer.5.intermediate.dense.weight"] == (1536, 384)
    assert len([n for n in shapes if n.startswith("encoder.layer.")]) == 6 * 6


def test_loader_reads_the_same_weights_as_transformers():
    path = default_model_path()
    config = AutoConfig.from_pretrained(path)
    assert (config.num_hidden_layers, config.hidden_size, config.vocab_size) == (6, 384, 30522)
    model = AutoModel.from_pretrained(path)
    state = model.state_dict()
    for name in ("embeddings.word_embeddings.weight", "encoder.layer.2.attention.self.key.weight"):
        assert torch.equal(state[name], load_weight_matrix(name))


def test_missing_things_are_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        list_weight_matrices(tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match="safetensors"):
        list_weight_matrices(tmp_path)
    with pytest.raises(KeyError, match="list_weight_matrices"):
        load_weight_matrix("encoder.layer.9.output.dense.weight")
    with pytest.raises(ValueError, match="not a matrix"):
        load_weight_matrix("embeddings.LayerNorm.weight")

"""The weight skeleton reads as the loaded model reads: same matrices, roles, shapes and parameter count."""
import pytest
import torch
from torch import nn

import mpo_core
from mpo_core.model.matrix_groups import find_matrices
from mpo_core.model.weight_skeleton import stored_tensors, weight_skeleton

from ..tiny_models import TINY, tiny_model


def layout(model: nn.Module) -> dict:
    modules = dict(model.named_modules())
    return {name: (group, type(modules[name]).__name__, tuple(modules[name].weight.shape))
            for name, group in find_matrices(model).items()}


@pytest.mark.parametrize("arch", sorted(TINY))
def test_the_skeleton_of_a_saved_model_has_its_matrices_and_parameter_count(arch, tmp_path):
    model = tiny_model(arch)
    model.save_pretrained(tmp_path, safe_serialization=True)
    skeleton = weight_skeleton(tmp_path)
    assert layout(skeleton) == layout(model)
    assert mpo_core.count_parameters(skeleton) == mpo_core.count_parameters(model)  # per group too
    assert all(p.is_meta for p in skeleton.parameters())  # nothing allocated


def test_the_packaged_minilm_skeleton_matches_the_loaded_encoder():
    from transformers import AutoModel

    skeleton = weight_skeleton()
    model = AutoModel.from_pretrained(str(mpo_core.default_model_path()), trust_remote_code=False)
    assert layout(skeleton) == layout(model)
    assert mpo_core.count_parameters(skeleton).total == mpo_core.count_parameters(model).total == 22_713_216
    position_ids = dict(skeleton.named_buffers())["embeddings.position_ids"]
    assert position_ids.dtype == torch.int64 and position_ids.is_meta  # a buffer, as in the model


def test_headers_only_a_torn_file_is_a_clear_error(tmp_path):
    (tmp_path / "model.safetensors").write_bytes(b"\x00" * 7)
    with pytest.raises(ValueError):
        stored_tensors(tmp_path)
    with pytest.raises(FileNotFoundError):
        weight_skeleton(tmp_path / "missing")


def test_a_matrix_that_also_holds_submodules_keeps_them(tmp_path):
    from safetensors.torch import save_file

    save_file({"block.inner.weight": torch.zeros(3, 4), "block.weight": torch.zeros(5, 6),
               "block.inner.bias": torch.zeros(3)}, str(tmp_path / "model.safetensors"))
    skeleton = weight_skeleton(tmp_path)  # "block.inner..." sorts before "block.weight": made first
    assert isinstance(skeleton.block, nn.Linear) and isinstance(skeleton.block.inner, nn.Linear)
    assert skeleton.block.inner.bias.shape == (3,) and skeleton.block.weight.shape == (5, 6)
    assert mpo_core.count_parameters(skeleton).total == 12 + 3 + 30

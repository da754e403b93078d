"""FisherRequest refuses what would allocate absurdly, before a model or a batch is built (issue 24)."""
import math

import pytest

from mpo_core.opf.scoring import MAX_BATCH_TOKENS, MAX_EXAMPLES, MAX_LAYERS, MAX_LENGTH, FisherRequest

BAD = {
    "no batches": (dict(num_batches=0), "num_batches must be a positive int"),
    "batch size a string": (dict(batch_size="16"), "batch_size must be a positive int, got '16'"),
    "batch size a float": (dict(batch_size=16.0), "batch_size must be a positive int"),
    "more layers than MiniLM": (dict(num_hidden_layers=MAX_LAYERS + 1), f"at most {MAX_LAYERS}"),
    "length past the positions": (dict(max_length=MAX_LENGTH + 1), f"at most {MAX_LENGTH}"),
    "huge batch of tokens": (dict(batch_size=1024, max_length=512), f"more than the {MAX_BATCH_TOKENS}"),
    "10**9 batches": (dict(num_batches=10 ** 9), f"more than the {MAX_EXAMPLES} scored"),
    "negative seed": (dict(seed=-1), "seed must be an int >= 0"),
    "NaN clipping": (dict(max_grad_norm=math.nan), "max_grad_norm must be a finite number"),
    "no clipping": (dict(max_grad_norm=0), "max_grad_norm must be > 0"),
    "unknown task": (dict(task="squad"), "unknown GLUE task"),
}


@pytest.mark.parametrize("name", BAD)
def test_a_request_out_of_bounds_is_a_value_error(name):
    fields, needle = BAD[name]
    with pytest.raises(ValueError) as info:
        FisherRequest(**fields)
    assert needle in str(info.value), str(info.value)


def test_the_dashboard_sizes_pass():
    request = FisherRequest(task="rte", num_hidden_layers=MAX_LAYERS, num_batches=32, batch_size=64, max_length=128)
    assert request.cache_name.startswith("fisher-rte-L6-32x64-len128-seed0-clip1-")

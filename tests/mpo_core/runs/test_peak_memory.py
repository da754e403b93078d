import torch
from torch import nn

from mpo_core.runs.peak_memory import peak_forward_bytes


class _Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.up, self.down = nn.Linear(16, 64), nn.Linear(64, 16)

    def forward(self, x):
        return self.down(torch.relu(self.up(x)))


def test_peak_counts_the_widest_intermediate_and_not_the_weights():
    torch.manual_seed(0)
    block = _Block()
    x = torch.randn(1000, 16)
    peak = peak_forward_bytes(block, {"x": x})
    hidden, out = 1000 * 64 * 4, 1000 * 16 * 4
    # up's output and relu's output are alive together; then down's output beside relu's
    assert 2 * hidden <= peak <= 2 * hidden + out + 4096


def test_peak_grows_with_the_batch():
    block = _Block()
    small = peak_forward_bytes(block, {"x": torch.randn(100, 16)})
    large = peak_forward_bytes(block, {"x": torch.randn(1000, 16)})
    assert 9 * small <= large <= 11 * small

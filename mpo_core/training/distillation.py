"""The distillation loss of healing: how far the student's outputs are from the teacher's on one batch.

Both models run end to end on the same tokens (the student's layer ``l`` sees the
student's own layer ``l - 1``), each term where the outputs have it:

- **hidden states** (``output_hidden_states=True``): the MSE of every hidden state
  (embeddings and each layer), over the real tokens only (padding excluded), averaged over layers;
- **sentence embedding** (``last_hidden_state``: an encoder): ``1 - cos`` between the
  mean-pooled embeddings (padding excluded, as :mod:`mpo_core.model.embedding_agreement`);
- **logits** (a task model): ``T**2 * KL(teacher || student)`` of the temperature-softened
  distributions (Hinton et al., 2015).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def masked_mse(student: torch.Tensor, teacher: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """MSE over the tokens where ``mask`` is 1: ``student``/``teacher`` ``(B, T, H)``, ``mask`` ``(B, T)``."""
    weights = mask.unsqueeze(-1).to(student.dtype)  # (B, T, 1)
    squared = (student.float() - teacher.float()).pow(2) * weights  # (B, T, H)
    return squared.sum() / (weights.sum().clamp_min(1.0) * student.shape[-1])


def mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``hidden`` ``(B, T, H)`` over the real tokens: ``(B, H)``."""
    weights = mask.unsqueeze(-1).to(hidden.dtype)  # (B, T, 1)
    return (hidden * weights).sum(1) / weights.sum(1).clamp_min(1.0)


def hidden_state_loss(student_states, teacher_states, mask: torch.Tensor) -> torch.Tensor:
    """Mean over layers of :func:`masked_mse` (``hidden_states`` tuples of ``(B, T, H)``)."""
    if len(student_states) != len(teacher_states):
        raise ValueError(f"the student has {len(student_states)} hidden states, the teacher {len(teacher_states)}: "
                         "healing needs the same architecture (a compressed copy of the teacher).")
    losses = [masked_mse(s, t, mask) for s, t in zip(student_states, teacher_states)]
    return torch.stack(losses).mean()


def cosine_loss(student_hidden: torch.Tensor, teacher_hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of ``1 - cos(mean_pool(student), mean_pool(teacher))``."""
    student, teacher = mean_pool(student_hidden.float(), mask), mean_pool(teacher_hidden.float(), mask)  # (B, H)
    return (1 - F.cosine_similarity(student, teacher, dim=-1)).mean()


def logits_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """``T**2 * KL(softmax(teacher / T) || softmax(student / T))``, averaged over the batch: logits ``(B, C)``."""
    student = F.log_softmax(student_logits.float() / temperature, dim=-1)
    teacher = F.log_softmax(teacher_logits.float() / temperature, dim=-1)
    return F.kl_div(student, teacher, log_target=True, reduction="batchmean") * temperature**2


def _output(outputs, name: str):
    return outputs.get(name) if isinstance(outputs, dict) else getattr(outputs, name, None)


def distillation_terms(student_out, teacher_out, mask: torch.Tensor, temperature: float) -> dict[str, torch.Tensor]:
    """Each term the outputs allow: ``{"hidden", "cosine", "logits"}`` (a subset), each a scalar tensor."""
    terms = {}
    student_states, teacher_states = _output(student_out, "hidden_states"), _output(teacher_out, "hidden_states")
    if student_states is not None and teacher_states is not None:
        terms["hidden"] = hidden_state_loss(student_states, teacher_states, mask)
    student_last, teacher_last = _output(student_out, "last_hidden_state"), _output(teacher_out, "last_hidden_state")
    if student_last is not None and teacher_last is not None:
        terms["cosine"] = cosine_loss(student_last, teacher_last, mask)
    student_logits, teacher_logits = _output(student_out, "logits"), _output(teacher_out, "logits")
    if student_logits is not None and teacher_logits is not None:
        terms["logits"] = logits_loss(student_logits, teacher_logits, temperature)
    if not terms:
        raise ValueError("the model outputs neither hidden states, last_hidden_state nor logits: nothing to distil.")
    return terms


def weighted_loss(terms: dict[str, torch.Tensor], weights: dict[str, float]) -> torch.Tensor:
    """``sum(weights[k] * terms[k])`` over the terms present."""
    return sum(weights[name] * value for name, value in terms.items())

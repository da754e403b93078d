"""Figures and summaries of squeeze runs, from empty to finished (real metrics-stream records)."""
from mpo_core.runs.run_folder import RunFolder

from app import squeeze


def test_an_empty_run_draws_placeholders(tmp_path):
    frames = squeeze.squeeze_frames(tmp_path)
    summary = squeeze.squeeze_summary(frames)
    assert summary["p"] is None and summary["accepted"] == 0 and summary["total_params"] is None
    for figure in (squeeze.metric_figure(frames, 0.01), squeeze.loss_figure(frames),
                   squeeze.size_figure(frames), squeeze.bond_figure(frames)):
        assert figure.layout.annotations  # a message instead of an empty plot


def test_records_become_curves(tmp_path):
    run = RunFolder(tmp_path / "r")
    sizes = {"trainable_params": 10, "total_params": 100}
    run.append_metrics({"kind": "train", "step": 1, "loss": 0.7, **sizes})
    run.append_metrics({"kind": "squeeze", "event": "baseline", "step": 2, "metric": "accuracy", "p": 0.8, **sizes})
    for k, (before, after, p_tilde, accepted) in enumerate([(8, 6, 0.79, True), (6, 4, 0.7, False)]):
        cut = {"matrix": "bert.encoder.layer.0.attention.self.query", "bond": 1, "before": before, "after": after}
        run.append_metrics({"kind": "squeeze", "event": "cut", "step": 2 + k, **cut,
                            "trainable_params": 10 - k - 1, "total_params": 100 - 10 * (k + 1)})
        run.append_metrics({"kind": "squeeze", "event": "step", "squeeze_step": k + 1, **cut, "p": 0.8,
                            "p_tilde": p_tilde, "accepted": accepted, **sizes})
    run.append_metrics({"kind": "squeeze", "event": "stop", "reason": "delta", "trainable_params": 9,
                        "total_params": 90})
    frames = squeeze.squeeze_frames(run.path)
    summary = squeeze.squeeze_summary(frames)
    assert summary == {"p": 0.8, "p_tilde": 0.79, "accepted": 1, "trainable_params": 9, "total_params": 90,
                       "stop_reason": "delta", "predicted_classes": None}  # the stop undid the rejected cut
    assert squeeze.not_learned_message(summary) is None
    metric = squeeze.metric_figure(frames, 0.05)
    assert list(metric.data[0].y) == [0.79, 0.7] and list(metric.data[0].marker.color) == [
        squeeze.ACCEPTED_COLOR, squeeze.REJECTED_COLOR]
    assert metric.layout.yaxis.title.text == "dev accuracy (p~)"  # a run without judged_on: judged on dev
    frames["baseline"]["judged_on"] = "heldout"
    assert squeeze.metric_figure(frames).layout.yaxis.title.text == "held-out accuracy (p~)"
    bonds = squeeze.bond_figure(frames)
    assert list(bonds.data[0].y) == [8, 6, 4]
    assert list(squeeze.size_figure(frames).data[0].y) == [100e-6, 90e-6, 80e-6]


def test_a_run_that_predicts_one_class_is_flagged(tmp_path):
    run = RunFolder(tmp_path / "r")
    for classes in (1, 2):
        run.append_metrics({"kind": "squeeze", "event": "baseline", "step": 2, "metric": "accuracy", "p": 0.5092,
                            "predicted_classes": classes, "trainable_params": 10, "total_params": 100})
        summary = squeeze.squeeze_summary(squeeze.squeeze_frames(run.path))
        message = squeeze.not_learned_message(summary)
        if classes == 1:
            assert "has not learned" in message and "0.5092" in message
        else:
            assert message is None
        (run.path / "metrics.jsonl").unlink()

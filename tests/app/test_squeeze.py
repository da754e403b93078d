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


def test_legends_name_the_layer_the_matrix_and_the_bond():
    assert squeeze.bond_label("bert.encoder.layer.3.output.dense", 1) == "layer 3 FFN out, bond 2"
    assert squeeze.bond_label("bert.encoder.layer.0.attention.output.dense", 0) == "layer 0 attention out, bond 1"
    assert squeeze.bond_label("bert.encoder.layer.5.intermediate.dense", 2) == "layer 5 FFN in, bond 3"
    assert squeeze.bond_label("bert.embeddings.word_embeddings", 1) == "word embedding, bond 2"


def _baseline_run(tmp_path, **extra):
    run = RunFolder(tmp_path / "r")
    run.append_metrics({"kind": "squeeze", "event": "baseline", "step": 30, "metric": "accuracy", "p": 0.82,
                        "trainable_params": 10, "total_params": 24_000_000, **extra})
    return run


def test_the_size_chart_shows_the_dense_model_and_the_target(tmp_path):
    run = _baseline_run(tmp_path, dense_params=22_713_986, target_params=20_442_587)
    figure = squeeze.size_figure(squeeze.squeeze_frames(run.path))
    lines = {shape.line.dash: shape.y0 for shape in figure.layout.shapes}
    assert lines == {"dash": 22.713986, "dot": 20.442587}
    texts = [a.text for a in figure.layout.annotations]
    assert "dense 22.71M" in texts and "target 20.44M" in texts
    older = squeeze.size_figure(squeeze.squeeze_frames(_baseline_run(tmp_path / "old").path))
    assert not older.layout.shapes  # a run from before the sizes were logged: no invented lines


def test_the_progress_bar_moves_through_every_phase(tmp_path):
    frames = squeeze.squeeze_frames(tmp_path / "none")  # no events yet
    options = {"lfa_steps": 30, "tune_steps": 8}
    start = 1000.0
    view = squeeze.progress_view("starting", start, None, frames, options, now=start + 3)
    assert view["fraction"] == 0 and "starting Python" in view["text"] and "3 s so far" in view["text"]
    loading = {"phase": "loading the model", "phase_started": start + 6, "updated": start + 6}
    assert squeeze.progress_view("starting", start, loading, frames, options, now=start + 7)["fraction"] > 0
    training = {"phase": "training", "done": 10, "total": 126, "phase_started": start + 20, "updated": start + 40,
                "threads": 1}
    view = squeeze.progress_view("running", start, training, frames, options, now=start + 40)
    assert "lightweight fine-tuning (30 steps)" in view["text"] and "step 10 of 126" in view["text"]
    assert view["seconds_left"] == (126 - 10) * 2.0 and "at most 235 s left" in view["text"]
    assert "1 thread(s)" in view["text"]
    later = squeeze.progress_view("running", start, {**training, "done": 100, "updated": start + 220}, frames,
                                  options, now=start + 220)
    assert later["fraction"] > view["fraction"]
    run = _baseline_run(tmp_path)
    run.append_metrics({"kind": "squeeze", "event": "cut", "matrix": "bert.encoder.layer.2.output.dense",
                        "bond": 1, "before": 192, "after": 52, "trainable_params": 9, "total_params": 23_000_000})
    cutting = squeeze.progress_view("running", start, training, squeeze.squeeze_frames(run.path), options,
                                    now=start + 40)
    assert "cut 1 (layer 2 FFN out): 8 repair steps" in cutting["text"]
    done = {"phase": "done", "phase_started": start + 95, "updated": start + 95}
    assert squeeze.progress_view("finished", start, done, frames, options) == {
        "fraction": 1.0, "text": "finished in 95 s", "seconds_left": 0.0}


def test_a_finished_run_read_again_asks_for_no_redraw(tmp_path):
    run = _baseline_run(tmp_path)
    run.append_metrics({"kind": "squeeze", "event": "stop", "reason": "target", "trainable_params": 9,
                        "total_params": 90})
    first = squeeze.watch_signature("finished", squeeze.squeeze_frames(run.path))
    assert squeeze.watch_signature("finished", squeeze.squeeze_frames(run.path)) == first
    for step in range(9):  # training logs redraw the charts every ten steps, not at each one
        run.append_metrics({"kind": "train", "step": step, "loss": 0.5, "trainable_params": 9, "total_params": 90})
    assert squeeze.watch_signature("finished", squeeze.squeeze_frames(run.path)) == first
    run.append_metrics({"kind": "train", "step": 9, "loss": 0.5, "trainable_params": 9, "total_params": 90})
    assert squeeze.watch_signature("finished", squeeze.squeeze_frames(run.path)) != first
    assert squeeze.watch_signature("running", squeeze.squeeze_frames(run.path)) != first


def test_the_card_says_what_each_score_measures():
    summary = {"p": 0.828, "p_tilde": 0.844}
    assert "measured once the run ends" in squeeze.score_note(summary, None, {"heldout_examples": 128})
    results = {"metric": "accuracy", "score": 0.73, "num_eval_examples": 200, "num_heldout_examples": 128}
    assert squeeze.dev_score(results) == {"label": "dev accuracy", "value": 0.73}
    assert squeeze.dev_score(None, "matthews_correlation") == {"label": "dev MCC", "value": None}
    note = squeeze.score_note(summary, results, {})
    assert "128 training examples held out" in note and "200 GLUE dev examples" in note
    assert "±0.06 and ±0.06" in note  # 1.96 sqrt(p (1 - p) / n) for 0.844 on 128 and 0.73 on 200
    assert squeeze.score_note({"p": None}, results, {}) is None

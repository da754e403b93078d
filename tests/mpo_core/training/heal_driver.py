"""A tiny healing run in its own process, for the kill test: ``python heal_driver.py RUN_DIR [--kill-at K] [--resume]``.

With ``--kill-at K`` the process SIGKILLs itself when the Trainer starts its K-th training step (no cleanup runs).
"""
import argparse
import copy
import os
import signal
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT))
GLUE = ROOT.parent / "shared" / "glue"


def setup(folder: Path):
    """Sentences, a 120-token word-level tokenizer, a tiny random BERT encoder (teacher) and its truncated copy."""
    from transformers import BertTokenizerFast

    from mpo_core import MPOConfig, apply_mpo, load_glue_split
    from mpo_core.model.matrix_groups import ATTENTION_GROUPS, FFN_GROUPS
    from tests.mpo_core.tiny_models import tiny_model

    train = load_glue_split("stsb", "train", GLUE, max_examples=200, seed=0)
    sentences = list(dict.fromkeys(train.texts_a + train.texts_b))
    words = Counter(w for s in sentences for w in s.lower().replace(".", " ").replace(",", " ").split())
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.txt").write_text("\n".join(
        ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [w for w, _ in words.most_common(115)]) + "\n")
    teacher = tiny_model("bert", 0).bert
    student = copy.deepcopy(teacher)
    apply_mpo(student, MPOConfig(groups=(*ATTENTION_GROUPS, *FFN_GROUPS), n=3, compression_ratio=0.3), progress=False)
    return sentences, BertTokenizerFast(str(folder / "vocab.txt")), teacher, student


CONFIG = dict(steps=12, batch_size=8, learning_rate=3e-3, warmup_steps=2, logging_steps=1, save_steps=4,
              device="cpu", variant="all", student_dropout=True)


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("run_dir")
    parser.add_argument("--kill-at", type=int)
    parser.add_argument("--resume", action="store_true")
    args = parser.parse_args(argv)
    from transformers import Trainer

    from mpo_core import HealConfig, heal

    if args.kill_at:
        original, calls = Trainer.training_step, {"n": 0}

        def training_step(self, *a, **k):
            calls["n"] += 1
            if calls["n"] == args.kill_at:
                os.kill(os.getpid(), signal.SIGKILL)
            return original(self, *a, **k)

        Trainer.training_step = training_step
    run_dir = Path(args.run_dir)
    sentences, tokenizer, teacher, student = setup(run_dir.parent / "tokenizer")
    heal(student, teacher, tokenizer, sentences, HealConfig(**CONFIG), run_dir, resume=args.resume, progress=False)


if __name__ == "__main__":
    main()

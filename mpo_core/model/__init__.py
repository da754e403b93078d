"""Floor 2, Hugging Face models: which matrices become MPOs (:mod:`.mpo_config`), the surgery
(:mod:`.surgery`), parameter counts, checkpoints, the packaged model and MPOP Table 1 (:mod:`.parameter_variation`)."""

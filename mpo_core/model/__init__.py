"""Floor 2, Hugging Face models: which matrices become MPOs (:mod:`.mpo_config`), the surgery
(:mod:`.surgery`), parameter counts, checkpoints, the packaged model, MPOP Table 1 (:mod:`.parameter_variation`)
and calibration statistics: ``X^T X`` of each matrix's inputs on real sentences (:mod:`.calibration`)."""

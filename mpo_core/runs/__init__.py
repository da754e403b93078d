"""Floor 3, the run folder: one writer and reader of ``config.json``, ``metrics.jsonl``, ``results.json``
and the models a run starts from and ends with; atomic writes; merged-vs-original latency."""

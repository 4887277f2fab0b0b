"""Upstream protocols as pure functions: prompt templates, verdict parsers and metrics of AlpacaEval 2
(``alpaca_eval_protocol``), Arena-Hard-Auto (``arena_hard_protocol``), FastChat's MT-Bench (``mt_bench_protocol``)
and the lm-eval harness glue (``academic_protocol``). Each names the upstream commit it follows and is tested
against upstream's own code or a transcription of it. The suites in ``evals/suites/`` wire them to files."""

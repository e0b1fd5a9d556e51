"""The parts of ``benchmarks/bench_training.py`` (the entry point): the FLOP model and the matmul peak
(:mod:`.flops`), the peak probed while an arm runs (:mod:`.probe`), the matrix-product recorder (:mod:`.products`),
what every arm shares (:mod:`.job`, :mod:`.machine`), the arms each run in a fresh process (:mod:`.arms` and
``arms_*``), and the parent that runs them and prints the figures (:mod:`.bench`, :mod:`.results`, :mod:`.cli`).
``bench_gpu.py`` reuses the FLOP model."""

"""The parts of ``benchmarks/bench_gpu.py`` (the entry point): the ``export`` step (:mod:`.export`), and the ``run``
step (:mod:`.run_step`) with what its arms share (:mod:`.run`, :mod:`.batches`, :mod:`.peak`), the training and
evaluation arms (:mod:`.train`, :mod:`.evaluation`), the exactness check and the profiles (:mod:`.exactness`,
:mod:`.profiling`). The GPU machine imports only torch, transformers, Lightning, ``xcal.models`` and the FLOP
model of ``benchmarks/training``."""

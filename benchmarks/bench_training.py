"""Training and evaluation speed of xcal (issue 7): against the machine's limit, a bare PyTorch loop and
transformers' ``Trainer``; writes benchmarks/results/training.json and prints the figures.

Sections (``--only roofline,overhead,trainer,eval,memory``; default all):

1. **roofline**: the fp32 matmul peak ``P`` (GFLOP/s) measured now on the threads used (``torch.mm`` of
   2048 x 2048 fp32, warm-up, best of several timed reps), and the model's FLOPs per *real* (non-padding)
   token. With ``N`` the non-embedding weight-matrix parameters (per layer Q, K, V, attention output:
   ``4 H^2``; feed-forward in and out: ``2 H F``; so ``N = n_layers (4 H^2 + 2 H F)``), ``H`` the hidden size
   and ``L`` the data's mean real sequence length::

       forward FLOPs / token  = 2 N + 4 n_layers L H       (a multiply-add per weight; Q K^T and A V: 2 L H each)
       training FLOPs / token = 3 x forward                (backward = 2 x forward)
       MFU = real tokens/s x FLOPs per token / P           (training: training FLOPs; evaluation: forward)

   Embedding look-ups, biases, layer norms, softmax and the per-sentence head are left out (they are not
   matmuls over every token, or are a few per mille of ``N``). Padding counts as *no* work: a padded run's
   MFU is the useful fraction of the machine, which is the point of comparing it. Every arm also measures
   the peak in its own process just before its work; MFU is counted against the best peak seen in the whole
   run (on a busy machine one measurement can come out low; on a quiet one they agree within a few %).
   The arms that MFU is read from (overhead, eval, and their products replays) also probe the peak *while* they run
   (:class:`PeakProbe`: best of 3 products after the 1st step and every 8th training step / 3rd evaluation
   batch after it, off the clock) and report ``mfu_alongside``, against their best probe: the peak this shared
   machine had when the work ran, which moved by tens of % within minutes (2-s windows of 2048^3 products:
   94-150 GFLOP/s over one minute).
   This section always runs: the others need its FLOP model.
2. **overhead**: xcal's training (its Lightning module, its cpu Trainer settings with logging on and a CSV
   logger) against a bare PyTorch loop over the *identical* batches: xcal's length-grouped train loader
   is materialised once into a list (same seed, so both arms see the same batches; a fingerprint checks it),
   xcal reads it through a DataLoader, the bare loop iterates it. Same init seed, the same model forward
   (the module's: encoder on real tokens only, torch's dropout; see xcal.models.unpadded), AdamW
   groups, scheduler and gradient clipping 1.0. Goal: xcal/bare real tokens/s >= 0.95. Then the ceiling: every
   matrix product of the bare loop's epoch (recorded with its operands' layouts) replayed back to back with
   nothing in between; its MFU is what training would reach if all other work took no time.
3. **trainer**: transformers ``Trainer`` + ``AutoModelForSequenceClassification`` as run_xnli.py sets it up
   (padding to 128, no length grouping, every parameter trained, AdamW 5e-5, linear schedule, batch 32,
   1 epoch, no evaluation, fp32) against xcal's own ``train_stage`` on the same examples, with every
   parameter trained / frozen word embeddings (the default), each with and without vocabulary trimming.
   Goals: Trainer seconds / xcal seconds >= 5 (every parameter) and >= 8 (frozen); English dev accuracy of
   every arm clearly above the majority class.
4. **eval**: xcal's zero-shot evaluation (token-budget predict batches of length-sorted sets, the encoder on
   real tokens only, Lightning's predict loop under inference mode) over every MultiEmo language's dev split,
   against the same sets padded to 128 in fixed batches of ``eval_batch_size`` through the model's own
   (padded) forward, and the same ceiling as in 2 (the evaluation's matrix products replayed alone). Goal:
   MFU >= 70 %.
5. **memory**: peak resident memory (``ru_maxrss``) of a fresh process training with xcal's default target
   settings (its batch size, English dev validation, frozen embeddings; one epoch, since later epochs
   allocate nothing new), and with ``trim_vocabulary``, and of the evaluation arm. Goal: default < 3 GB.
   The trainer section's arms (batch 32) report their peak RSS too.

Every timed arm runs in its own fresh process (this script re-invoked with ``--arm NAME``), compared arms back
to back. The Trainer recipe needs ``accelerate`` (``pip install accelerate``), which xcal itself does not.

    .venv/bin/python benchmarks/bench_training.py            # ~40 min on 2 CPU cores
    .venv/bin/python benchmarks/bench_training.py --quick    # 256 sentences, no Trainer recipe: a smoke run
"""

from __future__ import annotations

# The parts live in the package beside this script (benchmarks/training/), on sys.path as the script's own folder.
from training import cli
from training.flops import (
    EncoderShape,
    counted_matmul_params,
    forward_flops_per_token,
    matmul_peak_gflops,
    mfu,
)
from training.probe import PeakProbe
from training.products import ProductRecorder, product_flops, recorded_operand
from training.results import alongside, apply_mfu

# What tests and other scripts read off this module (the FLOP model, the recorder, the probe, MFU bookkeeping).
__all__ = ["EncoderShape", "PeakProbe", "ProductRecorder", "alongside", "apply_mfu", "counted_matmul_params",
           "forward_flops_per_token", "main", "matmul_peak_gflops", "mfu", "product_flops", "recorded_operand"]


def main(argv: list[str] | None = None) -> None:
    cli.main(argv, __doc__.splitlines()[0])


if __name__ == "__main__":
    main()

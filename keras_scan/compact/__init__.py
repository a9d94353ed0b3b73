"""Compact backbones by block-wise knowledge distillation under a budget.

Method: Ahmed, Zunino, Morerio, Murino, "Compact CNN Structure Learning by
Knowledge Distillation" (arXiv 2104.09191): a teacher's blocks are replaced by
cheaper candidates chosen per block to meet a FLOPs or parameter budget, each
new block learns to reproduce its teacher block's features, then the whole
student is fine-tuned with logit distillation from the teacher.

What `compress` does, step by step:

1. **Blocks** are found from the graph (`find_blocks`): a block is the section
   between two consecutive cut points of the backbone (see
   `keras_scan.backbones.taps.cut_points`) that contains a merge (a residual
   `Add`), extended over a trailing activation. In `cifar_resnet` these are the
   residual blocks `stage{s}_block{b}` (input: the previous block's output,
   output: `stage{s}_block{b}_out`). Everything else (stem, non-residual
   layers, classifier) is kept as it is.
2. **Candidates** per block (`CANDIDATES`): `"keep"` (the teacher's block and
   weights), `"width_0.5"` / `"width_0.25"` (a basic residual block whose inner
   width is 0.5x / 0.25x the narrowest convolution of the teacher's block),
   `"sepconv"` (a residual block of two depthwise-separable 3x3 convolutions)
   and `"drop"` (identity, only where the block's input and output shapes are
   equal). Every candidate keeps the block's output shape, so features are
   matched without adapters and SCAN exits keep their taps. Costs are counted
   by `keras_scan.cost` on each candidate; a candidate that is not cheaper than
   the teacher's block in the budget's metric is never chosen.
3. **Allocation** (greedy multiple-choice knapsack): every candidate of every
   block is first distilled for a few batches (`probe_batches`) and its relative
   feature error `mean((student - teacher)^2) / mean(teacher^2)` is measured on
   held-out images; `keep` has error 0. Starting from the teacher, the move
   (block -> cheaper candidate) with the smallest error increase per MAC (or
   parameter) saved is applied until the budget is met, then leftover budget is
   spent on the moves that lower the error most per unit of cost that still
   fit. `keep=[...]` pins blocks; `exclude=[...]` rules candidates out.
4. **Distillation**: the chosen new blocks are trained block-wise, each to
   reproduce its teacher block's output given the teacher block's input
   (relative MSE; all blocks share one frozen teacher pass per batch, which is
   the same as training them one after another since their losses do not
   interact), then the whole student is fine-tuned end to end with
   `(1 - alpha) CE + alpha T^2 KL(teacher^T || student^T)` on every output:
   the final classifier of a plain model, every exit of a SCAN model (each
   student exit learns from the teacher's same exit).

Where each part lives:

- `keras_scan.compact.blocks`: step 1 (`find_blocks`, `Block`, `CANDIDATES`);
- `keras_scan.compact.student`: the candidate blocks and the student built
  from the choices (step 2, and the student of step 4);
- `keras_scan.compact.allocation`: the candidate table and the greedy
  allocation under the budget (step 3);
- `keras_scan.compact.distillation`: the block-wise and end-to-end training
  (steps 3 and 4; the loss is `keras_scan.losses.distillation_loss`);
- `keras_scan.compact.compression`: `compress` and `compress_with_report`,
  which check the arguments (`keras_scan.compact.arguments`), run the steps
  and write the report.

TensorFlow is never imported here: data goes through numpy and
`keras_scan.data.NumpyDataset`.
"""

from keras_scan.compact.allocation import ALLOCATION_RULE
from keras_scan.compact.blocks import CANDIDATES, Block, find_blocks
from keras_scan.compact.compression import SUPPORTED, compress, compress_with_report

__all__ = [
    "ALLOCATION_RULE",
    "CANDIDATES",
    "SUPPORTED",
    "Block",
    "find_blocks",
    "compress",
    "compress_with_report",
]

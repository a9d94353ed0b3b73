"""Optimally deep networks: progressive depth expansion, and cutting a SCAN model.

Method: "Optimally Deep Networks -- Adapting Model Depth to Datasets for
Superior Efficiency" (ODN, arXiv 2510.10764): train a deep architecture at a
shallow depth first, add blocks as the earlier ones converge, and stop at the
first depth that reaches a target accuracy, so only the depth the data set
needs is kept. Two ways to get there:

- `grow(backbone, train_data, val_data, target_accuracy)` trains from scratch,
  block by block (`keras-scan grow --backbone ...`).
- `cut_at_exit(scan_model, exit_name)` is the instant version on an already
  trained SCAN model: the shallowest exit that reaches the target on the
  validation split, cut out with its backbone prefix (`keras-scan grow
  --from-run RUN`, `from_scan_model`).

Modules:

- `blocks`: the residual blocks a network grows by (`residual_blocks`), the
  backbones built by name (`BACKBONES`, `make_backbone`) and how a new block
  starts as the identity.
- `growing_network`: `GrowingNetwork`, the truncated models of one backbone
  sharing one graph, and the classifier at each depth.
- `expansion`: `grow` (the convergence criterion, the full-depth baseline).
- `cutting`: `cut_at_exit`, `select_exit`, `validation_accuracies`,
  `from_scan_model`.
- `checks`, `splits`, `report`: argument checks, the data splits, the text
  summary.

Costs of the chosen model (params, MACs, file size, peak activation memory)
are `keras_scan.cost`'s; the accuracy-vs-depth plot is `keras_scan.plots`'.
"""

from keras_scan.cost import model_costs, model_file_bytes, peak_activation_bytes
from keras_scan.depth.blocks import BACKBONES, make_backbone, residual_blocks
from keras_scan.depth.cutting import (
    cut_at_exit,
    from_scan_model,
    select_exit,
    validation_accuracies,
)
from keras_scan.depth.expansion import GROW_DEFAULTS, grow
from keras_scan.depth.growing_network import HEADS, GrowingNetwork
from keras_scan.plots import plot_accuracy_vs_depth

__all__ = [
    "BACKBONES",
    "HEADS",
    "GROW_DEFAULTS",
    "GrowingNetwork",
    "make_backbone",
    "residual_blocks",
    "grow",
    "cut_at_exit",
    "from_scan_model",
    "select_exit",
    "validation_accuracies",
    "model_costs",
    "peak_activation_bytes",
    "model_file_bytes",
    "plot_accuracy_vs_depth",
]

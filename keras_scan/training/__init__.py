"""Training: the SCAN paper's recipe, the run folder, per-exit evaluation.

One concept per module:
- `config`: the settings (`TrainingConfig`, `DEFAULTS`, `RECIPES`), their
  checks, config files, comparing two configurations;
- `schedule`: the optimizer (SGD, coupled weight decay), learning-rate
  schedules and the warm-up;
- `recipe`: batch-norm momentum and re-estimation, the distillation warm-up;
- `model_factory`: the model a configuration describes, compiled;
- `evaluation`: per-exit accuracy and costs, the plain-text table;
- `run_folder`: the run folder's lifecycle (resume, checkpoints, history);
- `trainer`: `train` itself and its input pipelines.

Everything public is listed here; `keras_scan.training.X` is the name to use.
"""

from keras_scan.training.config import (
    ARCHITECTURE,
    ATTENTION_KINDS,
    DEFAULTS,
    DERIVED,
    LR,
    LR_WITHOUT_NORMALIZATION,
    RECIPES,
    TrainingConfig,
    check_limit,
    config_diff,
    default_lr,
    read_config_file,
    recipe_defaults,
    resolve_config,
)
from keras_scan.training.evaluation import (
    evaluate_model,
    format_table,
    predict_exits,
    unlearned_exits,
)
from keras_scan.training.model_factory import (
    baseline_model,
    compile_model,
    make_model,
)
from keras_scan.training.recipe import (
    DistillationWarmup,
    batchnorm_layers,
    finish_training,
    recalibrate_batchnorm,
    recipe_callbacks,
    set_batchnorm_momentum,
)
from keras_scan.training.run_folder import (
    BACKUP,
    LOGS,
    MONITOR,
    RunCheckpoint,
    read_history,
    save_atomic,
    work_folder,
)
from keras_scan.training.schedule import (
    REFERENCE_BATCH_SIZE,
    SCHEDULES,
    ScaledSGD,
    Warmup,
    learning_rate_schedule,
    make_optimizer,
    scaled_learning_rate,
    warmup_length,
)
from keras_scan.training.trainer import (
    TrainingStopped,
    TrainResult,
    make_pipelines,
    steps_per_epoch,
    train,
)

# Their names before the split, still used by tests/test_distribute.py and
# benchmarks/distillation.py.
_save_atomic = save_atomic
_steps_per_epoch = steps_per_epoch

__all__ = [
    # Configuration.
    "TrainingConfig",
    "DEFAULTS",
    "RECIPES",
    "DERIVED",
    "LR",
    "LR_WITHOUT_NORMALIZATION",
    "ARCHITECTURE",
    "ATTENTION_KINDS",
    "read_config_file",
    "resolve_config",
    "check_limit",
    "config_diff",
    "default_lr",
    "recipe_defaults",
    # Optimizer and schedules.
    "REFERENCE_BATCH_SIZE",
    "SCHEDULES",
    "Warmup",
    "ScaledSGD",
    "scaled_learning_rate",
    "learning_rate_schedule",
    "warmup_length",
    "make_optimizer",
    # Recipe.
    "DistillationWarmup",
    "batchnorm_layers",
    "set_batchnorm_momentum",
    "recalibrate_batchnorm",
    "recipe_callbacks",
    "finish_training",
    # Model.
    "baseline_model",
    "make_model",
    "compile_model",
    # Evaluation.
    "predict_exits",
    "evaluate_model",
    "format_table",
    "unlearned_exits",
    # Run folder.
    "BACKUP",
    "LOGS",
    "MONITOR",
    "RunCheckpoint",
    "work_folder",
    "read_history",
    "save_atomic",
    # Training.
    "TrainingStopped",
    "TrainResult",
    "make_pipelines",
    "steps_per_epoch",
    "train",
]

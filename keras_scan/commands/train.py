"""`keras-scan train`: train a SCAN model (or the plain baseline) into a run folder."""

import argparse

EXAMPLES = """\
examples:
  keras-scan train --backbone cifar_resnet18 --dataset fashion_mnist --image-size 32 \\
      --epochs 24 --out runs/fm18
  keras-scan train --backbone cifar_resnet18 --no-exits --epochs 24 --out runs/fm18_plain
  keras-scan train --backbone mobilenet_v2 --dataset folder:~/photos --image-size 96 \\
      --epochs 30 --out runs/photos
  keras-scan train --backbone resnet50 --dataset tfds:cifar100 --download --out runs/c100
  keras-scan train --config recipe.yaml --out runs/from_file
  keras-scan train --backbone resnet50 --dataset tfds:imagenette --image-size 160 \
      --batch-size 256 --distribute data-parallel --out runs/nette

Every setting can also come from --config FILE (YAML or JSON, keys as the flags
with underscores, e.g. `batch_size: 64`); flags given on the command line win.
A run's config.json can be passed back as --config.

Rerunning the same command after an interruption continues from the last
finished epoch. The run is written to .RUN.incomplete/ and renamed to RUN when
done; RUN holds model.keras (best val_final_accuracy), last.keras, config.json,
history.csv, eval.json (test split) and logs/ (TensorBoard).
"""


def add_parser(subparsers):
    from keras_scan.backbones import registry
    from keras_scan.layers import HEADS
    from keras_scan.scan_model import KD_LOSSES, KD_MIXES, TEACHERS
    from keras_scan.training import (
        ATTENTION_KINDS,
        DEFAULTS,
        LR,
        LR_WITHOUT_NORMALIZATION,
        RECIPES,
        SCHEDULES,
    )

    d = DEFAULTS
    p = subparsers.add_parser(
        "train",
        help="train a multi-exit model with the SCAN recipe into a run folder",
        description="Train a SCAN multi-exit model (self-distillation from the "
        "final exit) with the paper's recipe, or with --no-exits the plain "
        "backbone for comparison, and write a run folder.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--out", required=True, metavar="RUN", help="the run folder")
    p.add_argument(
        "--config",
        metavar="FILE",
        help="YAML or JSON file of settings (flags override it)",
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue RUN although its configuration differs (e.g. more "
        "--epochs); the model-shaping settings must match",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="train from scratch and replace RUN when done",
    )

    g = p.add_argument_group("model")
    g.add_argument(
        "--backbone",
        metavar="NAME",
        help=f"default {d['backbone']}; one of: {', '.join(registry.available())}",
    )
    g.add_argument(
        "--width",
        type=int,
        help="channels of the first stage of a CIFAR ResNet (default 64, the "
        "paper's; 8 or 16 for quick CPU runs)",
    )
    g.add_argument(
        "--weights",
        metavar="W",
        help="initial weights: 'imagenet' (Keras Applications; downloaded by "
        "Keras unless cached) or a weights file (default: random)",
    )
    g.add_argument(
        "--head",
        choices=HEADS,
        help=f"exit head (default {d['head']}; 'scan' is the paper's)",
    )
    g.add_argument(
        "--attention",
        choices=ATTENTION_KINDS,
        help=f"attention in front of the exit heads (default {d['attention']}; "
        "'scan' is the paper's)",
    )
    g.add_argument(
        "--no-attention",
        dest="attention",
        action="store_const",
        const="none",
        help="the same as --attention none",
    )
    g.add_argument(
        "--no-distill",
        dest="distillation",
        action="store_const",
        const=False,
        help="train the exits on the labels only (no self-distillation)",
    )
    g.add_argument(
        "--alpha",
        type=float,
        help=f"distillation weight vs cross-entropy (default {d['alpha']})",
    )
    g.add_argument(
        "--kd-loss",
        choices=KD_LOSSES,
        help=f"distillation term: kl_t2 = T^2 KL(teacher || exit) (Hinton, the "
        f"paper's code), kl = without T^2 (the journal version), reverse_* = "
        f"KL(exit || teacher) (default {d['kd_loss']})",
    )
    g.add_argument(
        "--kd-mix",
        choices=KD_MIXES,
        help="convex = (1 - alpha) CE + alpha KD (the paper); add = CE + alpha KD "
        f"(the labels keep their full weight) (default {d['kd_mix']})",
    )
    g.add_argument(
        "--teacher",
        choices=TEACHERS,
        help="ensemble = the mean of all exits teaches every exit, the final "
        "one included; final = the final exit teaches the shallow ones (the paper) "
        f"(default {d['teacher']})",
    )
    g.add_argument(
        "--distill-warmup",
        type=float,
        metavar="F",
        help="share of the run over which the distillation weight ramps up "
        f"from 0, per epoch (default {d['distill_warmup']})",
    )
    g.add_argument(
        "--temperature",
        type=float,
        help=f"distillation temperature (default {d['temperature']})",
    )
    g.add_argument(
        "--beta", type=float, help=f"feature (hint) loss weight (default {d['beta']})"
    )
    g.add_argument(
        "--exit-weights",
        metavar="W,W,...|depth|equal",
        help="one loss weight per exit, the final exit last; 'depth': exit k of "
        "K weighs (k+1)/K; 'equal': 1 each (default, the paper)",
    )
    g.add_argument(
        "--gradient-equilibrium",
        dest="gradient_equilibrium",
        action="store_const",
        const=True,
        help="divide each backbone weight's gradient by the number of exits "
        "whose loss reaches it (IMTA's gradient equilibrium; default on)",
    )
    g.add_argument(
        "--no-gradient-equilibrium",
        dest="gradient_equilibrium",
        action="store_const",
        const=False,
        help="sum the exits' gradients in the shared backbone (the paper)",
    )
    g.add_argument(
        "--exits",
        metavar="K|NAMES",
        help="number of shallow exits spread by MACs, or comma-separated layer "
        "names (default: one per resolution stage, at most 3)",
    )
    g.add_argument(
        "--no-exits",
        dest="no_exits",
        action="store_const",
        const=True,
        help="baseline: the plain backbone with a pooled dense classifier, "
        "trained with the same recipe",
    )

    g = p.add_argument_group("data")
    g.add_argument(
        "--dataset",
        metavar="SPEC",
        help="fashion_mnist (default), tfds:NAME[:SPLIT] or folder:PATH",
    )
    g.add_argument(
        "--image-size",
        type=int,
        help=f"image height and width (default {d['image_size']})",
    )
    g.add_argument(
        "--channels", type=int, choices=(1, 3), help="image channels (default 3)"
    )
    g.add_argument(
        "--val-fraction",
        type=float,
        help=f"share of train held out for validation (default {d['val_fraction']})",
    )
    g.add_argument("--seed", type=int, help="random seed (default 0)")
    g.add_argument(
        "--limit",
        type=int,
        help="use only N training (and test) images, for quick runs",
    )
    g.add_argument(
        "--data-dir",
        metavar="DIR",
        help="folder with the Fashion-MNIST files or the tfds data",
    )
    g.add_argument(
        "--download",
        action="store_true",
        help="allow tensorflow-datasets / Keras to download missing data",
    )
    g.add_argument(
        "--augment",
        dest="augment",
        action="store_const",
        const=True,
        help="random crop (zero-pad by 1/8) + horizontal flip of training "
        "images (default: off; on in --recipe paper)",
    )
    g.add_argument(
        "--no-augment",
        dest="augment",
        action="store_const",
        const=False,
        help="no random crop + flip",
    )

    g = p.add_argument_group("recipe")
    g.add_argument(
        "--recipe",
        choices=tuple(RECIPES),
        help="named settings under the flags: 'default' (warm-up, cosine "
        "schedule, batch-norm re-estimation, the measured distillation "
        "settings) or 'paper' (the SCAN paper's code exactly: step schedule, "
        "alpha 0.5, T^2 KL at T=3); other flags still override them "
        "(default: default)",
    )
    g.add_argument("--epochs", type=int, help=f"default {d['epochs']}")
    g.add_argument("--batch-size", type=int, help=f"default {d['batch_size']}")
    g.add_argument(
        "--lr",
        type=float,
        help=f"learning rate for a batch of 128, scaled linearly with "
        f"--batch-size (default {LR}; {LR_WITHOUT_NORMALIZATION} "
        "for a backbone without batch normalization: vgg16, vgg19)",
    )
    g.add_argument(
        "--momentum", type=float, help=f"SGD momentum (default {d['momentum']})"
    )
    g.add_argument(
        "--weight-decay",
        type=float,
        help=f"L2 weight decay as in PyTorch's SGD (default {d['weight_decay']})",
    )
    g.add_argument(
        "--schedule",
        choices=SCHEDULES,
        help=f"learning-rate schedule (default {d['schedule']}; the paper: step)",
    )
    g.add_argument(
        "--warmup",
        type=float,
        metavar="F",
        help="share of the training steps over which the learning rate rises "
        f"linearly from ~0 (default {d['warmup']})",
    )
    g.add_argument(
        "--min-warmup-steps",
        type=int,
        metavar="N",
        help="the warm-up lasts at least N steps (at most 30%% of the run), so a "
        f"short run starts safely; 0 = exactly --warmup (default "
        f"{d['min_warmup_steps']})",
    )
    g.add_argument(
        "--milestones",
        metavar="F,F,...",
        help="fractions of training where the step schedule multiplies the "
        "learning rate by --gamma (default 0.375,0.65,0.9)",
    )
    g.add_argument(
        "--gamma", type=float, help=f"step-decay factor (default {d['gamma']})"
    )
    g.add_argument(
        "--clipnorm",
        type=float,
        help="clip the global gradient norm to this value (default: "
        f"{d['clipnorm'] or 'off'})",
    )
    g.add_argument(
        "--variable-clipnorm",
        type=float,
        metavar="X",
        help="clip each variable's gradient to norm X on its own (Keras' "
        "clipnorm): a layer with an outsized gradient takes a bounded step, the "
        f"others the full one; 0 = off (default {d['variable_clipnorm'] or 'off'})",
    )
    g.add_argument(
        "--adaptive-clip",
        type=float,
        metavar="F",
        help="adaptive gradient clipping: each kernel's gradient norm at most F "
        "times the kernel's norm (a layer whose gradient is outsized against its "
        f"weights takes a bounded step); 0 = off (default {d['adaptive_clip'] or 'off'})",
    )
    g.add_argument(
        "--bn-momentum",
        type=float,
        help="batch-norm momentum set on every layer of the backbone (Keras "
        "Applications ship 0.99-0.999, too slow for training from scratch; "
        f"default {d['bn_momentum']})",
    )
    g.add_argument(
        "--bn-recalibration",
        type=int,
        metavar="N",
        help="after training, re-estimate batch-norm statistics from N training "
        f"batches; 0 = off (default {d['bn_recalibration']})",
    )

    g = p.add_argument_group("devices")
    g.add_argument(
        "--distribute",
        metavar="MODE",
        help="data-parallel: all local GPUs (else CPU devices), the global "
        "--batch-size split evenly across them; multi-worker: several machines "
        "(TF_CONFIG on TensorFlow, KERAS_DISTRIBUTION_* on JAX). Keras' own "
        "engines: keras.distribution (JAX), tf.distribute (TensorFlow). "
        "Default: one device",
    )

    g = p.add_argument_group("output")
    g.add_argument(
        "--no-eval",
        action="store_true",
        help="skip the test evaluation at the end (eval.json)",
    )
    g.add_argument(
        "--verbose",
        type=int,
        choices=(0, 1, 2),
        help="0 silent, 1 progress bar, 2 one line per epoch (default: 1 on a "
        "terminal, else 2)",
    )
    return p


def _check_checkpoint(args):
    """Refuses a damaged `last.keras` that training would continue from.

    `--resume` continues RUN from RUN/last.keras; rerunning after an interruption
    continues the work folder (from last.keras when there is no backup state).
    Checked before anything is written, so the refusal leaves both untouched.
    """
    import pathlib

    from keras_scan import runs, training

    if args.overwrite:
        return
    run = pathlib.Path(args.out).expanduser()
    work = training.work_folder(run)
    if work.is_dir():
        folder = None if (work / training.BACKUP).exists() else work
    else:
        folder = run if args.resume else None
    if folder is not None and (folder / runs.LAST).is_file():
        runs.check_model_file(folder / runs.LAST, arg="out")


def _repair_work_folder(args):
    """Removes what a killed run left half-written in its work folder.

    Every file keras_scan writes is replaced atomically, but a run killed while
    writing (SIGKILL, power loss) leaves that write's temporary file (e.g.
    `.last.keras.XXXXXXXX.tmp.keras`) beside the last complete one: it is
    removed, so it does not end up in RUN. Keras' `BackupAndRestore` writes
    its state in place: killed mid-write, its weights file cannot be read and
    every rerun would fail on it. Such a backup is removed; training then
    continues from `last.keras` and `history.csv`, which were written (whole)
    before the backup.
    """
    import shutil
    import sys

    from keras_scan import files, runs, training

    work = training.work_folder(args.out)
    if args.overwrite or not work.is_dir():
        return
    files.remove_temporaries(work)
    backup = work / training.BACKUP
    if backup.is_dir() and not _backup_is_readable(backup):
        shutil.rmtree(backup)
        print(
            f"keras-scan train: note: removed {str(backup)!r}, written only in "
            f"part when the run was stopped; continuing from {runs.LAST}.",
            file=sys.stderr,
        )


def _backup_is_readable(backup):
    """Whether every weights file and the metadata of a backup can be read."""
    import json

    import h5py

    try:
        for path in backup.glob("*.h5"):
            with h5py.File(path, "r") as f:
                f.visititems(
                    lambda _, item: item[()] if isinstance(item, h5py.Dataset) else None
                )
        for path in backup.glob("*.json"):
            json.loads(path.read_text())
    except (OSError, ValueError, RuntimeError, KeyError):
        return False
    return True


def run(args):
    import sys

    from keras_scan import training

    _check_checkpoint(args)
    _repair_work_folder(args)
    result = None
    try:
        result = training.train(
            args.out,
            config_file=args.config,
            resume=args.resume,
            overwrite=args.overwrite,
            evaluate=not args.no_eval,
            download=args.download,
            verbose="auto" if args.verbose is None else args.verbose,
            # Every setting has a flag of the same name (None when not given).
            **{k: getattr(args, k) for k in training.DEFAULTS},
        )
    except training.TrainingStopped as e:
        print(f"keras-scan train: {e}", file=sys.stderr)
        return 1
    if result.evaluation:
        print(training.format_table(result.evaluation))
    return 0

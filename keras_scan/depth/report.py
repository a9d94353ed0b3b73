"""The text summary of a growth or cut report (what `grow` and the CLI print)."""

__all__ = ["summary"]


def summary(report):
    """A few lines saying what depth was chosen, at what cost, and why.

    Args:
        report: the report of `keras_scan.depth.grow` or
            `keras_scan.depth.from_scan_model`.

    Returns:
        str.
    """
    red = report["reduction"]
    where = f"depth {report['depth']}/{report['num_blocks']} ({report['block']})"
    if report["mode"] == "from_run":
        where = f"exit {report['exit']} ({report['block']})"
    if report["reached"]:
        head = f"target {report['target_accuracy']:.4f} reached at {where}"
    elif report["stopped_because"] == "max_epochs":
        head = (
            f"epoch budget spent before the target {report['target_accuracy']:.4f}: "
            f"stopped at {where}"
        )
    else:
        head = (
            f"target {report['target_accuracy']:.4f} NOT reached, even at full depth: "
            f"kept {where}"
        )
    lines = [
        head
        + f", val accuracy {report['val_accuracy']:.4f}"
        + (
            f", test accuracy {report['test_accuracy']:.4f}"
            if "test_accuracy" in report
            else ""
        ),
        "  chosen vs full depth: "
        + ", ".join(
            f"{k} {report['chosen'][k]:,} vs {report['full'][k]:,} ({-100 * v:+.1f}%)"
            for k, v in red.items()
        ),
    ]
    if "baseline" in report:
        base = report["baseline"]
        lines.append(
            f"  full depth from scratch: {base['epochs']} epoch(s), "
            f"{base['train_images']:,} images to val accuracy "
            f"{base['val_accuracy']:.4f}"
            + (
                ""
                if base["reached"]
                else f" (never reached {base['target_val_accuracy']:.4f}: its "
                "cost is a lower bound)"
            )
            + f"; growth used {report['train_images_vs_baseline']:.2f}x its "
            f"images, {report['train_macs_vs_baseline']:.2f}x its training MACs"
        )
    if report["mode"] == "grow":
        crit = report["criterion"]
        lines.append(
            f"  trained {report['epochs']} epoch(s), {report['train_images']:,} "
            f"images; a depth counted as converged after {crit['patience']} "
            f"epoch(s) without a val-accuracy gain > {crit['min_delta']} or "
            f"{crit['epochs_per_step']} epochs (the ODN paper's exact rule is not "
            "public; a plateau rule like Keras EarlyStopping)"
        )
    return "\n".join(lines)

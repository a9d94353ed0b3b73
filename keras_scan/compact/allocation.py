"""The budget search of `keras_scan.compress` (step 3).

Which candidates each block may take (`resolve_keep_exclude`,
`candidate_table`: allowed by the shapes, `keep` and `exclude`, and cheaper
than the teacher's block), and the greedy multiple-choice knapsack that picks
one per block under the budget (`allocate`, see `ALLOCATION_RULE`).
"""

from keras_scan import cost
from keras_scan.compact import arguments
from keras_scan.compact import blocks as blocks_lib
from keras_scan.compact import student as student_lib

ALLOCATION_RULE = (
    "greedy: from the teacher, repeatedly replace the block whose cheaper "
    "candidate adds the least relative feature error (measured after a short "
    "block-wise distillation probe) per unit of cost saved, until the budget is "
    "met; then spend leftover budget on the upgrades that remove the most error "
    "per unit of cost"
)


def resolve_keep_exclude(blocks, keep, exclude):
    """Pinned block names and `{block: set(excluded candidates)}`."""
    lookup = {}
    for b in blocks:
        lookup[b.name] = b.name
        lookup[b.output_layer] = b.name
    valid = [b.name for b in blocks]
    pinned = set()
    for name in arguments.names_list(keep, "keep"):
        if name not in lookup:
            raise ValueError(
                f"`keep` must name blocks of the teacher: {valid}. "
                f"Received: keep={keep!r} ({name!r} is not a block)"
            )
        pinned.add(lookup[name])
    excluded = {b.name: set() for b in blocks}
    replaceable = [c for c in blocks_lib.CANDIDATES if c != "keep"]
    for item in arguments.names_list(exclude, "exclude"):
        block, _, kind = item.rpartition(":")
        if kind not in replaceable or (block and block not in lookup):
            raise ValueError(
                "`exclude` entries must be a candidate "
                f"({replaceable}) or 'BLOCK:CANDIDATE' with BLOCK one of {valid}. "
                f"Received: exclude={exclude!r} ({item!r} is neither)"
            )
        targets = [lookup[block]] if block else valid
        for t in targets:
            excluded[t].add(kind)
    return pinned, excluded


def candidate_table(backbone, blocks, nodes, pinned, excluded, metric, bn_momentum):
    """`{block: {kind: {"macs", "params", "model"}}}` of the usable candidates.

    `keep` is always there (its model is `None`: the teacher's block); another
    candidate only when allowed by the shapes, `keep` and `exclude`, and
    cheaper than the teacher's block in the budget's `metric`.
    """
    table = {}
    for b in blocks:
        table[b.name] = {}
        for kind in b.allowed():
            if kind != "keep" and (b.name in pinned or kind in excluded[b.name]):
                continue
            model = student_lib.candidate_model(backbone, b, kind, nodes, bn_momentum)
            entry = {
                "macs": cost.count_macs(model),
                "params": cost.count_params(model),
                "model": None if kind == "keep" else model,
            }
            if kind == "keep" or entry[metric] < table[b.name]["keep"][metric]:
                table[b.name][kind] = entry
    return table


def allocate(blocks, candidates, errors, metric, total, limit):
    """Greedy multiple-choice knapsack (see `ALLOCATION_RULE`)."""
    choices = {b.name: "keep" for b in blocks}

    def moves(cheaper):
        for b in blocks:
            cur = choices[b.name]
            cur_cost, cur_err = candidates[b.name][cur][metric], errors[b.name][cur]
            for kind, entry in candidates[b.name].items():
                delta_cost = cur_cost - entry[metric]
                delta_err = errors[b.name][kind] - cur_err
                if kind == cur or (delta_cost > 0) != cheaper:
                    continue
                yield b.name, kind, delta_cost, delta_err

    while total > limit:
        # Least error added per unit of cost saved; ties: the larger saving.
        name, kind, saved, _ = min(
            moves(cheaper=True), key=lambda m: (m[3] / m[2], -m[2])
        )
        choices[name] = kind
        total -= saved
    while True:
        # Upgrades that fit: most error removed per unit of cost added.
        fits = [m for m in moves(cheaper=False) if m[3] < 0 and total - m[2] <= limit]
        if not fits:
            break
        name, kind, saved, _ = min(fits, key=lambda m: (m[3] / max(-m[2], 1e-12), m[2]))
        choices[name] = kind
        total -= saved
    return choices

"""NSGA-II (DEAP) over per-exit confidence thresholds, on cached probabilities.

`ThresholdProblem` caches every shallow exit's confidence and every exit's
correctness on a validation split once, then evaluates many threshold settings
at once (vectorised, in chunks): correct answers and answers per exit, the
samples where the cascade and the final exit disagree, and every outcome of one
threshold shared by all exits (`global_sweep`, the SDN baseline). It encodes a
setting as genes in [0, 1]^K (the fraction of validation samples below each
threshold), so the evolution moves between distinct outcomes only.
`run_nsga2` evolves those genes with DEAP's NSGA-II, accuracy up and mean cost
down. Choosing the operating point from the result is
`keras_scan.threshold_search`.

Model-free: numpy arrays in, numpy arrays out.
"""

from __future__ import annotations

import random

import numpy as np

from keras_scan import progress as progress_lib
from keras_scan.cascade_eval import mean_cost
from keras_scan.exit_rule import confidence, fallback_predictions

# Upper bound on booleans materialised at once when evaluating a population.
_EVAL_CHUNK_ELEMENTS = 1 << 23


class ThresholdProblem:
    """Cached per-exit confidence/correctness; evaluates many settings at once.

    Args:
        arrays: list of K+1 arrays of shape (N, C), checked
            (`keras_scan.exit_rule.as_probs`), the final exit last.
        y: int64 array of shape (N,). Class labels.
        macs: K+1 floats. Cumulative cost of answering at each exit (MACs or
            ms), the cost `run_nsga2` minimises.
        measure: str. Confidence measure (`keras_scan.exit_rule.MEASURES`).
        fallback: str. Fallback rule (`keras_scan.exit_rule.FALLBACKS`).
    """

    def __init__(self, arrays, y, macs, measure, fallback):
        self.k = len(arrays) - 1
        self.n = arrays[0].shape[0]
        self.macs = macs
        self.conf = np.stack([confidence(a, measure) for a in arrays[:-1]])
        correct = [np.argmax(a, axis=1) == y for a in arrays[:-1]]
        correct.append(fallback_predictions(arrays, fallback) == y)
        self.correct = np.stack(correct)  # (K+1, N)
        self.final_ok = np.argmax(arrays[-1], axis=1) == y
        self.final_correct = int(np.sum(self.final_ok))
        self.sorted_conf = np.sort(self.conf, axis=1)
        self.decode_table = np.stack([_midpoints_below(s) for s in self.sorted_conf])

    def evaluate(self, th):
        """th (P, K) -> (correct counts (P,), per-exit answer counts (P, K+1))."""
        th = np.atleast_2d(np.asarray(th, dtype=np.float64))
        p, k, n = th.shape[0], self.k, self.n
        n_correct = np.empty(p, dtype=np.int64)
        counts = np.empty((p, k + 1), dtype=np.int64)
        step = max(1, _EVAL_CHUNK_ELEMENTS // n)
        for s in range(0, p, step):
            t = th[s : s + step]
            undecided = np.ones((t.shape[0], n), dtype=bool)
            nc = np.zeros(t.shape[0], dtype=np.int64)
            for i in range(k):
                if not np.any(t[:, i] < 1.0):
                    counts[s : s + step, i] = 0
                    continue
                take = self.conf[i][None, :] >= t[:, i, None]
                take &= (t[:, i] < 1.0)[:, None]
                take &= undecided
                undecided &= ~take
                counts[s : s + step, i] = np.count_nonzero(take, axis=1)
                take &= self.correct[i][None, :]
                nc += np.count_nonzero(take, axis=1)
            counts[s : s + step, k] = np.count_nonzero(undecided, axis=1)
            undecided &= self.correct[k][None, :]
            n_correct[s : s + step] = nc + np.count_nonzero(undecided, axis=1)
        return n_correct, counts

    def discordant(self, th):
        """th (P, K) -> (b, c): counts of samples the final exit gets right and
        the cascade wrong (b), and the reverse (c). The cascade's accuracy is the
        final exit's plus (c - b) / N; b + c is what its noise comes from."""
        th = np.atleast_2d(np.asarray(th, dtype=np.float64))
        p, k, n = th.shape[0], self.k, self.n
        b = np.empty(p, dtype=np.int64)
        c = np.empty(p, dtype=np.int64)
        step = max(1, _EVAL_CHUNK_ELEMENTS // n)
        for s in range(0, p, step):
            t = th[s : s + step]
            undecided = np.ones((t.shape[0], n), dtype=bool)
            right = np.zeros((t.shape[0], n), dtype=bool)
            for i in range(k):
                take = self.conf[i][None, :] >= t[:, i, None]
                take &= (t[:, i] < 1.0)[:, None]
                take &= undecided
                undecided &= ~take
                right |= take & self.correct[i][None, :]
            right |= undecided & self.correct[k][None, :]
            b[s : s + step] = np.count_nonzero(~right & self.final_ok, axis=1)
            c[s : s + step] = np.count_nonzero(right & ~self.final_ok, axis=1)
        return b, c

    def decode(self, genes):
        """Genes in [0, 1]^K (fraction of samples below the threshold) -> thresholds.

        Gene g of exit i selects the sorted confidence at rank floor(g * N) and
        returns the midpoint between it and the next lower distinct confidence, so
        thresholds keep the largest margin to the validation samples; g = 1 gives
        1.0 (exit disabled).
        """
        g = np.asarray(genes, dtype=np.float64)
        rank = np.floor(np.clip(g, 0.0, 1.0) * self.n).astype(np.int64)
        cols = np.arange(self.k)
        th = self.decode_table[cols, np.minimum(rank, self.n - 1)]
        return np.where(rank >= self.n, 1.0, th)

    def encode(self, th):
        """Thresholds (P, K) -> genes (approximate inverse of `decode`)."""
        th = np.atleast_2d(th)
        genes = np.empty(th.shape)
        for i in range(self.k):
            genes[:, i] = np.searchsorted(self.sorted_conf[i], th[:, i], "left")
        genes = (genes + 0.5) / self.n
        return np.where(th >= 1.0, 1.0, np.clip(genes, 0.0, 1.0))

    def global_sweep(self):
        """Every distinct outcome of one threshold shared by all shallow exits.

        With running maxima m_i = max(conf_0..conf_i), a sample answers at exit
        <= i exactly when m_i >= t, so lowering t through the sorted m values moves
        one sample one exit earlier per step: cumulative sums give every outcome in
        O(NK log NK).

        Returns (thresholds (G,), correct counts (G,), answer counts (G, K+1)),
        starting with t = 1.0 (no early exit).
        """
        k, n = self.k, self.n
        running = np.maximum.accumulate(self.conf, axis=0)  # (K, N)
        exit_of = np.repeat(np.arange(k), n)
        sample_of = np.tile(np.arange(n), k)
        values = running.ravel()
        order = np.argsort(-values, kind="stable")
        values, exit_of, sample_of = values[order], exit_of[order], sample_of[order]
        gain = self.correct[exit_of, sample_of].astype(np.int64) - self.correct[
            exit_of + 1, sample_of
        ].astype(np.int64)
        n_correct = int(self.correct[k].sum()) + np.cumsum(gain)
        counts = np.zeros((values.size, k + 1), dtype=np.int64)
        for j in range(k + 1):
            counts[:, j] = np.cumsum(exit_of == j) - np.cumsum(exit_of + 1 == j)
        counts[:, k] += n
        last = np.flatnonzero(np.r_[values[1:] != values[:-1], True])
        upper = values[last]
        lower = np.r_[upper[1:], 0.0]
        th = _safe_midpoint(lower, upper)
        # A threshold of 1.0 disables an exit: drop the (float-rounding) case of a
        # group at 1.0 with no representable threshold strictly below it.
        last, th = last[th < 1.0], th[th < 1.0]
        th = np.r_[1.0, th]
        n_correct = np.r_[int(self.correct[k].sum()), n_correct[last]]
        counts = np.vstack([np.eye(k + 1, dtype=np.int64)[k] * n, counts[last]])
        return th, n_correct, counts


def _safe_midpoint(lower, upper):
    mid = (lower + upper) / 2.0
    return np.where((mid > lower) & (mid <= upper), mid, upper)


def _midpoints_below(sorted_values):
    """For each position, a threshold that accepts exactly the values >= it."""
    starts = np.r_[True, sorted_values[1:] != sorted_values[:-1]]
    group = np.cumsum(starts) - 1
    distinct = sorted_values[starts]
    below = np.r_[0.0, distinct[:-1]]
    return _safe_midpoint(below, distinct)[group]


def run_nsga2(
    problem, seed_genes, population, generations, rng_seed, archive, progress=False
):
    """NSGA-II (DEAP) over genes in [0, 1]^K; every evaluation goes to `archive`.

    `progress=True` draws a bar over the generations on stderr
    (`keras_scan.progress`).
    """
    from deap import base, tools

    class Fitness(base.Fitness):
        weights = (1.0, -1.0)  # accuracy up, mean MACs down

    class Individual(list):
        def __init__(self, *args):
            super().__init__(*args)
            self.fitness = Fitness()

    k, n = problem.k, problem.n
    eta_cx, eta_mut, cxpb, indpb = 15.0, 20.0, 0.9, 1.0 / k

    def evaluate(individuals):
        if not individuals:
            return
        th = problem.decode(np.array([list(ind) for ind in individuals]))
        n_correct, counts = problem.evaluate(th)
        mean_macs = mean_cost(counts, problem.macs, n)
        archive.append((th, n_correct, counts))
        for ind, nc, mm in zip(individuals, n_correct, mean_macs):
            ind.fitness.values = (int(nc) / n, float(mm))

    state = random.getstate()
    random.seed(rng_seed)
    bar = progress_lib.bar(progress, total=generations, desc="NSGA-II", unit="gen")
    try:
        pop = [Individual(float(x) for x in g) for g in seed_genes[:population]]
        while len(pop) < population:
            pop.append(Individual(random.random() for _ in range(k)))
        evaluate(pop)
        pop = tools.selNSGA2(pop, population, nd="log")
        for _ in range(generations):
            offspring = [
                Individual(ind) for ind in tools.selTournamentDCD(pop, len(pop))
            ]
            for a, b in zip(offspring[::2], offspring[1::2]):
                if random.random() <= cxpb:
                    tools.cxSimulatedBinaryBounded(a, b, eta_cx, 0.0, 1.0)
                tools.mutPolynomialBounded(a, eta_mut, 0.0, 1.0, indpb)
                tools.mutPolynomialBounded(b, eta_mut, 0.0, 1.0, indpb)
            evaluate(offspring)
            pop = tools.selNSGA2(pop + offspring, population, nd="log")
            bar.update(1)
    finally:
        bar.close()
        random.setstate(state)

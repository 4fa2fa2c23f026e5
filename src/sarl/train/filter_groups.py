"""Dynamic sampling (DAPO, arXiv 2503.14476, section 3.2; verl's ``algorithm.filter_groups``): a group
whose responses all get the same value of the filter metric has zero group-centred advantage, so it adds
nothing to a GRPO update but dilutes its normaliser. With ``algorithm.filter_groups.enable``, a step
generates in rounds until it holds P = ``trainer.prompts_per_step`` informative groups:

    round r = 0, 1, ...: draw P prompts from the data stream, sample n responses each (sampling key
    r·P + the prompt's global position), grade them, compute the metric m_i per response
    (``acc``: correctness; ``reward`` = ``score`` = ``seq_reward``: the total reward R before any
    in-reward KL), and keep group g iff it has one response or max_g m ≠ min_g m (verl drops a group
    of several responses whose metric has std 0);
    stop when the kept groups of all rounds number ≥ P; train on the first P of them in draw order
    (round, then position), the surplus is discarded (as verl's DAPO recipe, ``batch[:traj_bsz]``).

``max_num_gen_batches`` > 0 bounds the rounds; a step that reaches the bound with fewer than P groups
raises :class:`FilterGroupsError` (verl's DAPO recipe raises there too; verl 0.9.1's own replay buffer
ignores the setting with a warning). 0 means no bound (verl: "non-positive values mean no upper limit").

Several processes: each generates and grades its 1/N of every round's prompts and computes their
metric; the round's rows and metric values are all-gathered, so every process holds the same global
rounds, decides on the same groups, stops after the same round, and takes its contiguous 1/N of the
first P: the step's batch is the one a single process would train on (the sampling keys are global). The metric ``reward`` runs the reward inputs
(and, with SAR, the policy's log-prob passes) on each round's batch; the step's stages then compute
them again on the kept rows (the filter's pass costs at most one more reward pass per round).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from sarl.errors import SarlError
from sarl.rollout.batch import RolloutBatch
from sarl.train.setup import Run


class FilterGroupsError(SarlError, RuntimeError):
    """``algorithm.filter_groups.max_num_gen_batches`` rounds gave fewer informative groups than a step needs."""


def informative_groups(values: torch.Tensor, group_ids: torch.Tensor) -> torch.Tensor:
    """``keep [G]`` (bool) for the groups 0..G-1 of ``group_ids [N]``: a group is kept when it has one row
    or its ``values [N]`` are not all equal (max ≠ min; verl: std ≠ 0). A group id without rows is dropped."""
    ids = group_ids.long()
    G = int(ids.max()) + 1 if ids.numel() else 0
    v = values.double()
    hi = torch.full((G,), float("-inf"), dtype=torch.float64).scatter_reduce(0, ids, v, "amax")
    lo = torch.full((G,), float("inf"), dtype=torch.float64).scatter_reduce(0, ids, v, "amin")
    size = torch.zeros(G, dtype=torch.long).scatter_add(0, ids, torch.ones_like(ids))
    return (size == 1) | ((size > 1) & (hi != lo))


@dataclass(frozen=True)
class FilterStats:
    """One step's rounds and groups, counted over all processes."""

    gen_rounds: int
    kept_groups: int  # informative groups generated (≥ prompts_per_step)
    dropped_groups: int  # groups of equal metric, left out
    surplus_groups: int  # informative groups beyond prompts_per_step, left out

    def metrics(self) -> dict[str, int]:
        return {f"filter/{k}": v for k, v in self.__dict__.items()}


def select_groups(values: Sequence[torch.Tensor], group_ids: Sequence[torch.Tensor],
                  target: int) -> tuple[list[tuple[int, int]], FilterStats]:
    """The refill: given the metric ``values[r] [N_r]`` and ``group_ids[r] [N_r]`` of each round r so far
    (all processes' rows), the groups a step trains on, as ``(round, group)`` pairs: the first ``target``
    informative groups (:func:`informative_groups`) in draw order, fewer if the rounds hold fewer; and the
    counts (``surplus_groups``: informative groups after the first ``target``)."""
    keeps = [informative_groups(v, g) for v, g in zip(values, group_ids, strict=True)]
    informative = [(r, int(g)) for r, k in enumerate(keeps) for g in k.nonzero().flatten().tolist()]
    chosen = informative[:target]
    kept, total = len(informative), sum(len(k) for k in keeps)
    return chosen, FilterStats(gen_rounds=len(keeps), kept_groups=kept, dropped_groups=total - kept,
                               surplus_groups=kept - len(chosen))


def metric_values(run: Run, batch: RolloutBatch, progress: float) -> torch.Tensor:
    """The filter metric of every row of a graded ``batch``, ``[N]``: correctness (``acc``) or the total
    reward R (``reward``, ``score``, ``seq_reward``), composed as the ``rewards`` stage composes it."""
    if run.cfg.algorithm.filter_groups.metric == "acc":
        return batch.correct.float()
    from sarl.logprobs import answer_mask
    from sarl.train import step as stages

    run.policy.eval()
    inputs = stages.null_logprobs(run, batch, None, answer_mask(batch.responses, run.device))
    return run.composer(inputs, progress=progress).total.float().cpu()


def _round(run: Run, step: int, round_: int, progress: float) -> tuple[RolloutBatch, torch.Tensor]:
    """One generation round, graded, with its metric values: all processes' rows in global order."""
    from sarl.train import step as stages

    batch = stages.grade(stages.generate(run, step, round_=round_, sleep=False))
    parts = run.dist.gather_objects((batch, metric_values(run, batch, progress)))
    return RolloutBatch.concat([b for b, _ in parts]), torch.cat([v for _, v in parts])


def generate_filtered(run: Run, step: int, progress: float) -> tuple[RolloutBatch, FilterStats]:
    """This process's share of the step's P informative groups, graded, and the step's counts (module
    docstring). Raises :class:`FilterGroupsError` when ``max_num_gen_batches`` rounds fall short."""
    fg, P = run.cfg.algorithm.filter_groups, run.cfg.trainer.prompts_per_step
    batches: list[RolloutBatch] = []
    values: list[torch.Tensor] = []
    chosen: list[tuple[int, int]] = []
    while len(chosen) < P:
        if fg.max_num_gen_batches and len(batches) == fg.max_num_gen_batches:
            run.backend.sleep()
            raise FilterGroupsError(
                f"step {step}: {len(batches)} generation rounds (algorithm.filter_groups.max_num_gen_batches="
                f"{fg.max_num_gen_batches}) gave {len(chosen)} informative groups of the {P} "
                f"trainer.prompts_per_step needs (metric {fg.metric}); the data may be too hard or too easy: raise "
                "max_num_gen_batches, set it to 0 (no limit), or lower trainer.prompts_per_step")
        batch, vals = _round(run, step, len(batches), progress)
        batches.append(batch)
        values.append(vals)
        chosen, stats = select_groups(values, [b.group_ids for b in batches], P)
    run.backend.sleep()  # vLLM on a GPU frees its memory for the update
    taken = RolloutBatch.concat([b.take_groups([g for r2, g in chosen if r2 == r]) for r, b in enumerate(batches)])
    return taken.take_groups(run.dist.shard(list(range(P)))), stats

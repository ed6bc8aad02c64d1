"""What to train: candidate configurations, their cheap scores, and the confirmed recommendation.

Candidates are one model for all tasks, the method's partitions into ``k`` groups and one model
per task; :class:`SurrogateScorer` predicts each one's validation score from Grad-TAG
surrogates of the group fine-tunes, :class:`ProbeScorer` measures it after short warm-started
fine-tunes, and the best few are confirmed by training (docs/algorithms.md §8). Candidates are
compared on a held-out part of the validation labels (:func:`holdout_mask`) that no checkpoint
was chosen on.
"""

from ._candidates import KINDS, Candidate, choose_candidate, single_task_default
from ._holdout import holdout_mask, holdout_split
from ._scores import PartitionScores, ProbeScorer, SurrogateScorer, partition_key
from ._search import improve_partition

__all__ = [
    "KINDS",
    "Candidate",
    "PartitionScores",
    "ProbeScorer",
    "SurrogateScorer",
    "choose_candidate",
    "holdout_mask",
    "holdout_split",
    "improve_partition",
    "partition_key",
    "single_task_default",
]

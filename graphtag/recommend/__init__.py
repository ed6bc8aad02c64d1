"""What to train: candidate configurations, their cheap scores, and the confirmed recommendation.

Candidates are one model for all tasks, the method's partitions into ``k`` groups and one model
per task; :class:`SurrogateScorer` predicts each one's validation score from Grad-TAG
surrogates of the group fine-tunes, :class:`ProbeScorer` measures it after short warm-started
fine-tunes, and the best few are confirmed by training (docs/algorithms.md §8).
"""

from ._scores import PartitionScores, ProbeScorer, SurrogateScorer, partition_key

__all__ = ["PartitionScores", "ProbeScorer", "SurrogateScorer", "partition_key"]

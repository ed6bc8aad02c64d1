"""graphtag's defaults in one place, read by the Python classes, the pipeline and the CLI.

So ``GradTAG()`` in a script and ``graphtag run`` compute the same thing.

Training defaults live in :class:`graphtag.training.TrainConfig`; the real fine-tune's budget in
:mod:`graphtag.estimation` (``FINETUNE_LR``, ``FINETUNE_STEPS``).
"""

__all__ = [
    "FEATURE_NODE_BATCH",
    "JVP_CHUNK",
    "MAX_TASK_ROWS",
    "MIN_PAIR_COUNT",
    "NUM_SUBSETS",
    "PROJECTION_BLOCK",
    "PROJECTION_DIM",
    "SDP_SOLVER",
    "SPLIT_RATIOS",
    "SUBSET_SIZE",
    "TAG_EVERY",
]

#: Projected gradient dimension ``d`` (:class:`graphtag.gradients.GradientProjector`).
PROJECTION_DIM = 200
#: Parameter block of the gradient features and of the surrogate's update: ``"all"``/``"body"``.
PROJECTION_BLOCK = "all"
#: Most training and most validation rows per task in the gradient features (``None``: all).
MAX_TASK_ROWS = 10_000
#: Nodes per exact batch while extracting gradient features.
FEATURE_NODE_BATCH = 1024
#: Projection directions per vmapped forward-mode JVP.
JVP_CHUNK = 32
#: Per-task train / validation / test fractions of the labelled nodes.
SPLIT_RATIOS = (0.2, 0.2, 0.6)
#: Task subsets sampled for a subset-based affinity (Grad-TAG, higher-order).
NUM_SUBSETS = 1000
#: Tasks per sampled subset (grown when the subsets cannot cover every pair; see the plan).
SUBSET_SIZE = 10
#: Every pair of tasks shares at least this many subsets.
MIN_PAIR_COUNT = 5
#: SDP solver of :class:`graphtag.clustering.SDPClustering` (``"auto"``: SCS for small ``T``,
#: graphtag's ADMM solver above).
SDP_SOLVER = "auto"
#: TAG measures its lookahead affinity every this many optimiser steps.
TAG_EVERY = 10

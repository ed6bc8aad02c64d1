"""graphtag.recommend: candidates, the parsimony rule, surrogate and probe scores, local search."""

import numpy as np
import pytest

from graphtag.data import load_dataset
from graphtag.errors import GraphtagError
from graphtag.estimation import make_synthetic_features
from graphtag.models import prepare_inputs
from graphtag.recommend import (
    Candidate,
    ProbeScorer,
    SurrogateScorer,
    choose_candidate,
    improve_partition,
    partition_key,
    single_task_default,
)
from graphtag.training import TrainConfig, fit_model


def test_parsimony_prefers_fewer_models_within_tolerance():
    one = Candidate("one model", "one", [[0, 1, 2, 3]], validation=0.80)
    two = Candidate("2 groups", "groups", [[0, 1], [2, 3]], validation=0.8009)
    four = Candidate("one per task", "single", [[0], [1], [2], [3]], validation=0.8015)
    untrained = Candidate("3 groups", "groups", [[0], [1], [2, 3]], predicted=0.99)
    assert choose_candidate([four, two, one, untrained], 0.001).name == "2 groups"
    assert choose_candidate([four, two, one], 0.01).name == "one model"
    assert choose_candidate([four, two, one], 0.0).name == "one per task"
    with pytest.raises(GraphtagError, match="validation ROC-AUC is undefined for every"):
        choose_candidate([untrained, Candidate("x", "one", [[0]], validation=float("nan"))], 0)


def test_candidate_kinds_and_single_task_setting():
    with pytest.raises(GraphtagError, match="unknown candidate kind 'pairs'"):
        Candidate("x", "pairs", [[0]])
    sel = Candidate("sel", "selection", [[0, 1], [2]], selected=[[0, 1, 2], [2]])
    assert sel.num_models == 2 and sel.to_dict()["selected_groups"] == [[0, 1, 2], [2]]
    assert single_task_default("auto", 40) and not single_task_default("auto", 41)
    assert single_task_default("on", 500) and not single_task_default("off", 3)
    with pytest.raises(GraphtagError, match="single_task must be"):
        single_task_default("yes", 3)


def test_surrogate_scores_prefer_planted_groups_and_match_per_group_fits():
    feats = make_synthetic_features(num_tasks=6, num_groups=2, seed=1)
    scorer = SurrogateScorer(feats, l2=0.1)
    planted = [[0, 1, 2], [3, 4, 5]]
    mixed = [[0, 1, 3], [2, 4, 5]]
    for metric in ("loss", "auc"):
        assert scorer.score(planted, metric) > scorer.score(mixed, metric)
    loss, auc = scorer.per_task(planted)
    g_loss, g_auc = scorer.group([3, 4, 5])
    assert np.array_equal(loss[3:], g_loss) and np.array_equal(auc[3:], g_auc)
    assert partition_key([[5, 3], [1, 0]]) == ((0, 1), (3, 5))


@pytest.mark.parametrize("start", [[[0, 3, 4], [1, 2, 5]], [[0, 1], [2, 3, 4, 5]]])
def test_local_search_recovers_planted_groups_and_keeps_k(start):
    feats = make_synthetic_features(num_tasks=6, num_groups=2, seed=1)
    scorer = SurrogateScorer(feats, l2=0.1)
    groups, moves = improve_partition(scorer, start)
    assert groups == [[0, 1, 2], [3, 4, 5]] and moves >= 1
    assert improve_partition(scorer, groups) == (groups, 0)


def test_probe_scores_never_below_the_base_model_on_validation():
    data = load_dataset("synthetic:num_nodes=300,num_tasks=4,num_groups=2,seed=0")
    config = TrainConfig(hidden_channels=16, epochs=20, device="cpu")
    inputs = prepare_inputs(data, config.model_config, "cpu")
    base = fit_model(data, inputs, None, config, seed=0).model
    probe = ProbeScorer(data, inputs, base, config, epochs=2)
    # A probe is the recipe's first epochs without the weight average (whose two-epoch average
    # would be nearly the first epoch's weights).
    assert config.ema_decay > 0 and probe.config.ema_decay == 0.0
    assert (probe.config.epochs, probe.config.patience) == (2, 2)
    _, base_auc = probe.base()
    for part in ([[0, 1, 2, 3]], [[0, 1], [2, 3]], [[0], [1], [2], [3]]):
        _, auc = probe.per_task(part)
        for g in part:  # each group keeps the base model when no epoch beats it (group mean)
            assert auc[g].mean() >= base_auc[g].mean() - 1e-12
    with pytest.raises(GraphtagError, match="probe epochs must be a positive integer"):
        ProbeScorer(data, inputs, base, config, epochs=0)


def test_proposer_limits_the_scored_moves_and_still_finds_the_planted_groups():
    feats = make_synthetic_features(num_tasks=6, num_groups=2, seed=1)

    class Counting(SurrogateScorer):
        def _score_groups(self, groups):
            self.scored = getattr(self, "scored", 0) + len(groups)
            return super()._score_groups(groups)

    full, cheap = Counting(feats, l2=0.1), SurrogateScorer(feats, l2=0.3)
    groups, _ = improve_partition(full, [[0, 3, 4], [1, 2, 5]])
    limited = Counting(feats, l2=0.1)
    got, _ = improve_partition(limited, [[0, 3, 4], [1, 2, 5]], proposer=cheap, moves_per_round=2)
    assert got == groups == [[0, 1, 2], [3, 4, 5]]
    assert limited.scored < full.scored  # only the proposed moves' groups were scored


def test_one_standard_error_rule_uses_the_paired_per_task_gap():
    noisy = [0.70, 0.90, 0.60, 0.80]  # the best candidate's per-task scores
    one = Candidate("one model", "one", [[0, 1, 2, 3]])
    one.validation_tasks = [0.71, 0.87, 0.61, 0.79]  # gap 0.0075, but scattered per task
    one.validation = float(np.mean(one.validation_tasks))
    two = Candidate("2 groups", "groups", [[0, 1], [2, 3]], validation_tasks=noisy)
    two.validation = float(np.mean(noisy))
    assert choose_candidate([one, two], 0.001).name == "one model"  # within one SE
    one.validation_tasks = [0.69, 0.89, 0.59, 0.79]  # the same 0.01 gap on every task
    one.validation = float(np.mean(one.validation_tasks))
    assert choose_candidate([one, two], 0.001).name == "2 groups"
    one.validation_tasks[1] = None  # undefined tasks are left out of the pair
    assert choose_candidate([one, two], 0.001).name == "2 groups"

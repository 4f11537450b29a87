"""Leaderboard snapshots: one immutable fit of the votes under one configuration.

The fitting lives in ``leaderboard.ratings`` (no Django); a snapshot records what went in (the
configuration, the hash of the aggregated data, the vote count) and what came out (rows, fitted
parameters, matrices), so a number on the page can always be traced to its inputs.
"""
from __future__ import annotations

from django.db import models
from django.db.models import Q
from django.utils import timezone

from arena.models import Contender


class Method(models.TextChoices):  # the values are leaderboard.ratings.METHODS (a test keeps them equal)
    ELO = "elo", "Online Elo"
    BT = "bt", "Bradley-Terry"
    PL = "pl", "Plackett-Luce"
    BAYES = "bayes", "Bayesian (Laplace posterior)"


class Snapshot(models.Model):
    config_key = models.CharField(max_length=64, db_index=True, help_text="Hash of config: finds the latest fit.")
    config = models.JSONField(help_text="Method, ties, interval method, filters, seed ... as requested.")
    method = models.CharField(max_length=8, choices=Method.choices)
    params = models.JSONField(default=dict, help_text="Settings and fitted scalars reported by the fit.")
    data_hash = models.CharField(max_length=64, help_text="sha256 of the aggregated counts that were fitted.")
    n_votes = models.PositiveIntegerField()
    created = models.DateTimeField(default=timezone.now, db_index=True)
    duration_ms = models.PositiveIntegerField()
    models_order = models.JSONField(default=list, help_text="Model names in the order of the matrices.")
    matrices = models.JSONField(default=dict, help_text="winrate, count and predicted (M x M) matrices.")
    style_coefficients = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["-created"]
        constraints = [
            models.CheckConstraint(condition=Q(method__in=Method.values), name="snapshot_method_valid"),
            models.CheckConstraint(condition=Q(data_hash__regex=r"^[0-9a-f]{64}$"), name="snapshot_hash_hex"),
        ]

    def __str__(self) -> str:
        return f"{self.method} snapshot {self.pk} ({self.n_votes} votes)"


class SnapshotRow(models.Model):
    snapshot = models.ForeignKey(Snapshot, on_delete=models.CASCADE, related_name="rows")
    contender = models.ForeignKey(Contender, on_delete=models.PROTECT, related_name="snapshot_rows")
    model = models.CharField(max_length=200, help_text="The contender's name when fitted (a snapshot is a record).")
    rating = models.FloatField()
    ci_low = models.FloatField(null=True, help_text="Null: unbounded below (-inf).")
    ci_high = models.FloatField(null=True, help_text="Null: unbounded above (+inf).")
    rank = models.PositiveIntegerField(help_text="Within the component.")
    rank_ub = models.PositiveIntegerField(help_text="Within the component.")
    votes = models.FloatField()
    mu = models.FloatField(null=True, blank=True)
    sigma = models.FloatField(null=True, blank=True)
    p_best = models.FloatField(null=True, blank=True)
    component = models.PositiveIntegerField(
        default=1, help_text="Connected component of the comparison graph: 1 = most votes. Ranks compare models "
                             "only within one.")
    provisional = models.BooleanField(
        default=False, help_text="Fewer votes than the fit's provisional_votes: interval at least the Fisher one.")
    ci_degenerate_share = models.FloatField(
        null=True, blank=True, help_text="Bootstrap: share of resamples in which the model never won, never lost "
                                         "or had no battle.")

    class Meta:
        ordering = ["snapshot", "component", "rank", "-rating"]
        constraints = [
            models.UniqueConstraint(fields=["snapshot", "contender"], name="snapshotrow_unique_contender"),
            models.CheckConstraint(condition=Q(rank__gte=1, rank_ub__gte=1), name="snapshotrow_rank_positive"),
            models.CheckConstraint(condition=Q(component__gte=1), name="snapshotrow_component_positive"),
            models.CheckConstraint(condition=Q(ci_degenerate_share__isnull=True)
                                   | Q(ci_degenerate_share__gte=0, ci_degenerate_share__lte=1),
                                   name="snapshotrow_degenerate_share_fraction"),
            models.CheckConstraint(condition=Q(ci_low__isnull=True) | Q(ci_high__isnull=True)
                                   | Q(ci_low__lte=models.F("ci_high")), name="snapshotrow_ci_ordered"),
            models.CheckConstraint(condition=Q(p_best__isnull=True) | Q(p_best__gte=0, p_best__lte=1),
                                   name="snapshotrow_p_best_probability"),
        ]

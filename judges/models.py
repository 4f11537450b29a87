"""Judges, judge runs, judgments and audits.

A :class:`Judgment` is one call to a judge: one battle, shown in one order, one replicate, plain or with one
perturbation. It is cached by a key over everything that determines the judge's answer, so any run that
needs the same call re-uses it, and a run that stopped half way resumes where it stopped. Runs and
judgments meet in :class:`RunJudgment`: an audit reads only the judgments linked to its run, and only once
the run has finished, so it never mixes results of an unfinished run.
"""
from __future__ import annotations

from django.db import models
from django.db.models import F, Q
from django.utils import timezone

from arena.models import Battle


class JudgeBackend(models.TextChoices):
    OPENAI = "openai", "OpenAI-compatible chat endpoint"
    TRANSFORMERS = "transformers", "Local transformers model"
    SCRIPTED = "scripted", "Scripted (parametric fake judge for validating audits)"


class Judge(models.Model):
    name = models.CharField(max_length=200, unique=True)
    family = models.CharField(max_length=100, blank=True,
                              help_text="Model family of the judge, compared with contenders' families for "
                                        "self-preference.")
    backend = models.CharField(max_length=20, choices=JudgeBackend.choices)
    config = models.JSONField(default=dict, blank=True,
                              help_text="Backend settings (no secrets: API keys come from the environment "
                                        "variable named by api_key_env).")
    template = models.CharField(max_length=40, default="arena-pair-v1",
                                help_text="Prompt template name (pairwise; K-wise battles use its K-wise twin).")
    temperature = models.FloatField(default=0.0)
    max_tokens = models.PositiveIntegerField(default=1024)
    seed = models.BigIntegerField(null=True, blank=True)
    prompt_price_per_mtok = models.DecimalField(max_digits=12, decimal_places=4, default=0,
                                                help_text="Cost per million prompt tokens, for run accounting.")
    completion_price_per_mtok = models.DecimalField(max_digits=12, decimal_places=4, default=0)
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(backend__in=JudgeBackend.values), name="judge_backend_known"),
            models.CheckConstraint(condition=Q(temperature__gte=0) & Q(temperature__lte=2),
                                   name="judge_temperature_range"),
            models.CheckConstraint(condition=Q(max_tokens__gte=1), name="judge_max_tokens_positive"),
            models.CheckConstraint(condition=Q(prompt_price_per_mtok__gte=0) & Q(completion_price_per_mtok__gte=0),
                                   name="judge_prices_non_negative"),
        ]

    def __str__(self) -> str:
        return self.name


class RunStatus(models.TextChoices):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


class JudgeRun(models.Model):
    judge = models.ForeignKey(Judge, on_delete=models.PROTECT, related_name="runs")
    template_version = models.CharField(max_length=40, help_text="The judge's template when the run was created.")
    filters = models.JSONField(default=dict, help_text="Which battles, as given (see JudgeRunFilters).")
    battle_ids = models.JSONField(default=list, help_text="The battles chosen at creation, frozen (sorted).")
    replicates = models.PositiveSmallIntegerField(default=1)
    perturbations = models.JSONField(default=list, blank=True)
    concurrency = models.PositiveSmallIntegerField(default=4)
    status = models.CharField(max_length=10, choices=RunStatus.choices, default=RunStatus.QUEUED)
    created = models.DateTimeField(default=timezone.now)
    started = models.DateTimeField(null=True, blank=True)
    finished = models.DateTimeField(null=True, blank=True)
    heartbeat = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True, default="")
    # Progress and accounting (over the whole run, cached judgments included).
    n_total = models.PositiveIntegerField(default=0, help_text="Judge calls the run needs.")
    n_done = models.PositiveIntegerField(default=0, help_text="Calls with a stored judgment.")
    n_cached = models.PositiveIntegerField(default=0, help_text="Of n_done: judgments re-used from the cache.")
    n_failed = models.PositiveIntegerField(default=0, help_text="Calls that failed after their retries.")
    prompt_tokens = models.PositiveBigIntegerField(default=0)
    completion_tokens = models.PositiveBigIntegerField(default=0)
    cost = models.DecimalField(max_digits=14, decimal_places=6, default=0)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(status__in=RunStatus.values), name="judge_run_status_known"),
            models.CheckConstraint(condition=Q(replicates__gte=1) & Q(replicates__lte=10),
                                   name="judge_run_replicates_range"),
            models.CheckConstraint(condition=Q(concurrency__gte=1) & Q(concurrency__lte=64),
                                   name="judge_run_concurrency_range"),
            models.CheckConstraint(condition=Q(n_done__lte=F("n_total")) & Q(n_cached__lte=F("n_done"))
                                   & Q(n_failed__lte=F("n_total") - F("n_done")),
                                   name="judge_run_counts_consistent"),
            # A finished run says when it finished; an unstarted one has not.
            models.CheckConstraint(
                condition=(Q(status__in=[RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED],
                             finished__isnull=False)
                           | Q(status__in=[RunStatus.QUEUED, RunStatus.RUNNING], finished__isnull=True)),
                name="judge_run_finished_iff_final"),
            models.CheckConstraint(condition=~Q(status=RunStatus.SUCCEEDED) | Q(n_done=F("n_total")),
                                   name="judge_run_succeeded_is_complete"),
        ]
        indexes = [models.Index(fields=["judge", "-created"])]

    def __str__(self) -> str:
        return f"run {self.pk} of {self.judge_id} ({self.status})"


class Verdict(models.TextChoices):
    A = "a"
    B = "b"
    TIE = "tie"
    RANKING = "ranking", "A ranking (K-wise)"
    UNPARSED = "unparsed"


class Judgment(models.Model):
    cache_key = models.CharField(max_length=64, unique=True,
                                 help_text="sha256 over judge, template version, rendered messages, sampling "
                                           "parameters, order and replicate.")
    judge = models.ForeignKey(Judge, on_delete=models.PROTECT, related_name="judgments")
    battle = models.ForeignKey(Battle, on_delete=models.PROTECT, related_name="judgments")
    template_version = models.CharField(max_length=40)
    order = models.CharField(max_length=12,
                             help_text="Battle positions in the order shown, as digits: '01' = A first, '10' = B "
                                       "first; K-wise '012…' or reversed.")
    replicate = models.PositiveSmallIntegerField(default=0)
    perturbation = models.CharField(max_length=40, blank=True, default="")
    perturbed_position = models.PositiveSmallIntegerField(null=True, blank=True,
                                                          help_text="Battle position whose answer was perturbed.")
    raw_text = models.TextField()
    verdict = models.CharField(max_length=10, choices=Verdict.choices)
    ranking = models.JSONField(null=True, blank=True,
                               help_text="K-wise: battle positions as ordered groups, best first (ties share one).")
    prompt_tokens = models.PositiveIntegerField(null=True, blank=True)
    completion_tokens = models.PositiveIntegerField(null=True, blank=True)
    latency_ms = models.PositiveIntegerField(default=0)
    cost = models.DecimalField(max_digits=14, decimal_places=6, default=0)
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(verdict__in=Verdict.values), name="judgment_verdict_known"),
            models.CheckConstraint(condition=Q(verdict=Verdict.RANKING, ranking__isnull=False)
                                   | (~Q(verdict=Verdict.RANKING) & Q(ranking__isnull=True)),
                                   name="judgment_ranking_iff_ranking_verdict"),
            models.CheckConstraint(condition=Q(perturbation="", perturbed_position__isnull=True)
                                   | (~Q(perturbation="") & Q(perturbed_position__isnull=False)),
                                   name="judgment_perturbation_has_target"),
            models.CheckConstraint(condition=Q(order__regex=r"^[0-5]{2,6}$"), name="judgment_order_digits"),
        ]
        indexes = [models.Index(fields=["judge", "battle"])]


class RunJudgment(models.Model):
    """A judgment a run needed (made by it or re-used from the cache)."""

    run = models.ForeignKey(JudgeRun, on_delete=models.CASCADE, related_name="items")
    judgment = models.ForeignKey(Judgment, on_delete=models.PROTECT, related_name="run_items")
    cached = models.BooleanField(default=False, help_text="Re-used from an earlier call rather than made by this run.")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["run", "judgment"], name="run_judgment_unique")]


class Audit(models.Model):
    run = models.ForeignKey(JudgeRun, on_delete=models.PROTECT, related_name="audits")
    created = models.DateTimeField(default=timezone.now)
    params = models.JSONField(default=dict, help_text="seed, bootstrap, level, length_threshold, human ratings used.")
    n_judgments = models.PositiveIntegerField()
    report = models.JSONField(help_text="The judges.audits report (see python -m judges.audit).")
    duration_ms = models.PositiveIntegerField(default=0)

    class Meta:
        indexes = [models.Index(fields=["run", "-created"])]

    def __str__(self) -> str:
        return f"audit {self.pk} of run {self.run_id}"

"""Judges API: judges and their audits are public reads; creating judges and starting runs is for staff.

A run's battles are voted ones only, so nothing here reveals a model an open battle is hiding.
"""
from __future__ import annotations

from typing import Any

from django.db import transaction
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema, extend_schema_serializer
from rest_framework import serializers
from rest_framework.permissions import IsAdminUser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from config.errors import ValidationFailed

from .models import Audit, Judge, JudgeBackend, JudgeRun
from .perturbations import PERTURBATIONS
from .prompts import TEMPLATES
from .selectors import judges_with_latest_audit
from .services import (
    MAX_CONCURRENCY,
    MAX_REPLICATES,
    judge_create,
    judge_run_cancel,
    judge_run_create,
    run_filters_from,
)
from .tasks import judge_run_task


class JudgeOutput(serializers.Serializer):
    name = serializers.CharField()
    family = serializers.CharField()
    backend = serializers.CharField()
    template = serializers.CharField()
    temperature = serializers.FloatField()
    max_tokens = serializers.IntegerField()
    latest_audit = serializers.IntegerField(allow_null=True)


def _judge_body(judge: Judge, latest: Audit | None) -> dict[str, Any]:
    return {"name": judge.name, "family": judge.family, "backend": judge.backend, "template": judge.template,
            "temperature": judge.temperature, "max_tokens": judge.max_tokens,
            "latest_audit": latest.pk if latest else None}


MAX_PRICE = 99_999_999  # per million tokens: the largest whole number Judge's price columns hold


class JudgeListApi(APIView):
    @extend_schema_serializer(component_name="JudgeInput")
    class InputSerializer(serializers.Serializer):
        name = serializers.CharField(max_length=200)
        backend = serializers.ChoiceField(choices=JudgeBackend.values)
        config = serializers.JSONField(required=False, default=dict,
                                       help_text="Backend settings; secrets only as api_key_env (a variable name).")
        family = serializers.CharField(max_length=100, required=False, default="", allow_blank=True)
        template = serializers.ChoiceField(choices=[t for t, v in TEMPLATES.items() if v.kind == "pairwise"],
                                           required=False, default="arena-pair-v1")
        temperature = serializers.FloatField(min_value=0, max_value=2, required=False, default=0.0)
        max_tokens = serializers.IntegerField(min_value=1, max_value=32768, required=False, default=1024)
        seed = serializers.IntegerField(min_value=0, max_value=2**31 - 1, required=False, allow_null=True,
                                        default=None)
        # Stored as DECIMAL(12, 4): anything from 10^8 on overflowed in the database (a 500, not a 400).
        prompt_price_per_mtok = serializers.FloatField(min_value=0, max_value=MAX_PRICE, required=False, default=0.0)
        completion_price_per_mtok = serializers.FloatField(min_value=0, max_value=MAX_PRICE, required=False,
                                                           default=0.0)

    def get_permissions(self) -> list[Any]:
        return [IsAdminUser()] if self.request.method == "POST" else []

    @extend_schema(responses=JudgeOutput(many=True), operation_id="judges_list")
    def get(self, request: Request) -> Response:
        return Response([_judge_body(judge, latest) for judge, latest in judges_with_latest_audit()])

    @extend_schema(request=InputSerializer, responses={201: JudgeOutput}, operation_id="judges_create",
                   description="Staff only.")
    def post(self, request: Request) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        judge = judge_create(**data.validated_data)
        return Response(_judge_body(judge, None), status=201)


class JudgeRunOutput(serializers.Serializer):
    id = serializers.IntegerField()
    judge = serializers.CharField(source="judge.name")
    template_version = serializers.CharField()
    status = serializers.CharField()
    filters = serializers.JSONField()
    battles = serializers.SerializerMethodField()
    replicates = serializers.IntegerField()
    perturbations = serializers.JSONField()
    concurrency = serializers.IntegerField()
    n_total = serializers.IntegerField()
    n_done = serializers.IntegerField()
    n_cached = serializers.IntegerField()
    n_failed = serializers.IntegerField()
    prompt_tokens = serializers.IntegerField()
    completion_tokens = serializers.IntegerField()
    cost = serializers.DecimalField(max_digits=14, decimal_places=6, coerce_to_string=False)
    error = serializers.CharField()
    created = serializers.DateTimeField()
    started = serializers.DateTimeField(allow_null=True)
    finished = serializers.DateTimeField(allow_null=True)
    heartbeat = serializers.DateTimeField(allow_null=True)
    audits = serializers.SerializerMethodField()

    def get_battles(self, run: JudgeRun) -> int:
        return len(run.battle_ids)

    def get_audits(self, run: JudgeRun) -> list[int]:
        return list(run.audits.order_by("id").values_list("id", flat=True))


class RunCreateApi(APIView):
    permission_classes = [IsAdminUser]

    @extend_schema_serializer(component_name="JudgeRunInput")
    class InputSerializer(serializers.Serializer):
        @extend_schema_serializer(component_name="JudgeRunFilters")
        class FiltersSerializer(serializers.Serializer):
            category = serializers.CharField(max_length=64, required=False, allow_blank=True)
            language = serializers.CharField(max_length=32, required=False, allow_blank=True)
            date_from = serializers.DateField(required=False, allow_null=True)
            date_to = serializers.DateField(required=False, allow_null=True)
            contenders = serializers.ListField(child=serializers.CharField(max_length=200), required=False,
                                               max_length=1000)
            k = serializers.IntegerField(min_value=2, max_value=6, required=False, allow_null=True)
            limit = serializers.IntegerField(min_value=1, max_value=1_000_000, required=False, allow_null=True)
            exclude_flagged = serializers.BooleanField(required=False, default=True)

        judge = serializers.CharField(max_length=200)
        filters = FiltersSerializer(required=False, default=dict)
        replicates = serializers.IntegerField(min_value=1, max_value=MAX_REPLICATES, required=False, default=1)
        perturbations = serializers.ListField(child=serializers.ChoiceField(choices=sorted(PERTURBATIONS)),
                                              required=False, default=list, max_length=len(PERTURBATIONS))
        concurrency = serializers.IntegerField(min_value=1, max_value=MAX_CONCURRENCY, required=False, default=4)

    @extend_schema(request=InputSerializer, responses={202: JudgeRunOutput}, operation_id="judge_runs_create",
                   description="Staff only. Freezes the matching voted battles and queues the run on the task "
                               "worker; follow it at /api/v1/judges/runs/{id}. A run that succeeds is audited.")
    def post(self, request: Request) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        judge = Judge.objects.filter(name=values["judge"]).first()
        if judge is None:
            raise ValidationFailed("no such judge", field="judge")
        filters = {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in values["filters"].items()}
        with transaction.atomic():
            run = judge_run_create(judge=judge, filters=run_filters_from(filters), replicates=values["replicates"],
                                   perturbations=values["perturbations"], concurrency=values["concurrency"])
            transaction.on_commit(lambda: judge_run_task.enqueue(run.pk))
        return Response(JudgeRunOutput(run).data, status=202)


class RunDetailApi(APIView):
    permission_classes = [IsAdminUser]

    @extend_schema(responses=JudgeRunOutput, operation_id="judge_runs_retrieve", description="Staff only.")
    def get(self, request: Request, run_id: int) -> Response:
        return Response(JudgeRunOutput(get_object_or_404(JudgeRun.objects.select_related("judge"), pk=run_id)).data)


class RunCancelApi(APIView):
    permission_classes = [IsAdminUser]

    @extend_schema(request=None, responses=JudgeRunOutput, operation_id="judge_runs_cancel", description="Staff only.")
    def post(self, request: Request, run_id: int) -> Response:
        run = judge_run_cancel(run=get_object_or_404(JudgeRun, pk=run_id))
        return Response(JudgeRunOutput(JudgeRun.objects.select_related("judge").get(pk=run.pk)).data)


class JudgeAuditOutput(serializers.Serializer):
    id = serializers.IntegerField()
    run = serializers.IntegerField(source="run_id")
    judge = serializers.CharField(source="run.judge.name")
    template_version = serializers.CharField(source="run.template_version")
    created = serializers.DateTimeField()
    params = serializers.JSONField()
    n_judgments = serializers.IntegerField()
    duration_ms = serializers.IntegerField()
    report = serializers.JSONField(help_text="The audit: {meta, judges: {JUDGE: {position, length, style, "
                                             "self_preference, agreement, perturbations, corrected_ranking, "
                                             "ranking_vs_human}}}; every estimate {value, ci_low, ci_high} "
                                             "(null when not estimable), p_value where a test is stated.")


class AuditDetailApi(APIView):
    @extend_schema(responses=JudgeAuditOutput, operation_id="judge_audits_retrieve")
    def get(self, request: Request, audit_id: int) -> Response:
        audit = get_object_or_404(Audit.objects.select_related("run__judge"), pk=audit_id)
        return Response(JudgeAuditOutput(audit).data)

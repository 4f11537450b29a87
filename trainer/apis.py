"""Preference datasets API, staff only: build a frozen dataset from the votes, list them, download the bytes."""
from __future__ import annotations

import re
from typing import Any

from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_serializer
from rest_framework import serializers
from rest_framework.permissions import IsAdminUser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from config.errors import ValidationFailed

from .datasets import sha256_hex
from .jobs import job_cancel, job_create, job_enter_arena, job_retry
from .models import DatasetMode, Launcher, PreferenceDataset, TrainingJob
from .selectors import dataset_get, dataset_list
from .services import FILTER_KEYS, dataset_build, dataset_bytes, dataset_export_trl

RECORD_FORMATS = ("jsonl", "trl")


@extend_schema_serializer(component_name="PreferenceDataset")
class DatasetOutput(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    filters = serializers.JSONField(help_text="The normalised filters the votes were chosen by.")
    mode = serializers.CharField()
    keep_ties = serializers.BooleanField()
    n_records = serializers.IntegerField()
    n_votes = serializers.IntegerField()
    counts = serializers.JSONField(help_text="matched, excluded_* (named, identity_leak, duplicate_prompt, "
                                             "flagged), skipped_*, both_bad_dropped, ties_dropped, "
                                             "identical_dropped, merged, votes_used, records.")
    sha256 = serializers.CharField(help_text="sha256 of the canonical JSONL (the records download's ETag).")
    size_bytes = serializers.IntegerField()
    created = serializers.DateTimeField()


class DatasetListApi(APIView):
    permission_classes = [IsAdminUser]

    @extend_schema_serializer(component_name="PreferenceDatasetInput")
    class InputSerializer(serializers.Serializer):
        @extend_schema_serializer(component_name="PreferenceDatasetFilters")
        class FiltersSerializer(serializers.Serializer):
            category = serializers.CharField(max_length=64, required=False, allow_blank=True)
            language = serializers.CharField(max_length=32, required=False, allow_blank=True)
            date_from = serializers.DateField(required=False, allow_null=True, help_text="Inclusive, vote time.")
            date_to = serializers.DateField(required=False, allow_null=True, help_text="Inclusive.")
            contenders = serializers.ListField(child=serializers.CharField(max_length=200), required=False,
                                               max_length=1000,
                                               help_text="Only battles whose every answer is one of these.")
            exclude_flagged = serializers.BooleanField(required=False, default=True)
            exclude_identity_leaks = serializers.BooleanField(required=False, default=True)
            dedupe_prompts = serializers.BooleanField(required=False, default=True,
                                                      help_text="Leave out votes flagged duplicate_prompt.")
            include_named = serializers.BooleanField(required=False, default=False)

            def to_internal_value(self, data: Any) -> dict[str, Any]:
                if isinstance(data, dict) and (unknown := sorted(set(data) - set(FILTER_KEYS))):
                    known = ", ".join(FILTER_KEYS)
                    raise serializers.ValidationError({unknown[0]: [f"unknown filter; known: {known}"]})
                return super().to_internal_value(data)

        name = serializers.CharField(max_length=200)
        filters = FiltersSerializer(required=False, default=dict)
        mode = serializers.ChoiceField(choices=DatasetMode.values, required=False, default=DatasetMode.ALL_PAIRS)
        keep_ties = serializers.BooleanField(required=False, default=False)

    @extend_schema(responses=DatasetOutput(many=True), operation_id="datasets_list", description="Staff only.")
    def get(self, request: Request) -> Response:
        return Response(DatasetOutput(dataset_list(), many=True).data)

    @extend_schema(request=InputSerializer, responses={201: DatasetOutput}, operation_id="datasets_create",
                   description="Staff only. Freezes the records of the votes that match the filters now "
                               "(later votes never change it); 400 naming the field for a taken name, a bad "
                               "filter, or filters that leave no record.")
    def post(self, request: Request) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        dataset = dataset_build(name=values["name"], filters=values["filters"], mode=values["mode"],
                                keep_ties=values["keep_ties"])
        return Response(DatasetOutput(dataset).data, status=201)


def _dataset(dataset_id: int) -> PreferenceDataset:
    dataset = dataset_get(dataset_id)
    if dataset is None:
        raise Http404
    return dataset


class DatasetDetailApi(APIView):
    permission_classes = [IsAdminUser]

    @extend_schema(responses=DatasetOutput, operation_id="datasets_retrieve", description="Staff only.")
    def get(self, request: Request, dataset_id: int) -> Response:
        return Response(DatasetOutput(_dataset(dataset_id)).data)


class DatasetRecordsApi(APIView):
    permission_classes = [IsAdminUser]

    @extend_schema(
        parameters=[OpenApiParameter("format", str, enum=list(RECORD_FORMATS),
                                     description="jsonl (default): the canonical records, byte for byte; trl: "
                                                 "TRL's prompt/chosen/rejected rows.")],
        responses={(200, "application/x-ndjson"): OpenApiTypes.BINARY}, operation_id="datasets_records",
        description="Staff only. The dataset's bytes as an attachment; the ETag is their sha256 (for jsonl, the "
                    "dataset's sha256). Honours If-None-Match.")
    def get(self, request: Request, dataset_id: int) -> HttpResponse:
        fmt = request.query_params.get("format", "jsonl")
        if fmt not in RECORD_FORMATS:
            raise ValidationFailed(f"must be one of {', '.join(RECORD_FORMATS)}", field="format")
        dataset = _dataset(dataset_id)
        etag = f'"{dataset.sha256}"' if fmt == "jsonl" else None
        if etag is not None and etag in _if_none_match(request):
            return HttpResponse(status=304, headers={"ETag": etag})
        content = dataset_bytes(dataset) if fmt == "jsonl" else dataset_export_trl(dataset)
        etag = etag or f'"{sha256_hex(content)}"'
        if etag in _if_none_match(request):
            return HttpResponse(status=304, headers={"ETag": etag})
        slug = re.sub(r"[^A-Za-z0-9._-]+", "-", dataset.name).strip("-.") or f"dataset-{dataset.pk}"
        suffix = ".jsonl" if fmt == "jsonl" else ".trl.jsonl"
        response = HttpResponse(content, content_type="application/x-ndjson")
        response["ETag"] = etag
        response["Content-Disposition"] = f'attachment; filename="{slug}{suffix}"'
        return response


def _if_none_match(request: Request) -> set[str]:
    return {tag.strip() for tag in request.headers.get("If-None-Match", "").split(",") if tag.strip()}


# --- training jobs ----------------------------------------------------------------------------------------


@extend_schema_serializer(component_name="TrainingJob")
class JobOutput(serializers.Serializer):
    id = serializers.IntegerField()
    dataset = serializers.IntegerField(source="dataset_id")
    dataset_sha256 = serializers.CharField(source="dataset.sha256")
    config = serializers.JSONField(help_text="JOB.json keys (the worker adds train_file and output_dir).")
    launcher = serializers.CharField()
    nproc = serializers.IntegerField()
    status = serializers.CharField(help_text="queued, running, succeeded, failed or cancelled.")
    attempts = serializers.IntegerField()
    created = serializers.DateTimeField()
    started = serializers.DateTimeField(allow_null=True)
    finished = serializers.DateTimeField(allow_null=True)
    heartbeat = serializers.DateTimeField(allow_null=True)
    progress = serializers.JSONField(help_text="The trainer's progress.json: step, total_steps, loss, eta_s, ...")
    metrics = serializers.JSONField(help_text="metrics.jsonl lines (train and eval) read so far.")
    model_card = serializers.CharField()
    error = serializers.CharField()
    contender = serializers.CharField(source="contender.name", allow_null=True, default=None)


def _job_body(job: TrainingJob) -> dict[str, Any]:
    return JobOutput(TrainingJob.objects.select_related("dataset", "contender").get(pk=job.pk)).data


class JobListApi(APIView):
    permission_classes = [IsAdminUser]

    @extend_schema_serializer(component_name="TrainingJobInput")
    class InputSerializer(serializers.Serializer):
        dataset = serializers.IntegerField(min_value=1)
        config = serializers.JSONField(help_text="JOB.json keys but train_file and output_dir (see "
                                                 "python -m trainer.train --help-config).")
        launcher = serializers.ChoiceField(choices=Launcher.values, required=False, default=Launcher.PYTHON)
        nproc = serializers.IntegerField(min_value=1, max_value=64, required=False, default=1)

    @extend_schema(responses=JobOutput(many=True), operation_id="training_jobs_list", description="Staff only.")
    def get(self, request: Request) -> Response:
        jobs = TrainingJob.objects.select_related("dataset", "contender").order_by("-created")[:200]
        return Response(JobOutput(jobs, many=True).data)

    @extend_schema(request=InputSerializer, responses={201: JobOutput}, operation_id="training_jobs_create",
                   description="Staff only. Queues the job on the gpu queue (manage.py db_worker --queue-name gpu).")
    def post(self, request: Request) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        dataset = PreferenceDataset.objects.filter(pk=values["dataset"]).first()
        if dataset is None:
            raise ValidationFailed("no such dataset", field="dataset")
        job = job_create(dataset=dataset, config=values["config"], launcher=values["launcher"],
                         nproc=values["nproc"])
        return Response(_job_body(job), status=201)


class JobDetailApi(APIView):
    permission_classes = [IsAdminUser]

    @extend_schema(responses=JobOutput, operation_id="training_jobs_retrieve", description="Staff only.")
    def get(self, request: Request, job_id: int) -> Response:
        return Response(_job_body(get_object_or_404(TrainingJob, pk=job_id)))


class JobCancelApi(APIView):
    permission_classes = [IsAdminUser]

    @extend_schema(request=None, responses=JobOutput, operation_id="training_jobs_cancel", description="Staff only.")
    def post(self, request: Request, job_id: int) -> Response:
        return Response(_job_body(job_cancel(job=get_object_or_404(TrainingJob, pk=job_id))))


class JobRetryApi(APIView):
    permission_classes = [IsAdminUser]

    @extend_schema(request=None, responses=JobOutput, operation_id="training_jobs_retry",
                   description="Staff only. Resumes from the job's last checkpoint.")
    def post(self, request: Request, job_id: int) -> Response:
        return Response(_job_body(job_retry(job=get_object_or_404(TrainingJob, pk=job_id))))


class JobEnterApi(APIView):
    permission_classes = [IsAdminUser]

    @extend_schema_serializer(component_name="TrainingJobEnterInput")
    class InputSerializer(serializers.Serializer):
        name = serializers.CharField(max_length=200, help_text="The new contender's name.")
        family = serializers.CharField(max_length=100, required=False, default="", allow_blank=True)

    @extend_schema(request=InputSerializer, responses={201: JobOutput}, operation_id="training_jobs_enter",
                   description="Staff only. Registers the trained model as a contender with a transformers source.")
    def post(self, request: Request, job_id: int) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        job = get_object_or_404(TrainingJob, pk=job_id)
        job_enter_arena(job=job, **data.validated_data)
        return Response(_job_body(job), status=201)

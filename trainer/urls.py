from __future__ import annotations

from django.urls import path

from . import apis, views

api_urlpatterns = [
    path("datasets", apis.DatasetListApi.as_view(), name="datasets"),
    path("datasets/<int:dataset_id>", apis.DatasetDetailApi.as_view(), name="dataset"),
    path("datasets/<int:dataset_id>/records", apis.DatasetRecordsApi.as_view(), name="dataset-records"),
    path("training/jobs", apis.JobListApi.as_view(), name="training-jobs"),
    path("training/jobs/<int:job_id>", apis.JobDetailApi.as_view(), name="training-job"),
    path("training/jobs/<int:job_id>/cancel", apis.JobCancelApi.as_view(), name="training-job-cancel"),
    path("training/jobs/<int:job_id>/retry", apis.JobRetryApi.as_view(), name="training-job-retry"),
    path("training/jobs/<int:job_id>/enter", apis.JobEnterApi.as_view(), name="training-job-enter"),
]

page_urlpatterns = [
    path("training/jobs", views.jobs_page, name="training-jobs-page"),
    path("training/jobs/<int:job_id>", views.job_page, name="training-job-page"),
]

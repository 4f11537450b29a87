from __future__ import annotations

from django.urls import path

from . import apis

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

# The trainer has no pages yet: config/urls.py includes this module by name under api/v1/.
urlpatterns = api_urlpatterns

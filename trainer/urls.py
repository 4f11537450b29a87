from __future__ import annotations

from django.urls import path

from . import apis

api_urlpatterns = [
    path("datasets", apis.DatasetListApi.as_view(), name="datasets"),
    path("datasets/<int:dataset_id>", apis.DatasetDetailApi.as_view(), name="dataset"),
    path("datasets/<int:dataset_id>/records", apis.DatasetRecordsApi.as_view(), name="dataset-records"),
]

# The trainer has no pages yet: config/urls.py includes this module by name under api/v1/.
urlpatterns = api_urlpatterns

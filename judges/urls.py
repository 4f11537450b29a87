from __future__ import annotations

from django.urls import path

from . import apis, views

api_urlpatterns = [
    path("judges", apis.JudgeListApi.as_view(), name="judges"),
    path("judges/runs", apis.RunCreateApi.as_view(), name="judge-runs"),
    path("judges/runs/<int:run_id>", apis.RunDetailApi.as_view(), name="judge-run"),
    path("judges/runs/<int:run_id>/cancel", apis.RunCancelApi.as_view(), name="judge-run-cancel"),
    path("judges/audits/<int:audit_id>", apis.AuditDetailApi.as_view(), name="judge-audit"),
]

page_urlpatterns = [
    path("judges", views.judges_page, name="judges-page"),
    path("judges/audits/<int:audit_id>", views.audit_page, name="audit-page"),
    path("judges/<str:name>", views.judge_page, name="judge-page"),
]

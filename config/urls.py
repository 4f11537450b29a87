from __future__ import annotations

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from arena.urls import api_urlpatterns as arena_api
from arena.urls import page_urlpatterns as arena_pages

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/v1/", include((arena_api, "arena"), namespace="api")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
    path("", include((arena_pages, "arena"), namespace="arena")),
]

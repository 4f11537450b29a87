from __future__ import annotations

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from arena.urls import api_urlpatterns as arena_api
from arena.urls import page_urlpatterns as arena_pages
from judges.urls import api_urlpatterns as judges_api
from judges.urls import page_urlpatterns as judges_pages
from leaderboard.urls import api_urlpatterns as leaderboard_api
from leaderboard.urls import page_urlpatterns as leaderboard_pages
from trainer.urls import api_urlpatterns as trainer_api
from trainer.urls import page_urlpatterns as trainer_pages

handler404 = "config.errors.handler404"
handler400 = "config.errors.handler400"
handler500 = "config.errors.handler500"

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/v1/", include((arena_api, "arena"), namespace="api")),
    path("api/v1/", include((leaderboard_api, "leaderboard"), namespace="leaderboard-api")),
    path("api/v1/", include((judges_api, "judges"), namespace="judges-api")),
    path("api/v1/", include((trainer_api, "trainer"), namespace="trainer-api")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
    path("", include((arena_pages, "arena"), namespace="arena")),
    path("", include((leaderboard_pages, "leaderboard"), namespace="leaderboard")),
    path("", include((judges_pages, "judges"), namespace="judges")),
    path("", include((trainer_pages, "trainer"), namespace="trainer")),
]

from __future__ import annotations

from django.urls import path

from . import apis, views

api_urlpatterns = [
    path("leaderboard", apis.LeaderboardApi.as_view(), name="leaderboard"),
    path("leaderboard/matrix", apis.LeaderboardMatrixApi.as_view(), name="leaderboard-matrix"),
]

page_urlpatterns = [
    path("leaderboard", views.leaderboard_page, name="leaderboard-page"),
]

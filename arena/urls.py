from __future__ import annotations

from django.urls import path

from . import apis, views

api_urlpatterns = [
    path("contenders", apis.ContenderListApi.as_view(), name="contender-list"),
    path("battles", apis.BattleCreateApi.as_view(), name="battle-create"),
    path("battles/<uuid:battle_id>", apis.BattleDetailApi.as_view(), name="battle-detail"),
    path("battles/<uuid:battle_id>/vote", apis.BattleVoteApi.as_view(), name="battle-vote"),
    path("battles/<uuid:battle_id>/turns", apis.BattleTurnApi.as_view(), name="battle-turn"),
    path("battles/<uuid:battle_id>/stream", views.battle_stream, name="battle-stream"),
]

page_urlpatterns = [
    path("", views.home, name="home"),
    path("battles/new", views.battle_new, name="battle-new"),
    path("battles/<uuid:battle_id>", views.battle_page, name="battle-page"),
    path("about", views.about, name="about"),
    path("privacy", views.privacy, name="privacy"),
]

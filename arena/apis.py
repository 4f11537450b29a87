"""REST API v1 of the arena: parse, call a service or selector, serialize. No rules live here."""
from __future__ import annotations

import uuid
from typing import Any
from uuid import UUID

from django.conf import settings
from drf_spectacular.utils import (
    OpenApiParameter,
    PolymorphicProxySerializer,
    extend_schema,
    extend_schema_serializer,
    inline_serializer,
)
from rest_framework import serializers
from rest_framework.permissions import IsAdminUser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from config.errors import NotFound, ValidationFailed

from .choices import VoteChoice
from .identity import voter_for_read, voter_from_request
from .models import MAX_K, MIN_K, Battle, BattleStatus, Outcome
from .selectors import battle_get_for_voter, contender_list
from .services import SlotInput, battle_create, vote_record

POSITION_LABELS = "ABCDEF"


class ContenderOutput(serializers.Serializer):
    name = serializers.CharField()
    organization = serializers.CharField()
    license = serializers.CharField()


class PromptOutput(serializers.Serializer):
    text = serializers.CharField()
    category = serializers.CharField()
    language = serializers.CharField()


class AnonymousSlotOutput(serializers.Serializer):
    position = serializers.IntegerField()
    label = serializers.SerializerMethodField()
    response = serializers.CharField()

    def get_label(self, slot: Any) -> str:
        return POSITION_LABELS[slot.position]


class RevealedSlotOutput(AnonymousSlotOutput):
    contender = ContenderOutput()
    token_count = serializers.IntegerField(allow_null=True)
    latency_ms = serializers.IntegerField(allow_null=True)


class VoteOutput(serializers.Serializer):
    kind = serializers.CharField()
    outcome = serializers.CharField(allow_null=True)
    best = serializers.IntegerField(source="best_position", allow_null=True)
    ranking = serializers.JSONField(allow_null=True)
    aspects = serializers.JSONField()
    rationale = serializers.CharField()
    created = serializers.DateTimeField()


class AnonymousBattleOutput(serializers.Serializer):
    """Before the vote: nothing that identifies a contender (no names, ids, latencies or token counts)."""

    id = serializers.UUIDField()
    k = serializers.IntegerField()
    status = serializers.CharField()
    created = serializers.DateTimeField()
    prompt = PromptOutput(allow_null=True)
    slots = AnonymousSlotOutput(many=True)


class RevealedBattleOutput(AnonymousBattleOutput):
    revealed_at = serializers.DateTimeField()
    slots = RevealedSlotOutput(many=True)
    vote = VoteOutput()


def battle_body(battle: Battle) -> dict[str, Any]:
    """Serialize a battle, revealing contenders only once it has been voted."""
    if battle.status == BattleStatus.VOTED:
        return RevealedBattleOutput(battle).data
    return AnonymousBattleOutput(battle).data


class ContenderListApi(APIView):
    @extend_schema_serializer(component_name="ContenderListItem")
    class OutputSerializer(ContenderOutput):
        family = serializers.CharField()
        active = serializers.BooleanField()

    @extend_schema(responses=OutputSerializer(many=True), operation_id="contenders_list")
    def get(self, request: Request) -> Response:
        return Response(self.OutputSerializer(contender_list(), many=True).data)


class BattleCreateApi(APIView):
    """Staff only: open a battle from given contenders and their responses (public matchmaking comes later)."""

    permission_classes = [IsAdminUser]

    @extend_schema_serializer(component_name="BattleCreateInput")
    class InputSerializer(serializers.Serializer):
        @extend_schema_serializer(component_name="BattleSlotInput")
        class SlotInputSerializer(serializers.Serializer):
            contender = serializers.CharField(max_length=200)
            response = serializers.CharField(allow_blank=True, max_length=200_000)
            token_count = serializers.IntegerField(min_value=0, required=False, allow_null=True)
            latency_ms = serializers.IntegerField(min_value=0, required=False, allow_null=True)

        prompt = serializers.CharField(max_length=100_000, allow_blank=True, required=False, default="")
        category = serializers.CharField(max_length=64, allow_blank=True, required=False, default="")
        language = serializers.CharField(max_length=32, allow_blank=True, required=False, default="")
        slots = SlotInputSerializer(many=True, min_length=MIN_K, max_length=MAX_K)

    @extend_schema(request=InputSerializer, responses={201: AnonymousBattleOutput}, operation_id="battles_create")
    def post(self, request: Request) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        battle = battle_create(
            voter=voter_from_request(request),
            slots=[SlotInput(**slot) for slot in data.validated_data["slots"]],
            prompt_text=data.validated_data["prompt"],
            category=data.validated_data["category"],
            language=data.validated_data["language"],
        )
        battle = battle_get_for_voter(battle_id=battle.id, voter=battle.voter)
        return Response(battle_body(battle), status=201)


class BattleDetailApi(APIView):
    @extend_schema(responses=PolymorphicProxySerializer(
                       component_name="Battle", serializers=[AnonymousBattleOutput, RevealedBattleOutput],
                       resource_type_field_name=None),
                   operation_id="battles_retrieve",
                   description="Anonymous (position, label, response only) until voted; revealed afterwards.")
    def get(self, request: Request, battle_id: UUID) -> Response:
        battle = battle_get_for_voter(battle_id=battle_id, voter=voter_for_read(request))
        return Response(battle_body(battle))


class BattleVoteApi(APIView):
    @extend_schema_serializer(component_name="VoteInput")
    class InputSerializer(serializers.Serializer):
        outcome = serializers.ChoiceField(choices=Outcome.choices, required=False, help_text="K = 2 only.")
        best = serializers.IntegerField(required=False, help_text="Position of the best response (K > 2).")
        ranking = serializers.ListField(
            child=serializers.ListField(child=serializers.IntegerField()), required=False,
            help_text="Groups of positions, best first; positions in one group tie (K > 2).",
        )
        aspects = serializers.DictField(required=False, help_text="Aspect -> verdict of the same shape as the vote.")
        rationale = serializers.CharField(max_length=2000, required=False, allow_blank=True)

    @extend_schema(
        request=InputSerializer,
        responses={201: RevealedBattleOutput, 200: RevealedBattleOutput,
                   409: inline_serializer("Error", {"error": serializers.DictField()})},
        parameters=[OpenApiParameter("Idempotency-Key", str, OpenApiParameter.HEADER, required=False,
                                     description="Retries with the same key get the stored vote back (200).")],
        operation_id="battles_vote",
    )
    def post(self, request: Request, battle_id: UUID) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        key = request.headers.get("Idempotency-Key") or uuid.uuid4().hex
        if len(key) > 128:
            raise ValidationFailed("must be at most 128 characters", field="Idempotency-Key")
        voter = voter_for_read(request)  # only someone who was served a battle has one to vote on
        if voter is None:
            raise NotFound("no such battle for this voter", code="battle_not_found")
        vote, created = vote_record(
            battle_id=battle_id,
            voter=voter,
            choice=VoteChoice.from_input(data.validated_data, allowed_aspects=settings.ARENA_VOTE_ASPECTS),
            idempotency_key=key,
        )
        battle = battle_get_for_voter(battle_id=vote.battle_id, voter=voter)
        return Response(battle_body(battle), status=201 if created else 200)

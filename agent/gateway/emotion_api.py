"""`POST /v1/emotion`: emotion readings of up to 256 texts, one per text, in order.

The texts are read by the workers' recognizers through the same micro-batcher
as live turns (`EmotionClient`). Each reading has the 28 GoEmotions labels'
scores, the labels and Ekman-7 groups judged present, each group's score,
valence, arousal, intensity, the text's language and the model.
"""

# No `from __future__ import annotations`: FastAPI reads the routes' annotations at run
# time, and they name this module's local dependencies.

from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field

from agent.emotion.labels import LABELS, group_scores
from agent.errors import BusError, StageError
from agent.events import MAX_EMOTION_TEXTS, MAX_TEXT_CHARS
from agent.gateway.credentials import Caller, Credentials
from agent.gateway.emotion_client import EmotionClient, NoWorker
from agent.gateway.http_errors import ApiError, error_responses
from agent.gateway.protocol import groups_of
from agent.language import detect_language
from agent.values import EmotionReading

__all__ = ["EmotionRequestBody", "EmotionResponse", "EmotionService", "Reading", "emotion_router"]

Text = Annotated[str, Field(min_length=1, max_length=MAX_TEXT_CHARS)]


class EmotionRequestBody(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"texts": ["My parcel never came and nobody answers", "谢谢你们！"]}]
        },
    )
    texts: Annotated[list[Text], Field(min_length=1, max_length=MAX_EMOTION_TEXTS)]


class Reading(BaseModel):
    index: int
    language: str
    dominant: str
    labels: list[str]
    groups: list[str]
    scores: dict[str, float] = Field(description="every GoEmotions label (28) with its score")
    ekman: dict[str, float] = Field(description="each Ekman-7 group's score (noisy-or)")
    valence: float
    arousal: float
    intensity: float
    model: str


class EmotionResponse(BaseModel):
    object: str = "list"
    data: list[Reading]


@dataclass(frozen=True, slots=True, kw_only=True)
class EmotionService:
    credentials: Credentials
    reader: EmotionClient


def _reading(index: int, text: str, reading: EmotionReading) -> Reading:
    present = reading.present()
    return Reading(
        index=index,
        language=detect_language(text),
        dominant=reading.dominant,
        labels=list(present),
        groups=list(reading.groups) or groups_of(present),
        scores={label: round(reading.score(label), 4) for label in LABELS},
        ekman=group_scores(reading.scores),
        valence=round(reading.valence, 4),
        arousal=round(reading.arousal, 4),
        intensity=round(reading.intensity, 4),
        model=reading.model,
    )


def emotion_router(service: EmotionService) -> APIRouter:
    router = APIRouter(prefix="/v1", tags=["emotion"])
    user = service.credentials.require_user()

    @router.post(
        "/emotion",
        summary="Emotion readings of up to 256 texts",
        responses=error_responses(400, 401, 403, 413, 503, 504),
    )
    async def analyse(
        _: Annotated[Caller, Depends(user)], body: EmotionRequestBody
    ) -> EmotionResponse:
        """One reading per text, in the order given (`index`)."""
        try:
            readings = await service.reader.read(body.texts)
        except NoWorker as exc:
            raise ApiError(503, str(exc), code="unavailable") from exc
        except TimeoutError as exc:
            raise ApiError(504, "the workers did not answer in time", code="timeout") from exc
        except (StageError, BusError) as exc:
            raise ApiError(
                503, "the texts could not be read; try again", code="unavailable"
            ) from exc
        return EmotionResponse(
            data=[
                _reading(index, text, reading)
                for index, (text, reading) in enumerate(zip(body.texts, readings, strict=True))
            ]
        )

    return router

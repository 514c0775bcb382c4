"""The Django side of the model layer: where models live and which one is the default."""

from django.conf import settings

from inference.card import ModelCard
from inference.registry import ModelNotFound, ModelStore


def model_store() -> ModelStore:
    return ModelStore(settings.PAWA_MODELS_DIR)


def installed_models() -> list[ModelCard]:
    return model_store().list()


def default_model_name() -> str | None:
    names = [card.name for card in installed_models()]
    if settings.PAWA_DEFAULT_MODEL in names:
        return settings.PAWA_DEFAULT_MODEL
    return names[0] if names else None


__all__ = ["ModelNotFound", "default_model_name", "installed_models", "model_store"]

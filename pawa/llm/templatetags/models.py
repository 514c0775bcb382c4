from django import template
from django.utils.translation import get_language

register = template.Library()


@register.filter
def mib(size: int) -> str:
    size = size or 0
    return f"{size / 2**10:,.0f} KiB" if size < 2**20 else f"{size / 2**20:,.0f} MiB"


@register.filter
def millions(count: int) -> str:
    return f"{(count or 0) / 1e6:,.0f}M"


@register.filter
def card_summary(card) -> str:
    return card.summary((get_language() or "sw").split("-")[0])


@register.filter
def num(value, digits: int = 4) -> str:
    return f"{value:.{digits}f}"


@register.filter
def percent(value) -> str:
    return f"{value:+.1f} %"


@register.filter
def in_language(texts, language: str) -> str:
    """texts: {"en": ..., "sw": ...}; the one for `language`, else English."""
    if not isinstance(texts, dict):
        return ""
    return texts.get(language) or texts.get("en", "")

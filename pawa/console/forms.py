from datetime import date

from django import forms
from django.core.validators import MaxValueValidator, MinValueValidator
from django.utils.translation import gettext_lazy as _

from pawa.llm.store import installed_models
from pawa.plans.models import Plan


# The dates a filter accepts: a day is turned into an aware datetime (and `until` into the next
# day's start), which overflows at the ends of Python's calendar.
EARLIEST_DAY, LATEST_DAY = date(1900, 1, 1), date(9999, 12, 30)
# The largest quota an integer column holds on every supported database (PostgreSQL `integer`).
LARGEST_QUOTA = 2_147_483_647


def _day_field(label) -> forms.DateField:
    """An optional date filter between EARLIEST_DAY and LATEST_DAY."""
    return forms.DateField(label=label, required=False, widget=forms.DateInput(attrs={"type": "date"}),
                           validators=[MinValueValidator(EARLIEST_DAY), MaxValueValidator(LATEST_DAY)])


class UserFilterForm(forms.Form):
    """Search and filters of the users list (all optional)."""

    STATES = [("", _("Everyone")), ("active", _("Active")), ("inactive", _("Deactivated")),
              ("pending", _("Waiting for approval")), ("staff", _("Staff"))]
    ORDERS = [("-date_joined", _("Newest")), ("date_joined", _("Oldest")), ("-last_active", _("Last active")),
              ("-tokens_used", _("Most tokens"))]

    q = forms.CharField(label=_("Search"), required=False, max_length=100)
    state = forms.ChoiceField(label=_("Show"), choices=STATES, required=False)
    joined_after = _day_field(_("Joined after"))
    active_after = _day_field(_("Last active after"))
    min_tokens = forms.IntegerField(label=_("Tokens used (30 days) at least"), required=False, min_value=0)
    order = forms.ChoiceField(label=_("Sort"), choices=ORDERS, required=False)


class BulkUsersForm(forms.Form):
    ACTIONS = [("approve", _("Approve")), ("deactivate", _("Deactivate")), ("reactivate", _("Reactivate"))]

    action = forms.ChoiceField(label=_("Action"), choices=ACTIONS)
    users = forms.TypedMultipleChoiceField(coerce=int, choices=[], error_messages={
        "required": _("Choose at least one user.")})

    def __init__(self, *args, user_ids=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["users"].choices = [(pk, pk) for pk in user_ids]


def _limit(label):
    return forms.IntegerField(label=label, required=False, min_value=0, max_value=LARGEST_QUOTA,
                              help_text=_("Empty: the plan's value."))


class UserPlanForm(forms.Form):
    plan = forms.ModelChoiceField(label=_("Plan"), queryset=Plan.objects.all(), required=False,
                                  empty_label=_("Default plan"))
    requests_per_minute = _limit(_("Requests per minute"))
    tokens_per_minute = _limit(_("Tokens per minute"))
    tokens_per_day = _limit(_("Tokens per day"))
    tokens_per_month = _limit(_("Tokens per month"))
    max_concurrent = _limit(_("Concurrent answers"))


class PlanForm(forms.ModelForm):
    allowed_models = forms.MultipleChoiceField(
        label=_("Allowed models"), required=False, widget=forms.CheckboxSelectMultiple,
        help_text=_("None ticked: every installed model."))

    class Meta:
        model = Plan
        fields = ["name", "requests_per_minute", "tokens_per_minute", "tokens_per_day", "tokens_per_month",
                  "max_concurrent", "allowed_models", "is_default"]
        help_texts = {name: _("Empty: unlimited.") for name in
                      ("requests_per_minute", "tokens_per_minute", "tokens_per_day", "tokens_per_month")}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        names = [card.name for card in installed_models()]
        names += [name for name in (self.instance.allowed_models or []) if name not in names]
        self.fields["allowed_models"].choices = [(name, name) for name in names]
        self.fields["max_concurrent"].help_text = _("Empty: the server's limit.")


class KeyFilterForm(forms.Form):
    q = forms.CharField(label=_("Prefix or owner"), required=False, max_length=100)
    STATES = [("", _("All")), ("usable", _("Usable")), ("revoked", _("Revoked")), ("expired", _("Expired"))]
    state = forms.ChoiceField(label=_("Show"), choices=STATES, required=False)


class ConversationFilterForm(forms.Form):
    user = forms.CharField(label=_("User"), required=False, max_length=100)
    model = forms.CharField(label=_("Model"), required=False, max_length=64)
    since = _day_field(_("From"))
    until = _day_field(_("To"))

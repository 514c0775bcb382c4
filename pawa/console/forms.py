from django import forms
from django.utils.translation import gettext_lazy as _

from pawa.llm.store import installed_models
from pawa.plans.models import Plan


class UserFilterForm(forms.Form):
    """Search and filters of the users list (all optional)."""

    STATES = [("", _("Everyone")), ("active", _("Active")), ("inactive", _("Deactivated")),
              ("pending", _("Waiting for approval")), ("staff", _("Staff"))]
    ORDERS = [("-date_joined", _("Newest")), ("date_joined", _("Oldest")), ("-last_active", _("Last active")),
              ("-tokens_used", _("Most tokens"))]

    q = forms.CharField(label=_("Search"), required=False, max_length=100)
    state = forms.ChoiceField(label=_("Show"), choices=STATES, required=False)
    joined_after = forms.DateField(label=_("Joined after"), required=False,
                                   widget=forms.DateInput(attrs={"type": "date"}))
    active_after = forms.DateField(label=_("Last active after"), required=False,
                                   widget=forms.DateInput(attrs={"type": "date"}))
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
    return forms.IntegerField(label=label, required=False, min_value=0,
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
    since = forms.DateField(label=_("From"), required=False, widget=forms.DateInput(attrs={"type": "date"}))
    until = forms.DateField(label=_("To"), required=False, widget=forms.DateInput(attrs={"type": "date"}))

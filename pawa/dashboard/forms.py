from django import forms
from django.utils.translation import gettext_lazy as _

from pawa.llm.store import installed_models


class ApiKeyForm(forms.Form):
    name = forms.CharField(label=_("Name"), max_length=100)
    expires_in_days = forms.IntegerField(
        label=_("Expires after (days)"), required=False, min_value=1, max_value=3650,
        help_text=_("Leave empty for a key that does not expire."),
    )
    allowed_models = forms.MultipleChoiceField(
        label=_("Allowed models"), required=False, widget=forms.CheckboxSelectMultiple,
        help_text=_("Leave all unticked for a key that may use every model of your plan."),
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["allowed_models"].choices = [(card.name, card.name) for card in installed_models()]

from django import forms
from django.utils.translation import gettext_lazy as _

from inference.adapt import AdaptSettings

DEFAULTS = AdaptSettings()


class AdaptationForm(forms.Form):
    """The console's upload form; the service checks the files and the names."""

    base_model = forms.ChoiceField(label=_("Base model"))
    name = forms.CharField(label=_("New model name"), max_length=64,
                           help_text=_("Lowercase letters, digits, dots, dashes and underscores."))
    data = forms.FileField(label=_("Examples (JSONL or CSV)"))
    holdout = forms.FileField(label=_("Held-out questions (optional)"), required=False)
    holdout_fraction = forms.FloatField(label=_("Or hold out this share of the examples"), min_value=0.0,
                                        max_value=0.5, initial=0.0, required=False)
    steps = forms.IntegerField(label=_("Training steps"), min_value=1, max_value=2000, required=False,
                               help_text=_("Leave empty for the number measured for the base model."))
    rank = forms.IntegerField(label=_("LoRA rank"), min_value=1, max_value=128, initial=DEFAULTS.rank)
    learning_rate = forms.FloatField(label=_("Learning rate"), min_value=1e-6, max_value=1e-1,
                                     initial=DEFAULTS.learning_rate)
    retrieval = forms.BooleanField(
        label=_("Answer with the nearest examples"), required=False, initial=DEFAULTS.retrieval_k > 0,
        help_text=_("Before each answer the new model reads the examples closest to the question, as it did in "
                    "training. It then finds facts from rephrased questions far more often."))

    def __init__(self, *args, models: list[str], **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["base_model"].choices = [(name, name) for name in models]

from __future__ import annotations

from django import forms

from agents.models import Session


class SessionSettingsForm(forms.ModelForm):  # type: ignore[type-arg]
    class Meta:
        model = Session
        fields = ["title", "model", "instructions", "store"]
        widgets = {"instructions": forms.Textarea(attrs={"rows": 6})}
        help_texts = {
            "store": "Ask the upstream to keep responses (store=true). Off: nothing is kept "
            "beyond the socket's cache.",
        }

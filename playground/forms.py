from __future__ import annotations

import json
from typing import Any

from django import forms
from django.conf import settings
from django.core.validators import MaxLengthValidator

from agents.models import Session, Tool
from agents.scalar_text import valid_text
from agents.tools.builtins import BUILTINS
from agents.tools.executor import schema_problem
from agents.tools.schemas import depth_message
from playground import quotas
from playground.jsonsafe import INVALID_TEXT


def limit_length(field: forms.Field, what: str, limit: int) -> None:
    """Refuse more than ``limit`` characters in ``field`` (a quota), saying so."""
    message = quotas.too_long(what, limit, "%(show_value)s")  # filled in by the validator
    field.validators.append(MaxLengthValidator(limit, message=message))


def unicode_text(value: object) -> None:
    """A field validator: text must be Unicode scalar text. A form naming its charset (UTF-7)
    can post lone surrogates, which once saved made every page of the session answer 500."""
    if isinstance(value, str) and not valid_text(value):
        raise forms.ValidationError(f"This text {INVALID_TEXT}", code="invalid_text")


def refuse_lone_surrogates(form: forms.BaseForm) -> None:
    for field in form.fields.values():
        if isinstance(field, forms.CharField):
            field.validators.append(unicode_text)


class TextModelForm(forms.ModelForm):  # type: ignore[type-arg]
    """A model form whose every text field refuses text that is not Unicode scalar text."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("label_suffix", "")  # labels sit above their fields: no colon
        super().__init__(*args, **kwargs)
        refuse_lone_surrogates(self)


class TextForm(forms.Form):
    """A form whose every text field refuses text that is not Unicode scalar text."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("label_suffix", "")  # labels sit above their fields: no colon
        super().__init__(*args, **kwargs)
        refuse_lone_surrogates(self)


class SessionSettingsForm(TextModelForm):
    class Meta:
        model = Session
        fields = ["title", "model", "instructions", "store", "transport", "max_steps"]
        # The model: free text, with the upstream's models as suggestions (#models, a datalist).
        widgets = {
            # Shown at the top of the conversation (session.html#instructions), outside the
            # form's element: the attribute keeps it in the form.
            "instructions": forms.Textarea(
                attrs={
                    "rows": 4,
                    "form": "settings",
                    "aria-label": "Instructions",
                    "placeholder": "You are a careful research assistant. Use the tools when "
                    "a fact needs checking.",
                }
            ),
            "model": forms.TextInput(attrs={"list": "models", "autocomplete": "off"}),
        }
        help_texts = {
            "store": "Ask the upstream to keep responses (store=true). Off: nothing is kept "
            "beyond the socket's cache.",
            "transport": "HTTP resends the whole context each step (with store off): compare.",
            "max_steps": "The most model steps one message may take (1-200).",
        }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        limit_length(self.fields["instructions"], "Instructions", settings.QUOTA_INSTRUCTIONS_CHARS)


class ToolForm(TextModelForm):
    parameters = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 6, "spellcheck": "false"}),
        help_text="A JSON Schema object for the arguments. Empty for a built-in: its own.",
    )
    builtin = forms.ChoiceField(
        required=False, choices=[("", "—"), *((name, name) for name in BUILTINS)]
    )

    class Meta:
        model = Tool
        fields = [
            "name",
            "description",
            "mode",
            "builtin",
            "parameters",
            "strict",
            "mock_output",
            "requires_approval",
        ]
        widgets = {
            "description": forms.Textarea(attrs={"rows": 2}),
            "mock_output": forms.Textarea(attrs={"rows": 3}),
        }
        help_texts = {
            "mock_output": "Text or JSON; {{name}} is replaced by the call's argument `name`.",
            "requires_approval": "Ask a person before every call.",
        }

    def __init__(self, *args: Any, session: Session, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.session = session
        limit_length(
            self.fields["description"], "The description", settings.QUOTA_TOOL_DESCRIPTION_CHARS
        )
        limit_length(
            self.fields["mock_output"], "The mock output", settings.QUOTA_MOCK_OUTPUT_CHARS
        )
        limit_length(
            self.fields["parameters"], "The parameters", settings.QUOTA_TOOL_PARAMETERS_CHARS
        )
        if self.instance.pk and not self.is_bound:
            self.initial["parameters"] = json.dumps(self.instance.parameters, indent=2)

    def clean_parameters(self) -> dict[str, Any] | None:
        text = self.cleaned_data.get("parameters", "").strip()
        if not text:
            return None
        try:
            schema = json.loads(text)
        except ValueError as exc:
            raise forms.ValidationError(f"Not valid JSON: {exc}.") from None
        except RecursionError:  # thousands of levels: deeper than any limit
            raise forms.ValidationError(depth_message("The parameters are")) from None
        problem = schema_problem(schema)
        if problem:
            raise forms.ValidationError(problem)
        return dict(schema)

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        limit = settings.QUOTA_TOOLS_PER_SESSION
        if self.instance.pk is None and self.session.tools.count() >= limit:
            self.add_error(None, quotas.too_many_tools(limit))
        mode, builtin = data.get("mode"), data.get("builtin")
        if mode == Tool.Mode.BUILTIN:
            if not builtin:
                self.add_error("builtin", "Choose which built-in answers this tool.")
                return data
            if data.get("parameters") is None:
                data["parameters"] = BUILTINS[builtin].parameters
            if not data.get("description"):
                data["description"] = BUILTINS[builtin].description
        elif data.get("parameters") is None:
            data["parameters"] = {"type": "object", "properties": {}}
        name = data.get("name")
        clash = Tool.objects.filter(session=self.session, name=name).exclude(pk=self.instance.pk)
        if name and clash.exists():
            self.add_error("name", "This session already has a tool of that name.")
        return data

    def save(self, commit: bool = True) -> Tool:
        self.instance.session = self.session
        tool: Tool = super().save(commit=commit)
        return tool


class ShareLinkForm(TextForm):
    label = forms.CharField(
        required=False, max_length=100, help_text="To tell your links apart (only you see it)."
    )
    expiry = forms.ChoiceField(
        choices=[("1h", "1 hour"), ("1d", "1 day"), ("7d", "7 days"), ("never", "Never")],
        initial="1d",
    )
    include_instructions = forms.BooleanField(
        required=False, help_text="Show the session's instructions to whoever opens the link."
    )


class ImportForm(forms.Form):
    file = forms.FileField(help_text="A session exported from this playground (JSON).")

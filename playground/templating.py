"""Django's template backend, whose every rendering is text a UTF-8 encoder accepts.

A lone surrogate stored by an older version (or by any path yet unknown) once made the page
answer 500 and every socket snapshot close 1011, for good: the template rendered it, then
encoding the response failed. Here it becomes U+FFFD on the way out, on every page, partial
and socket fragment, at the cost of one regular-expression scan per rendering.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from django.template.backends.django import DjangoTemplates, Template
from django.utils.safestring import SafeString, mark_safe

from agents.scalar_text import SURROGATE, valid_text


class ScalarTextTemplate(Template):
    def render(
        self, context: dict[str, Any] | None = None, request: HttpRequest | None = None
    ) -> SafeString:
        html: str = super().render(context, request)
        return mark_safe(html if valid_text(html) else SURROGATE.sub("\ufffd", html))


class ScalarTextTemplates(DjangoTemplates):
    def from_string(self, template_code: str) -> ScalarTextTemplate:
        return ScalarTextTemplate(super().from_string(template_code).template, self)

    def get_template(self, template_name: str) -> ScalarTextTemplate:
        return ScalarTextTemplate(super().get_template(template_name).template, self)

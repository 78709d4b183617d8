"""The rules form beside the Scan button: its fields from the one table of rule fields.

The form posts every field with the marker `rules=1`; a post without the marker (an older page,
a script) scans with the default rules. Values are checked by the one rule validation
(optscan.core.rulefields), its refusals naming the fields as the form labels them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from optscan.core.match import SIDE_WORDS
from optscan.core.rulefields import (
    FORM_FIELDS,
    InvalidRule,
    RuleField,
    apply_values,
    form_text,
)
from optscan.core.rules import Rules

MARKER = "rules"


def field_name(field: RuleField) -> str:
    """Return how the form names a field: its label, after its side for a side's own."""
    return f"{SIDE_WORDS[field.side].capitalize()}: {field.label}" if field.side else field.label


def submitted(form: Mapping[str, str]) -> dict[str, str] | None:
    """Return the raw rule values a form posted, by Rules attribute (None: it posted none)."""
    if form.get(MARKER) != "1":
        return None
    # An unticked checkbox is absent from the post: absent means off.
    return {f.name: form.get(f.name, "") for f in FORM_FIELDS}


def rules_from_form(form: Mapping[str, str], defaults: Rules) -> Rules:
    """Return the rules a form asks for (the defaults when it sent none), or raise InvalidRule."""
    raw = submitted(form)
    return defaults if raw is None else apply_values(defaults, raw)


def refusal_words(exc: InvalidRule, consequence: str) -> str:
    """Return a refused form's problems, naming the fields as labelled, then what followed."""
    return f"{exc.text(field_name)}. {consequence}"


def hidden_inputs(raw: Mapping[str, str] | None) -> list[tuple[str, str]]:
    """Return (name, value) pairs that post the same rules again (e.g. "scan anyway")."""
    if raw is None:
        return []
    return [(MARKER, "1"), *((k, v) for k, v in raw.items() if v != "")]


def _default_words(field: RuleField, value: Any) -> str:
    if field.kind == "flag":
        return "default: on" if value else "default: off"
    if value is None:
        return "default: none"
    return f"default: {form_text(field, value)}"


def form_view(
    rules: Rules, base: Rules, raw: Mapping[str, str] | None, saved_at: str | None
) -> dict[str, Any]:
    """Return the form's sections and fields: values as posted, else the default `rules`.

    `base` holds the environment's rules, said beside each field as its default.
    """
    sections: dict[str, list[dict[str, Any]]] = {"": [], "put": [], "call": []}
    for field in FORM_FIELDS:
        value = getattr(rules, field.name)
        text = raw.get(field.name, "") if raw is not None else form_text(field, value)
        checked = (raw.get(field.name, "") not in ("", "0")) if raw is not None else bool(value)
        sections[field.side or ""].append(
            {
                "name": field.name,
                "id": f"rule-{field.name.replace('_', '-')}",
                "label": field.label,
                "doc": field.doc,
                "kind": field.kind,
                "value": text,
                "checked": checked,
                "default": _default_words(field, getattr(base, field.name)),
                "min": form_text(field, field.minimum) if field.minimum is not None else "",
                "max": form_text(field, field.maximum) if field.maximum is not None else "",
                "step": "1" if field.kind == "int" else "any",
            }
        )
    return {
        "marker": MARKER,
        "sections": [
            ("Expirations and liquidity", sections[""]),
            ("Puts", sections["put"]),
            ("Calls", sections["call"]),
        ],
        "saved_at": saved_at,
        "changed": raw is not None,
    }

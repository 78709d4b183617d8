"""The one table of rule fields, and the one validation of rule values.

Each `RuleField` row describes one field of `Rules`: its label on the page, its meaning with
its unit, its bounds, its environment variable, its command-line flag and whether the page's
rules form shows it. The settings (optscan.config), `flask scan`'s flags and the page's form
are all built from this table and check values with `parse_value` and `check_rules`, so a bad
value gets the same words everywhere, naming the field as each place calls it. Adding a rule
is one row here (and its field and test in `Rules` / `select`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Literal

from optscan.core.match import Side
from optscan.core.rules import Rules

# int: a whole number; number: a real number; optional: a number or empty (None: no bound);
# flag: true or false.
RuleKind = Literal["int", "number", "optional", "flag"]

TRUE_WORDS = frozenset({"1", "true", "on", "yes", "y"})
FALSE_WORDS = frozenset({"", "0", "false", "off", "no", "n"})


@dataclass(frozen=True)
class RuleField:
    """One field of `Rules`: how it is named, explained, bounded and entered."""

    name: str  # the Rules attribute
    label: str  # on the page's form
    doc: str  # what it means, with its unit
    kind: RuleKind
    minimum: float | None = None
    maximum: float | None = None
    env: str = ""  # OPTSCAN_<env>; empty: the name upper-cased
    flag: str | None = None  # `flask scan` option; None: none of its own
    off_flag: str | None = None  # for a flag: the option that turns it off
    form: bool = True  # on the page's rules form
    side: Side | None = None  # the form shows it under this side's heading; None: both

    @property
    def variable(self) -> str:
        """Return the environment variable's name."""
        return f"OPTSCAN_{self.env or self.name.upper()}"

    @property
    def cli_name(self) -> str:
        """Return how the command line names it: its flag, else its variable."""
        return self.flag or self.variable


RULE_FIELDS: tuple[RuleField, ...] = (
    RuleField("min_dte", "Min DTE", "shortest time to expiry, calendar days (1: no same-day"
              " expiries)", "int", 0, 730, flag="--min-dte"),
    RuleField("horizon_days", "Max DTE", "longest time to expiry, calendar days", "int", 0, 730,
              env="HORIZON_DAYS", flag="--max-dte"),
    RuleField("put_min_return_pct", "Min annualized %", "puts: minimum annualized return,"
              " percent", "number", 0, side="put"),
    RuleField("put_max_delta", "Max |delta|", "puts: bound on |delta| (delta ≥ −bound)",
              "number", 0, 1, side="put"),
    RuleField("call_min_return_pct", "Min annualized %", "calls: minimum annualized return,"
              " percent", "number", 0, side="call"),
    RuleField("call_max_delta", "Max |delta|", "calls: fixed delta ceiling; empty: the ceiling"
              " that grows with DTE", "optional", 0, 1, side="call"),
    RuleField("call_delta_base", "Delta ceiling base", "calls: delta ceiling up to 7 days to"
              " expiry", "number", 0, 1, form=False),
    RuleField("call_delta_step", "Delta ceiling step", "calls: added per further week",
              "number", 0, 1, form=False),
    RuleField("call_delta_cap", "Delta ceiling cap", "calls: highest delta ceiling", "number",
              0, 1, form=False),
    RuleField("min_open_interest", "Min open interest", "minimum open interest, contracts"
              " (0: no filter)", "int", 0, flag="--min-oi"),
    RuleField("min_volume", "Min volume", "minimum volume today, contracts (0: no filter)",
              "int", 0, flag="--min-volume"),
    RuleField("max_spread_pct", "Max spread %", "maximum bid–ask spread, percent of mid"
              " (empty: no filter)", "optional", 0, flag="--max-spread"),
    RuleField("exclude_earnings", "Skip earnings before expiry", "leave out contracts with an"
              " earnings report before expiry", "flag", flag="--no-earnings",
              off_flag="--with-earnings"),
    RuleField("exclude_ex_dividend", "Skip ex-dividend before expiry", "calls: leave out"
              " contracts with an ex-dividend date before expiry (early assignment)", "flag",
              flag="--no-ex-dividend", off_flag="--with-ex-dividend", side="call"),
    RuleField("calls_below_basis", "Strikes below cost basis", "calls: also strikes below the"
              " cost basis (assignment would lock in a loss)", "flag", flag="--below-basis",
              off_flag="--above-basis", side="call"),
    RuleField("calls_unowned", "Symbols not held", "calls: also the active watchlist's"
              " symbols not held, priced as if 100 shares were bought at spot", "flag",
              flag="--unowned", off_flag="--held-only", side="call"),
    RuleField("top_n", "Top N per symbol", "rows shown per symbol, best annualized return"
              " first (0: all); every row is kept", "int", 0, 1000, flag="--top"),
    RuleField("min_iv_rank", "Min IV rank %", "minimum IV rank, percent 0–100: a symbol ranked"
              " lower keeps no rows; one with fewer than 20 trading days of history is not"
              " filtered (empty: no filter)", "optional", 0, 100, flag="--min-iv-rank"),
)  # fmt: skip

FIELDS: dict[str, RuleField] = {f.name: f for f in RULE_FIELDS}
FORM_FIELDS: tuple[RuleField, ...] = tuple(f for f in RULE_FIELDS if f.form)
if set(FIELDS) != {f.name for f in fields(Rules)}:
    raise RuntimeError("every field of Rules needs one row in RULE_FIELDS, and only those")


@dataclass(frozen=True)
class Problem:
    """One refused value: a sentence whose {placeholders} name Rules fields."""

    template: str
    names: dict[str, str]  # placeholder -> Rules attribute

    def text(self, name_of: Callable[[RuleField], str]) -> str:
        """Return the sentence, each field named by `name_of`."""
        return self.template.format(**{k: name_of(FIELDS[v]) for k, v in self.names.items()})


class InvalidRule(ValueError):
    """Refuse rule values; `text(name_of)` says why, naming fields as the caller names them."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__(self.text(lambda f: f.name))

    @classmethod
    def one(cls, template: str, **names: str) -> InvalidRule:
        """Return the refusal of one problem."""
        return cls([Problem(template, names)])

    def text(self, name_of: Callable[[RuleField], str]) -> str:
        """Return every problem, joined by "; "."""
        return "; ".join(p.text(name_of) for p in self.problems)


def _shown(raw: Any) -> str:
    """Return a refused value as a message quotes it: short, its braces escaped for format()."""
    text = repr(raw)
    if len(text) > 40:
        text = text[:37] + "..."
    return text.replace("{", "{{").replace("}", "}}")


def _bounds(field: RuleField, value: float, raw: Any) -> None:
    low, high = field.minimum, field.maximum
    if low is not None and value < low:
        raise InvalidRule.one(f"{{f}} must be at least {low:g}, got {_shown(raw)}", f=field.name)
    if high is not None and value > high:
        raise InvalidRule.one(f"{{f}} must be at most {high:g}, got {_shown(raw)}", f=field.name)


def parse_value(field: RuleField, raw: Any) -> Any:
    """Return `raw` (text from a form or flag, or a JSON value) as the field's typed value."""
    if field.kind == "flag":
        if isinstance(raw, bool):
            return raw
        word = raw.strip().lower() if isinstance(raw, str) else None
        if word in TRUE_WORDS:
            return True
        if word in FALSE_WORDS:
            return False
        raise InvalidRule.one(f"{{f}} must be true or false, got {_shown(raw)}", f=field.name)
    text = raw.strip() if isinstance(raw, str) else raw
    if field.kind == "optional" and (text is None or text == ""):
        return None
    value: Any = text
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            value = None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidRule.one(f"{{f}} must be a number, got {_shown(raw)}", f=field.name)
    if field.kind == "int":
        if value != int(value):
            raise InvalidRule.one(f"{{f}} must be a whole number, got {_shown(raw)}", f=field.name)
        value = int(value)
    _bounds(field, value, raw)
    return value if field.kind == "int" else float(value)


def check_rules(rules: Rules) -> Rules:
    """Return `rules` if their fields agree with each other, else raise InvalidRule."""
    problems = []
    if rules.call_delta_cap < rules.call_delta_base:
        problems.append(
            Problem(
                f"{{cap}} ({rules.call_delta_cap:g}) must be >= {{base}}"
                f" ({rules.call_delta_base:g})",
                {"cap": "call_delta_cap", "base": "call_delta_base"},
            )
        )
    if rules.horizon_days < rules.min_dte:
        problems.append(
            Problem(
                f"{{high}} ({rules.horizon_days}) must be at least {{low}} ({rules.min_dte})",
                {"high": "horizon_days", "low": "min_dte"},
            )
        )
    if problems:
        raise InvalidRule(problems)
    return rules


def apply_values(base: Rules, raw: Mapping[str, Any]) -> Rules:
    """Return `base` with the given raw values (by Rules attribute) checked and applied.

    Every bad value is reported at once; nothing is applied unless all are good.
    """
    changes: dict[str, Any] = {}
    problems: list[Problem] = []
    for name, value in raw.items():
        if name not in FIELDS:
            raise KeyError(f"no rule field {name!r}")
        try:
            changes[name] = parse_value(FIELDS[name], value)
        except InvalidRule as exc:
            problems.extend(exc.problems)
    if problems:
        raise InvalidRule(problems)
    return check_rules(replace(base, **changes))


def rule_values(rules: Rules) -> dict[str, Any]:
    """Return the rules as JSON-ready values by attribute (what "save as default" keeps)."""
    return asdict(rules)


def form_text(field: RuleField, value: Any) -> str:
    """Return a value as the form's input shows it: empty for None, exact, no trailing .0."""
    if value is None or isinstance(value, bool):
        return ""
    # repr() is the shortest text that reads back as the same float: an unchanged form posts
    # the very defaults back, so a scan with them is not taken for a one-off.
    text = repr(float(value)) if isinstance(value, float) else str(value)
    return text.removesuffix(".0")

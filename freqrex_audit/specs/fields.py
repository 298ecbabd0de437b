"""The building blocks of the spec schema: checked value types (:class:`Rule`, :func:`Range`, :func:`Integer`,
names, labels, frame sizes), the strict :class:`Section` every mapping is, and the :class:`Check` every check
is. :mod:`freqrex_audit.specs.document` declares the spec's sections with them.
"""

from __future__ import annotations

from typing import Annotated, Any, Callable, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError, core_schema

from ..audio.io import MAX_SAMPLE_RATE, MIN_SAMPLE_RATE

NAME_MAX = 100
"""A spec name becomes file and folder names: at most this many characters."""


def problem(text: str) -> PydanticCustomError:
    """A validation error whose message is already in the user's words (``specs.py`` shows it as is)."""
    return PydanticCustomError("spec", "{problem}", {"problem": text})


class Rule:
    """A check run after the type check, with its own message, and what it adds to the JSON Schema."""

    def __init__(self, test: Callable[[Any], str | None], schema: dict | None = None):
        self.test, self.schema = test, schema or {}

    def __get_pydantic_core_schema__(self, source: Any, handler: Any) -> core_schema.CoreSchema:
        return core_schema.no_info_after_validator_function(self._check, handler(source))

    def __get_pydantic_json_schema__(self, schema: Any, handler: Any) -> dict:
        return {**handler(schema), **self.schema}

    def _check(self, value: Any) -> Any:
        failed = self.test(value)
        if failed:
            raise problem(failed)
        return value


class Choice:
    """One of ``values`` or a real true/false, checked before the type, so that a wrong value is told every choice
    (a ``Literal | bool`` union would answer from one branch, and lets 0 pass as false)."""

    def __init__(self, *values: str):
        self.values = values

    def __get_pydantic_core_schema__(self, source: Any, handler: Any) -> core_schema.CoreSchema:
        return core_schema.no_info_before_validator_function(self._check, handler(source))

    def _check(self, value: Any) -> Any:
        if type(value) is bool or (isinstance(value, str) and value in self.values):
            return value
        got = repr(value) if isinstance(value, str) else kind(value)
        raise problem(f"must be one of {', '.join(self.values)}, true or false, got {got}")


def _g(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def Range(low: float, high: float | None = None, open_low: bool = False) -> Rule:
    """``low ≤ v ≤ high`` (``low < v`` when ``open_low``; no upper bound without ``high``)."""
    def test(v: Any) -> str | None:
        if high is not None and not low <= v <= high:
            return f"must be in [{_g(low)}, {_g(high)}], got {_g(v)}"
        if v < low or (open_low and v == low):
            return f"must be {'>' if open_low else '≥'} {_g(low)}, got {_g(v)}"
        return None
    schema = {"exclusiveMinimum" if open_low else "minimum": low, **({"maximum": high} if high is not None else {})}
    return Rule(test, schema)


def Integer(minimum: int, maximum: int | None = None) -> Any:
    return Annotated[int, Range(minimum, maximum)]


SampleRate = Integer(MIN_SAMPLE_RATE, MAX_SAMPLE_RATE)
"""A rate in Hz within what audio files may have (a rate of 10⁹ would resample a 1-s clip to 4 GB)."""


def _repeated(labels: list[str]) -> str | None:
    repeated = sorted({label for label in labels if labels.count(label) > 1})
    return f"labels must be unique; repeated: {', '.join(map(repr, repeated))}" if repeated else None


NAME_RULE = (f"must be 1-{NAME_MAX} letters, digits, '.', '_' or '-' (not starting with '.'), so it is a valid "
             f"file name everywhere")


def name_ok(name: str) -> bool:
    """A name usable as a file name everywhere: 1-NAME_MAX of ``[A-Za-z0-9._-]``, not starting with '.'."""
    allowed = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-")
    return 0 < len(name) <= NAME_MAX and not name.startswith(".") and set(name) <= allowed


def kind(value: Any) -> str:
    """A value's type and a short excerpt: an error never echoes a whole file that was read as a string."""
    if value is None:
        return "nothing (null)"
    if isinstance(value, (dict, list)):
        return type(value).__name__
    shown = repr(value)
    return f"{type(value).__name__} {shown}" if len(shown) <= 60 else f"a {type(value).__name__} of {len(shown)} characters"


Text = Annotated[str, Field(min_length=1)]
Rate = Annotated[float, Range(0.0, 1.0)]
Positive = Annotated[float, Range(0.0, open_low=True)]
Margin = Annotated[float, Range(0.0, 0.99)]
SpecName = Annotated[str, Rule(lambda v: None if name_ok(v) else NAME_RULE + f"; got {kind(v)}",
                               {"pattern": r"^[A-Za-z0-9_-][A-Za-z0-9._-]*$", "maxLength": NAME_MAX})]
Target = Annotated[str, Rule(lambda v: None if ":" in v else f"must look like 'package.module:factory', got {kind(v)}",
                             {"pattern": ":"})]
Labels = Annotated[list[Text], Rule(_repeated, {"uniqueItems": True})]
FrameSize = Annotated[int, Range(4), Rule(lambda v: None if v % 4 == 0 else
                                          f"must be a multiple of 4 (hop = frame/4), got {v}", {"multipleOf": 4})]


def _extend_schema(schema: dict, cls: type) -> None:
    cls.extend_schema(schema)


class Section(BaseModel):
    """A mapping in the spec: unknown keys are errors, values strictly typed, an empty (null) section is {}."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False, frozen=True,
                              json_schema_extra=_extend_schema)

    @classmethod
    def extend_schema(cls, schema: dict) -> None:
        """What the JSON Schema must say beyond the fields: a section that loads when left empty may be null."""
        try:
            cls.model_validate(None)
        except ValueError:
            return
        schema["type"] = ["object", "null"]

    @model_validator(mode="before")
    @classmethod
    def _null_is_empty(cls, data: Any) -> Any:
        return {} if data is None else data


class Check(Section):
    """Settings every check takes. ``gates``: settings of which one must be given, or the check makes no item."""

    @classmethod
    def extend_schema(cls, schema: dict) -> None:
        super().extend_schema(schema)
        if cls.gates:
            schema["anyOf"] = [{"required": [gate]} for gate in cls.gates]
    gates: ClassVar[tuple[str, ...]] = ()
    on_unmeasured: Literal["fail", "skip"] = Field("fail", description="an item its clips could not measure fails "
                                                                       "or is skipped")
    min_clips: Integer(1) = Field(None, description="fewest measured clips a rate needs (default 2)")
    min_measured: Annotated[float, Range(0.01, 1.0)] = Field(
        None, description="share of the attempted clips an aggregate gate needs measured (default 1: all); "
                          "errored clips and attacks that did not cover their search count as not measured")
    confidence: Annotated[float, Range(0.5, 0.999)] = Field(
        None, description="compare a rate's Wilson bound at this confidence instead of its point")
    expect: Literal["pass", "fail"] = Field(
        None, description="fail: a known weakness. The check's failed items are XFAIL (expected; the run stays "
                          "green) and, strictly, if none of them fails its passed items fail (the weakness is "
                          "gone: remove expect). Not measured stays not measured. Default pass")

    @model_validator(mode="after")
    def _has_a_gate(self) -> "Check":
        if self.gates and not set(self.gates) & self.model_fields_set:
            raise problem(f"sets no gate, so it would make no test item: give one of {', '.join(self.gates)}"
                          + (" (the attack budget belongs under attack.budget)" if "budget" in self.model_fields_set
                             else ""))
        return self


def _setting(text: str) -> Any:
    return Field(None, description=text)

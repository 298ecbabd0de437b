"""JSON Schema of a model spec: pydantic's schema of :class:`freqrex_audit.specs.document.SpecDocument`, the
same models :func:`freqrex_audit.specs.loader.load_spec` validates with (so the two cannot drift). Editors use it
to autocomplete keys, show each key's description and default, and flag unknown keys and bad values."""

from __future__ import annotations

from typing import Any

from .document import SpecDocument

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


def spec_schema() -> dict:
    """The JSON Schema (draft 2020-12) of a model spec file, every section inline (no ``$ref``), so a reader
    or a simple tool finds a key's rules where the key is."""
    schema = SpecDocument.model_json_schema()
    defs = schema.pop("$defs", {})
    return {"$schema": SCHEMA_DIALECT, "title": schema.pop("title"), **_tidy(schema, defs)}


def _tidy(node: Any, defs: dict) -> Any:
    """Inline ``$ref``s; drop pydantic's generated per-key titles and ``default: null`` on keys that may not be
    null (an editor would insert it on completion, and the spec would no longer load)."""
    if isinstance(node, list):
        return [_tidy(item, defs) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        rest = {k: v for k, v in node.items() if k != "$ref"}
        node = {**defs[node["$ref"].rsplit("/", 1)[-1]], **rest}
    if len(node.get("anyOf", ())) == 1:  # a one-option anyOf (Checks drops the null branch) is that option
        node = {**{k: v for k, v in node.items() if k != "anyOf"}, **node["anyOf"][0]}
        return _tidy(node, defs)
    out = {k: _tidy(v, defs) for k, v in node.items() if k != "title"}
    nullable = any(option.get("type") == "null" for option in out.get("anyOf", ()))
    if "default" in out and out["default"] is None and not nullable:
        del out["default"]
    if "properties" in node:  # property names are keys, not schema keywords: keep one named "title"
        out["properties"] = {k: _tidy(v, defs) for k, v in node["properties"].items()}
    return out

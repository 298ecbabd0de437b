"""The shape of ``results.json`` and of a baseline file, declared once as JSON Schema.

:mod:`freqrex_audit.runs.read` validates every file it reads against these (``freqrex-audit schema
--results`` prints :data:`RESULTS_SCHEMA`); ``docs/results-schema.md`` explains the fields.
"""

from __future__ import annotations

from typing import Any

from ..audit.records import EXIT_CODES, OUTCOMES

__all__ = ["RESULTS_SCHEMA", "BASELINE_SCHEMA", "SCHEMA_VERSION", "MEANINGS_VERSION"]

SCHEMA_VERSION = 4
"""How results.json and its run folder are laid out. 4 (issue #33): the same fields and meanings as 3; results.npz
packs its arrays exactly (runs/packing.py: bin sets as bit masks, the ranking rebuilt from the responsibility and
checked by sha256) and the waveform sidecar's files are written on demand from it (runs/waveforms.py), each
checked against the sha256 results.json records, so a run folder holds about 1.1× the audio it audited rather than
5.6×. 3 (issue #28), whose meanings 4 keeps: errored clips stay in every rate's attempted count, a "no flip"
is measured only by a covered search, one definition per metric name (``*_rate`` over clips, ``*_share`` over
flips: the tables' ``success_rate`` is now the quiet one, ``int16_survival_rate`` counts clips), explanations
record ``converged`` / ``stopped``, gates carry ``over`` / ``attempted`` / ``errored`` / ``clips``. A run of
another version is refused by name rather than read with the wrong meanings (README, "What changed")."""

MEANINGS_VERSION = 3
"""The schema version whose metric meanings a run carries (schema 4 changed how a run folder is stored, not what
a number means): :func:`freqrex_audit.runs.baselines.config_hash` holds this, so baselines saved under
schema 3 still compare."""

_NUM = {"type": ["number", "null"]}
_INT = {"type": "integer", "minimum": 0, "maximum": 10 ** 12}
_INT_OR_NULL = {"type": ["integer", "null"], "minimum": 0, "maximum": 10 ** 12}
_STR = {"type": "string"}
_STR_OR_NULL = {"type": ["string", "null"]}
_OBJ = {"type": "object"}
_OBJ_OR_NULL = {"type": ["object", "null"]}
_OUTCOME = {"enum": list(OUTCOMES)}
_NUMS = {"$ref": "#/$defs/numbers"}  # a (nested) list of numbers: no booleans, strings or nulls
_ARRAY_REF = {"anyOf": [
    {"type": "object", "required": ["__npz__"], "properties": {"__npz__": _STR}},
    {"type": "object", "required": ["__ndarray__", "dtype", "shape"],
     "properties": {"__ndarray__": _NUMS, "dtype": _STR,
                    "shape": {"type": "array", "items": _INT, "maxItems": 8}}},
    _NUMS]}
_DEFS = {"numbers": {"type": "array", "items": {"anyOf": [{"type": "number"}, {"$ref": "#/$defs/numbers"}]}}}
_ARRAY_REF_OR_NULL = {"anyOf": [{"type": "null"}, _ARRAY_REF]}

_WAVE_FILE = {"type": "object", "properties": {  # one sidecar file (waveforms.py); its path is checked when read
    "path": _STR_OR_NULL, "sha256": _STR_OR_NULL, "sample_rate": _INT_OR_NULL, "bins": _INT_OR_NULL,
    "confidence": _NUM, "fragile": {"type": "array", "items": _STR}, "kind": _STR, "label": _STR_OR_NULL,
    "kept_ids": {"type": "array", "items": _STR}, "n_samples": _INT_OR_NULL}}
_WAVEFORMS = {"type": ["object", "null"], "properties": {
    "format": _STR, "folder": _STR, "files": _STR,
    "clips": {"type": "object", "additionalProperties": {"type": "object", "properties": {
        "signals": {"type": "object", "additionalProperties": _WAVE_FILE}}}},
    "classes": {"type": "object", "additionalProperties": _WAVE_FILE}}}
_GATE = {"type": "object", "required": ["metric", "value", "op", "threshold", "outcome"],
         "properties": {"spec": _STR, "check": _STR, "metric": _STR, "value": _NUM, "threshold": _NUM,
                        "op": _STR_OR_NULL, "passed": {"type": ["boolean", "null"]}, "outcome": _OUTCOME,
                        "item": _STR, "k": _INT_OR_NULL, "n": _INT_OR_NULL, "low": _NUM, "high": _NUM,
                        "baseline": _NUM, "delta": _NUM, "compared": _STR_OR_NULL,
                        "unmeasured": _STR_OR_NULL, "over": _STR_OR_NULL, "attempted": _INT_OR_NULL,
                        "errored": _INT_OR_NULL, "clips": _INT_OR_NULL}}
_VERDICT = {"type": "object", "required": ["check", "key", "outcome", "message"],
            "properties": {"check": _STR, "key": _STR, "outcome": _OUTCOME, "passed": {"type": ["boolean", "null"]},
                           "message": _STR, "measured": _STR_OR_NULL, "item": _STR}}
_EXPLANATION = {"type": "object",
                "required": ["target", "confidence", "labels", "sample_rate", "waveform", "responsibility",
                             "ranking", "sufficient", "necessary", "complete", "config"],
                "properties": {"target": _INT, "confidence": _NUM, "labels": {"type": "array", "items": _STR,
                                                                              "minItems": 1},
                               "sample_rate": {"type": "integer", "minimum": 1, "maximum": 10 ** 7},
                               "waveform": _ARRAY_REF, "responsibility": _ARRAY_REF, "ranking": _ARRAY_REF,
                               "sufficient": _ARRAY_REF_OR_NULL, "necessary": _ARRAY_REF_OR_NULL,
                               "complete": _ARRAY_REF_OR_NULL, "minimal": _ARRAY_REF_OR_NULL,
                               "inverse_label": _INT_OR_NULL, "iterations": _INT, "config": _OBJ,
                               "converged": {"type": ["boolean", "null"]}, "stopped": _STR_OR_NULL,
                               "cut_nodes": _INT,
                               "queries_by_phase": {"type": "object", "additionalProperties": _INT},
                               "emd_trace": {"type": "array", "items": _NUM},
                               **{f"{k}_confidence": _NUM for k in ("sufficient", "necessary", "complete",
                                                                     "inverse", "minimal")},
                               "fragile": {"type": "object", "additionalProperties": {"type": "array",
                                                                                      "items": _STR}}}}
_ATTACK = {"type": ["object", "null"],
           "properties": {"success": {"type": "boolean"}, "new_label": _INT_OR_NULL, "snr_db": _NUM,
                          "adversarial": _ARRAY_REF_OR_NULL, "n_frequencies": _INT_OR_NULL,
                          "coverage": _OBJ_OR_NULL}}
_MASK = {"anyOf": [{"type": "null"}, {"type": "object"}, {"type": "array"}]}  # boolean: inline or in the .npz
_METHOD = {"type": "object", "required": ["method", "available"],
           "properties": {"method": _STR, "available": {"type": "boolean"}, "reason": _STR_OR_NULL,
                          "representation": _STR, "target": _INT_OR_NULL, "target_label": _STR_OR_NULL,
                          "labels": {"type": "array", "items": _STR}, "mask": _MASK, "kept": _ARRAY_REF_OR_NULL,
                          "removed": _ARRAY_REF_OR_NULL, "probs": _ARRAY_REF_OR_NULL,
                          "faithfulness": {"type": "object", "additionalProperties": _NUM},
                          "kept_share": _NUM, "energy_share": _NUM, "queries": _INT, "gradient_calls": _INT,
                          "seed": _INT, "details": _OBJ}}
"""One explainer's result on one clip (engine.methods.MethodExplanation)."""
_SAMPLE = {"type": "object", "required": ["id", "status"],
           "properties": {"id": _STR, "path": _STR, "label": _STR_OR_NULL,
                          "status": {"enum": ["ok", "misclassified", "skipped", "error"]},
                          "reason": _STR_OR_NULL, "notes": {"type": "array", "items": _STR},
                          "predicted": _STR_OR_NULL, "confidence": _NUM,
                          "explanation": {"anyOf": [{"type": "null"}, _EXPLANATION]},
                          "fourier_attack": _ATTACK, "stft_attack": _ATTACK, "verification": _OBJ_OR_NULL,
                          "noise_floor": {"type": ["object", "null"],
                                          "properties": {"snr_db": _NUM, "draws": _INT,
                                                         "flips": {"type": "object", "additionalProperties": _INT}}},
                          "peer_attack": {"type": ["object", "null"],
                                          "properties": {"method": _STR, "success": {"type": "boolean"},
                                                         "snr_db": _NUM, "queries": _INT, "budget": _INT}},
                          "robustness": {"type": ["object", "null"],
                                         "properties": {"snr_db": _NUM, "method": _STR,
                                                        "defect": _STR_OR_NULL}},
                          "methods": {"type": ["object", "null"], "additionalProperties": _METHOD}}}
_NUMBERS = {"type": "array", "items": _NUM}
_TABLES = {"type": "object", "properties": {
    "sufficiency_by_class": {"type": "object", "additionalProperties": {"type": "object",
                                                                          "additionalProperties": _NUM}},
    "composition_by_class": {"type": "object", "additionalProperties": _NUM},
    "attacks": {"type": "object", "properties": {
        "counts": {"type": "object", "additionalProperties": {"type": "array", "items": _INT, "maxItems": 2}},
        "stft": {"type": "object", "properties": {
            "frame_sizes": {"type": "array", "items": {"type": "integer", "minimum": 1, "maximum": 10 ** 6}},
            "counts": {"type": "object", "additionalProperties": {"type": "array", "items": _INT,
                                                                   "maxItems": 2}}}}}},
    "explainers": {"type": "object", "additionalProperties": {"type": "object", "required": ["n"], "properties": {
        "n": _INT, "not_measured": _INT, "errored": _INT, "reason": _STR_OR_NULL, "kept_share": _NUM, "energy_share": _NUM,
        "queries": _NUM, "gradient_calls": _NUM, "seconds": _NUM,
        **{m: {"type": "object", "properties": {"value": _NUM, "k": _INT_OR_NULL, "n": _INT_OR_NULL,
                                                "low": _NUM, "high": _NUM}}
           for m in ("ai", "ad", "ag", "ff", "fid_in")}}}}}}
_FIGURES = {"type": "object", "properties": {
    "class_responsibility": {"type": "object", "additionalProperties": {
        "type": "object", "required": ["hz", "value"], "properties": {"hz": _NUMBERS, "value": _NUMBERS}}},
    "necessary_histogram": {"type": "object", "additionalProperties": {
        "type": "object", "required": ["hz_edges", "counts"], "properties": {"hz_edges": _NUMBERS,
                                                                             "counts": _NUMBERS}}},
    "inverse_counts": {"type": "object", "additionalProperties": _INT}}}
_SPEC = {"type": "object", "required": ["verdicts"],
         "properties": {"spec_file": _STR, "config_hash": _STR_OR_NULL, "seed": _INT_OR_NULL,
                        "model": {"type": "object", "properties": {
                            "name": _STR_OR_NULL, "fingerprint": _STR_OR_NULL, "sample_rate": _INT_OR_NULL,
                            "labels": {"type": "array", "items": _STR},
                            "warnings": {"type": "array", "items": _STR}}},
                        "error": _STR_OR_NULL,
                        "dataset": {"type": "object", "properties": {
                            "path": _STR, "n_samples": _INT, "n_analysed": _INT, "n_skipped": _INT,
                            "n_errors": _INT, "n_misclassified": _INT}},
                        "accuracy": _NUM, "samples": {"type": "array", "items": _SAMPLE},
                        "tables": _TABLES, "figures": _FIGURES, "checks": _OBJ,
                        "metrics": {"type": "object", "additionalProperties": _NUM},
                        "skipped_checks": {"type": "object", "additionalProperties": _STR},
                        "failed_checks": {"type": "object", "additionalProperties": _STR},
                        "verdicts": {"type": "array", "items": _VERDICT},
                        "rates": {"type": "object", "additionalProperties": {"type": "object", "properties": {
                            "k": _INT_OR_NULL, "n": _INT_OR_NULL, "value": _NUM, "low": _NUM, "high": _NUM,
                            "clips": _INT_OR_NULL, "attempted": _INT_OR_NULL, "errored": _INT_OR_NULL,
                            "over": _STR_OR_NULL}},
                                  "description": "every rate as k of n with its 95% Wilson interval; what each counts "
                                                 "and divides by: engine.summaries.METRICS (README, 'One meaning "
                                                 "per metric'); clips: the measured clips behind it, attempted and "
                                                 "errored: the clips the audit tried and saw error"},
                        "transferability": _OBJ_OR_NULL,
                        "composition": _OBJ_OR_NULL, "waveforms": _WAVEFORMS,
                        "explainers": {"type": ["object", "null"], "properties": {
                            "methods": {"type": "array", "items": _STR}}}}}
_RUN = {"type": "object",
        "properties": {"seed": _INT_OR_NULL, "device": _STR_OR_NULL, "cpu": _STR_OR_NULL, "commit": _STR_OR_NULL,
                       "node_cpus": {"type": "object", "additionalProperties": _STR_OR_NULL},
                       "verdict": {"enum": list(EXIT_CODES)},  # the run verdicts
                       "complete": {"type": "boolean"}, "interrupted": {"type": "boolean"},
                       "filtered": {"type": "boolean"}, "summary": _STR,
                       "trust_remote_code": {"type": "array", "items": _STR},
                       "unfinished": {"type": "array", "items": _STR},
                       "deadline": {"type": ["object", "null"], "properties": {
                           "seconds": {"type": "number", "minimum": 0}, "hit": {"type": "boolean"},
                           "message": _STR_OR_NULL}},
                       "items": {"type": "object", "properties": {
                           "total": _INT, "ran": _INT, "outcomes": {"type": "object", "additionalProperties": _INT}}}}}

_WORK = {"type": "object", "required": ["seconds", "queries"],
         "properties": {"seconds": _NUM, "queries": _INT, "cache": _OBJ}}
_SPEC_TIMING = {"type": "object", "required": ["seconds", "queries"], "properties": {
    "seconds": _NUM, "queries": _INT, "queries_by_phase": {"type": "object", "additionalProperties": _INT},
    "calls": _INT, "mean_clips_per_call": _NUM,
    "cache": _OBJ, "samples": _OBJ, "explainers": {"type": "array", "items": _STR},
    "batching": {"type": "object", "required": ["clips_at_once", "merged_calls", "probe_queries", "merges"],
                 "properties": {"clips_at_once": _INT, "merged_calls": _INT, "probe_queries": _INT, "merges": {"type": "boolean"},
                                "why_not": _STR_OR_NULL, "padding": {"enum": ["off", "pairs", "full"]}},
                 "description": "clips audited side by side in lockstep: model calls that merged several clips' "
                                "rows, queries spent testing that merging changes no bit, whether it did, and how "
                                "calls were padded (model.pad_calls, auto resolved)"},
    "peers": {"type": "object", "additionalProperties": _WORK,
              "description": "work done for transferability on peers computed inside this spec's run: never "
                             "part of this spec's own seconds / queries / cache"}}}
"""A spec's own work in this run (seconds, queries, cache), and apart from it what its peers cost."""

RESULTS_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "freqrex-audit results.json (docs/results-schema.md)", "$defs": _DEFS,
    "type": "object", "required": ["schema_version", "run", "gates", "specs"],
    "properties": {
        "schema_version": {"type": "integer"},
        "run": _RUN,
        "errors": {"type": "array", "items": {"type": "object", "required": ["spec_file", "message"],
                                              "properties": {"spec_file": _STR, "message": _STR}}},
        "timings": {"type": "object", "properties": {"started": _STR_OR_NULL, "seconds": _NUM,
                                                     "per_spec": {"type": "object", "additionalProperties": _SPEC_TIMING}}},
        "gates": {"type": "array", "items": _GATE},
        "specs": {"type": "object", "additionalProperties": _SPEC},
        "transferability": _OBJ_OR_NULL,
    },
}
"""The shape of ``results.json`` as the report, the index and compare read it."""

BASELINE_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "freqrex-audit baseline (--freqrex-save NAME)",
    "type": "object", "required": ["specs"],
    "properties": {
        "name": _STR_OR_NULL, "created": _STR_OR_NULL, "run": _OBJ,
        "specs": {"type": "object", "additionalProperties": {
            "type": "object", "required": ["metrics"],
            "properties": {"fingerprint": _STR_OR_NULL, "config_hash": _STR_OR_NULL, "seed": _INT_OR_NULL,
                           "n_samples": _INT_OR_NULL, "n_analysed": _INT_OR_NULL,
                           "metrics": {"type": "object", "additionalProperties": _NUM},
                           "rates": _OBJ}}},
    },
}
"""The shape of a baseline file as regression items and compare read it."""

"""What each gate measured, why it failed in this run (from the gate's own numbers), and what a team
usually does next. Only words are made here: every number is the results file's."""

from __future__ import annotations

from typing import Any

from .format import allowed_count, fmt_number, fmt_op, fmt_percent, fmt_rate, fmt_snr, fmt_threshold_pct, is_missing

__all__ = ["explain_gate", "WHAT", "NEXT"]

WHAT = {
    "model": "Whether the model loads, the dataset can be read, and every dataset label is a model label.",
    "accuracy": "The share of clips the model labels as the dataset does (only these are explained and attacked).",
    "sufficiency": "Whether each clip has a small set of frequencies that alone keeps the model's label "
                   "(the explanation's sufficient set), re-checked by playing that set to the model.",
    "necessity": "Whether removing each clip's necessary frequencies changes the model's label.",
    "completeness": "Whether the complete set of frequencies reproduces the model's confidence on each clip.",
    "fourier_attack": "How many clips a quiet Fourier attack (boosting or removing a few frequencies, "
                      "keeping the SNR above the attack's floor) flips to another class.",
    "stft_attack": "How many clips an attack on a single short time window (one STFT frame size) flips.",
    "composition": "Whether sufficient signals of one class, averaged together, are still that class.",
    "transferability": "Whether this model's sufficient signals keep their class on the peer models (α), "
                       "and whether it is a flat-earther (neither gives nor takes explanations).",
    "explainers": "Another explainer (L-MAC, latent space, or FreqReX's sufficient set) run on the clips: what it "
                  "kept, what that sounds like, and how faithful it is (AI, AD, AG, FF, Fid-In).",
    "faithfulness": "How faithful an explainer's kept part is: played alone it should keep the model's decision "
                    "(low AD, high Fid-In), and the clip without it should lose it (high FF).",
}

NEXT = {
    "model": "Fix the spec or the model path (the message names the file and the problem); map dataset "
             "labels with dataset.label_map.",
    "accuracy": "Check the label map, sample rate and clip length first; if they are right, fine-tune or "
                "retrain on data from this domain.",
    "sufficiency": "Listen to the clip and its sufficient signal: a model that needs most of the spectrum "
                   "often keys on noise or a recording artefact; add data that varies it.",
    "necessity": "The label survives without the frequencies the explanation called necessary: the model "
                 "has redundant cues. Usually fine; fail it only if the spec requires a single cue.",
    "completeness": "The model's confidence depends on frequencies the explanation left out; raise "
                    "freqrex.iterations or check the model is deterministic (dropout left on?).",
    "fourier_attack": "Augment training with the attacked clips (they are in results.npz) and with random "
                      "frequency boosts/notches; band-limit or smooth the front end; retrain and re-audit.",
    "stft_attack": "Augment with time-localised frequency perturbations (short notches and tones); "
                   "consider pooling over time so one window cannot decide the class.",
    "composition": "Sufficient signals of this class do not add up: the class is learnt as several "
                   "unrelated cues; collect more varied clips of it.",
    "transferability": "This model's cues differ from its peers': compare its Figure 2 with theirs; a "
                       "flat-earther usually keys on an artefact, so retrain with augmentation.",
    "explainers": "The method could not run on this model (the message says why): gradient methods need a "
                  "Python torch model, L-MAC needs explainers.train clips, the latent method a codec at the "
                  "model's rate.",
    "faithfulness": "Listen to the kept and removed signals in the report: an unfaithful explainer keeps parts "
                    "the model does not use. Retrain the L-MAC decoder on more clips (explainers.train), raise "
                    "explainers.latent.keep, or gate a method that is faithful on this model.",
}

RATE_WORDS = {
    "success_rate": "flip", "raw_success_rate": "flip (at any loudness)",
    "single_rate": "flip with one frequency", "five_rate": "flip with at most five frequencies",
    "int16_survival_rate": "keep their flip after saving as 16-bit audio",
    "rate_256": "flip with 256-sample frames", "rate_512": "flip with 512-sample frames",
    "rate_1024": "flip with 1024-sample frames",
    "ai": "gain confidence on the explainer's kept part", "fid_in": "keep their label on the explainer's kept part",
}


def _rule(gate: dict) -> str:
    return f"{fmt_op(gate.get('op'))} {fmt_number(gate.get('threshold'))}".strip()


def _why_rate(gate: dict, context: dict) -> str:
    metric, op, k, n = str(gate["metric"]), gate.get("op"), int(gate.get("k") or 0), int(gate["n"])
    threshold = float(gate["threshold"])
    limit = allowed_count(threshold, n, op)
    if gate.get("check") == "accuracy":
        head = f"{k} of {n} clips are labelled correctly ({fmt_percent(k / n, 0)})"
        need = f"the spec needs ≥ {fmt_threshold_pct(threshold)} ({limit} of {n})"
    else:
        words = RATE_WORDS.get(metric, metric.replace("_", " "))
        snr = context.get("min_snr_db")
        quiet = f" at ≥ {fmt_snr(snr)} SNR" if snr is not None and metric != "raw_success_rate" else ""
        head = f"{k} of {n} clips {words}{quiet if gate.get('check') != 'faithfulness' else ''}"
        need = (f"the spec allows ≤ {fmt_threshold_pct(threshold)} ({limit} of {n})" if op == "<=" else
                f"the spec needs ≥ {fmt_threshold_pct(threshold)} ({limit} of {n})")
    text = f"{head}; {need}."
    if gate.get("compared"):
        text += (f" The gate compares the {gate['compared']} ({fmt_percent(gate.get('value'), 0)}), so a small "
                 f"sample cannot pass by luck.")
    return text


def explain_gate(gate: dict, context: dict | None = None) -> dict[str, str]:
    """``{"what", "why", "next"}`` for one gate row (``why`` only says something for red outcomes)."""
    context = context or {}
    check = str(gate.get("check") or "")
    outcome = gate.get("outcome")
    what = WHAT.get(check, f"The {check} check.")
    why = ""
    if outcome == "not_measured":
        why = f"Not measured: {gate.get('unmeasured') or gate.get('shown') or 'the evidence this gate needs is missing'}."
    elif outcome == "error":
        why = f"Error: {gate.get('shown') or 'the check crashed'}."
    elif outcome == "failed":
        why = _why_failed(gate, context)
    return {"what": what, "why": why, "next": NEXT.get(check, "") if outcome in ("failed", "error", "not_measured")
            else ""}


def _why_failed(gate: dict, context: dict) -> str:
    metric = str(gate.get("metric") or "").replace(" (per clip)", "")
    if gate.get("n") and "k" in gate and not is_missing(gate.get("threshold")):
        return _why_rate(gate, context)
    failing: list[tuple[str, object]] = context.get("failing_clips") or []
    if failing:
        show = _share if "fraction" in metric else (lambda v: fmt_number(v))
        listed = failing if len(failing) <= 4 else failing[:3]  # never "and 1 more": name the fourth instead
        named = [f"{key} ({show(value)})" if not is_missing(value) and not metric.endswith(("_valid", "_found"))
                 else str(key) for key, value in listed]
        shown = ", ".join(named) + (f" and {len(failing) - len(listed)} more" if len(failing) > len(listed) else "")
        total = context.get("measured_clips")
        of = f" of {total} measured" if total else ""
        rule = "" if metric.endswith(("_valid", "_found")) else \
            f"; the spec needs {fmt_op(gate.get('op'))} {show(gate.get('threshold'))}"
        return f"{len(failing)}{of} clip(s) fail: {shown}{rule}."
    value = gate.get("value")
    if metric.startswith("alpha["):
        return (f"Only {fmt_percent(value, 0)} of its sufficient signals keep their class on "
                f"{metric[6:-1]}; the spec needs ≥ {fmt_threshold_pct(gate.get('threshold'))}.")
    if metric.startswith("ratio["):
        return f"Composition ratio of {metric[6:-1]} is {fmt_number(value)}; the spec needs {_rule(gate)}."
    if metric == "flat_earther":
        return "The transferability analysis marks this model a flat-earther; the spec does not allow one."
    if metric == "attack_frequencies":
        return f"The attack flipped the clip with {fmt_number(value)} frequencies; the spec needs {_rule(gate)}."
    if value is None:
        return str(gate.get("shown") or "failed")
    return f"{metric.replace('_', ' ')} is {fmt_number(value)}; the spec needs {_rule(gate)}."


def _share(value: object) -> str:
    """A fraction of the spectrum as a percentage with enough digits to tell it from the threshold."""
    return "n/a" if is_missing(value) else f"{100 * float(value):.2g} %"


def describe_value(gate: dict) -> Any:
    """The value column: a rate with its counts, else the number; never a bare "None" when there is none."""
    rate = fmt_rate(gate)
    if rate or gate.get("shown"):
        return rate or gate.get("shown")
    if gate.get("value") is not None:
        return gate["value"]
    return "not run" if gate.get("outcome") in ("deselected", "interrupted") else "not measured"

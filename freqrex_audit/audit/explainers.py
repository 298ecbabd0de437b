"""The other explainers in an audit: what each needs once per model, and one clip through each.

:class:`ExplainerKit` is built once per spec and model (:meth:`ExplainerKit.prepare` before the clips, so
executor workers find the decoder in the cache). Per method it holds what the engine needs, or why the method
cannot run on this model (``problems``: gradients asked of a TorchScript, ONNX or TFLite model; no training
clips for L-MAC; no codec at the model's rate):

- **lmac**: the model's white box (:mod:`~freqrex_audit.models.whitebox`) and a trained decoder — one the zoo
  ships for exactly this model (same fingerprint), else one from the result cache keyed by the model's
  fingerprint, the training clips' digest and the L-MAC config (so another model or other data never reuses
  it), else trained now on ``explainers.train`` with a progress line and stored in the cache;
- **latent**: the white box and the codec (a local folder, the zoo's, or ``hf://`` from the local hub cache);
- **freqrex**: nothing more than the FreqReX explanation the audit computes anyway.

:meth:`ExplainerKit.explain` runs each method on one clip (the audit caches its results per clip).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..engine.explanation import Explanation
from ..engine.latent import CodecLatents, explain_latent, load_codec
from ..engine.lmac import (DECODER_FACTS, MaskDecoder, TrainedDecoder, clips_digest, explain_lmac, load_decoder,
                           train_lmac)
from ..engine.methods import ExplainerUnavailable, MethodExplanation, freqrex_method, unavailable
from ..models.classifier import Classifier, QueryEngine, describe_exception
from ..runtime import deadline
from ..models.whitebox import NotWhiteBox, WhiteBox, white_box
from ..runtime.paths import ZOO_ROOT
from ..specs.loader import DatasetSpec, ExplainerSettings
from .cache import Cache, make_key
from .datasets import list_samples, read_clip

__all__ = ["ExplainerKit", "explain_with", "training_clips", "shipped_decoder", "train_decoder", "MAX_TRAIN_CLIPS",
           "explained_clip_ids"]

MAX_TRAIN_CLIPS = 512
"""At most this many training clips (balanced across classes) for an L-MAC decoder."""


def training_clips(path: Path, clf: Classifier) -> np.ndarray:
    """The clips L-MAC trains on, at the model's rate, all cut or zero-padded to one length: the model's input
    window, else the shortest clip's length (at most 10 s). Unreadable clips are left out."""
    kind = "folder" if path.is_dir() else "csv"
    samples = list_samples(DatasetSpec(path=path, type=kind), MAX_TRAIN_CLIPS)
    clips = []
    for sample in samples:
        if sample.problem:
            continue
        try:
            clips.append(read_clip(sample, clf.sample_rate, 10.0).samples)
        except Exception:  # noqa: BLE001 - an unreadable training clip is simply not used
            continue
    if not clips:
        raise ExplainerUnavailable(f"no readable training clips in {path}")
    length = clf.input_window or min(len(c) for c in clips)
    out = np.zeros((len(clips), length), np.float32)
    for i, c in enumerate(clips):
        out[i, : min(length, len(c))] = c[:length]
    return out


def explained_clip_ids(spec: Any) -> frozenset[str] | None:
    """The clips a spec's explainers run on (``explainers.clips``: the first N the dataset selects), or None
    for all of them; the pipeline runs the methods on these and the summaries count those that errored."""
    if spec.explainers is None or spec.explainers.clips is None:
        return None
    from .datasets import select

    return frozenset(s.id for s in select(list_samples(spec.dataset), spec.explainers.clips))


def shipped_decoder(clf: Classifier, config_json: dict, root: Path = ZOO_ROOT) -> TrainedDecoder | None:
    """A decoder the zoo ships for exactly this model (its fingerprint) and this L-MAC config, else None."""
    if not clf.fingerprint:
        return None
    for facts_file in sorted(root.glob(f"*/lmac/*/{DECODER_FACTS}")):
        facts = json.loads(facts_file.read_text())
        identity = facts.get("meta", {}).get("identity", {})
        if identity.get("fingerprint") == clf.fingerprint and facts.get("config") == config_json:
            return load_decoder(facts_file.parent)
    return None


def train_decoder(clf: Classifier, wb: WhiteBox, clips: np.ndarray, config: Any, train: str,
                  name: str | None = None) -> TrainedDecoder:
    """Train an L-MAC decoder with a progress line and record what it belongs to (``meta.identity``: the
    model's name and fingerprint, the training clips' name and digest): the audit, ``explain --method lmac`` and
    ``freqrex-audit train-lmac`` (which made the zoo's decoders) all train through here."""
    trained = train_lmac(wb, clips, config, _progress_line(name or clf.name))
    trained.meta["identity"] = {"model": name or clf.name, "fingerprint": clf.fingerprint, "train": train,
                                "train_digest": clips_digest(clips)}
    return trained


def _decoder_to_cache(trained: TrainedDecoder) -> tuple[dict, dict[str, np.ndarray]]:
    arrays = {f"w.{k}": v.detach().cpu().numpy() for k, v in trained.decoder.state_dict().items()}
    return {"config": trained.config.to_dict(), **trained.shape_facts(), "meta": trained.meta}, arrays


def _decoder_from_cache(data: dict, arrays: dict[str, np.ndarray], config: Any) -> TrainedDecoder:
    import torch

    state = {k[2:]: torch.as_tensor(v) for k, v in arrays.items() if k.startswith("w.")}
    decoder = MaskDecoder(data["n_tokens"], data["dim"], state["tokens_to_frames.weight"].shape[0],
                          config.frame_size // 2 + 1, config.width, config.bands)
    decoder.load_state_dict(state)
    return TrainedDecoder(decoder.eval(), config, data["clip_samples"], data["n_tokens"], data["dim"], data["meta"])


def _progress_line(name: str) -> Callable[[int, int], None]:
    """``L-MAC decoder for <model>: step 120/600, 40 s`` rewritten on a terminal (stderr), else every 25 %."""
    began = time.monotonic()
    tty = hasattr(sys.stderr, "isatty") and sys.stderr.isatty()

    def show(step: int, total: int) -> None:
        text = f"L-MAC decoder for {name}: step {step}/{total}, {time.monotonic() - began:.0f} s"
        if tty:
            sys.stderr.write("\r" + text + ("\n" if step == total else ""))
            sys.stderr.flush()
        elif step == total or step % max(1, total // 4) < 10 and step > 10:
            print(text, file=sys.stderr, flush=True)

    return show


class ExplainerKit:
    """What a spec's explainers need for one model (see the module docstring)."""

    def __init__(self, settings: ExplainerSettings, clf: Classifier, cache: Cache):
        self.settings, self.clf, self.cache = settings, clf, cache
        self.problems: dict[str, str] = {}
        self.wb: WhiteBox | None = None
        self.decoder: TrainedDecoder | None = None
        self.codec: CodecLatents | None = None
        self.prepared = False
        self.notes: list[str] = []  # where the decoder came from, for the report

    def prepare(self) -> None:
        """White box, decoder and codec for the methods that need them; a method that cannot run gets a problem."""
        if self.prepared:
            return
        self.prepared = True
        needs_gradients = [m for m in self.settings.methods if m in ("lmac", "latent")]
        if needs_gradients:
            try:
                self.wb = white_box(self.clf, self.settings.layer)
            except NotWhiteBox as exc:
                for method in needs_gradients:
                    self.problems[method] = f"not available: {exc}"
                return
        for method, make in (("lmac", self._decoder), ("latent", self._codec)):
            if method not in self.settings.methods:
                continue
            try:
                setattr(self, "decoder" if method == "lmac" else "codec", make())
            except ExplainerUnavailable as exc:
                self.problems[method] = f"not available: {exc}"
            except deadline.DeadlineReached:
                raise
            except Exception as exc:  # noqa: BLE001 - a broken decoder or codec fails its method, not the audit
                self.problems[method] = f"failed: {describe_exception(exc)}"

    def identity(self) -> dict:
        """What a clip's explainer results depend on beyond the clip and FreqReX's config (the cache key's part):
        the settings, the decoder's provenance and the codec's content."""
        self.prepare()
        return {"methods": list(self.settings.methods), "lmac": self.settings.lmac.to_dict(),
                "layer": self.settings.layer, "latent": self.settings.latent.to_dict(),
                "decoder": self.decoder.meta.get("identity") if self.decoder else None,
                "codec": self.codec.fingerprint if self.codec else None, "problems": self.problems}

    def _decoder(self) -> TrainedDecoder:
        config = self.settings.lmac
        shipped = shipped_decoder(self.clf, config.to_dict()) if self.settings.train is None else None
        if shipped is not None:
            self.notes.append(f"L-MAC decoder: shipped with the zoo ({shipped.meta['identity']['model']})")
            return shipped
        if self.settings.train is None:
            raise ExplainerUnavailable("L-MAC trains a decoder per model on clips the audit does not score: set "
                                       "explainers.train (the zoo ships decoders only for its own models)")
        clips = training_clips(self.settings.train, self.clf)
        digest = clips_digest(clips)
        key = make_key("lmac-decoder", self.clf.fingerprint, digest, config.to_dict(), self.settings.layer)
        if self.clf.fingerprint:
            hit = self.cache.load(key, lambda d, a: _decoder_from_cache(d, a, config))
            if hit is not None:
                self.notes.append(f"L-MAC decoder: from the result cache ({len(clips)} training clips)")
                return hit
        trained = train_decoder(self.clf, self.wb, clips, config, str(self.settings.train))
        if self.clf.fingerprint:
            data, arrays = _decoder_to_cache(trained)
            self.cache.put(key, data, arrays)
        kept = self.clf.fingerprint and self.cache.enabled and self.cache.lasting
        self.notes.append(f"L-MAC decoder: trained on {len(clips)} clips in {trained.meta['train_seconds']:.0f} s"
                          + (" (now in the result cache)" if kept else ""))
        return trained

    def _codec(self) -> CodecLatents:
        name = self.settings.latent.codec or ""
        if name.startswith("hf://"):
            from ..adapters.transformers import resolve_hub_id
            from ..models.classifier import ClassifierError

            try:
                folder = resolve_hub_id(name[len("hf://"):])
            except ClassifierError as exc:
                raise ExplainerUnavailable(str(exc)) from None
        else:
            folder = Path(name)
        codec = load_codec(folder, name=_shown(name))
        return codec.to(self.wb.device)

    def explain(self, engine: QueryEngine, x: np.ndarray, exp: Explanation | None) -> dict[str, MethodExplanation]:
        """Every method on one clip; a method that cannot run says why (no numbers)."""
        self.prepare()
        out: dict[str, MethodExplanation] = {}
        for method in self.settings.methods:
            if method in self.problems:
                out[method] = unavailable(method, self.problems[method], self.clf.labels, self.clf.sample_rate)
                continue
            try:
                if method == "freqrex":
                    out[method] = freqrex_method(engine, x, exp, _seconds(exp)) if exp is not None else \
                        unavailable(method, "the clip was not explained by FreqReX", self.clf.labels)
                elif method == "lmac":
                    out[method] = explain_lmac(engine, self.wb, self.decoder, x)
                else:
                    out[method] = explain_latent(engine, self.wb, self.codec, x, self.settings.latent)
            except ExplainerUnavailable as exc:
                out[method] = unavailable(method, f"not available: {exc}", self.clf.labels, self.clf.sample_rate)
        return out


def _seconds(exp: Explanation) -> float:
    """FreqReX's own wall time for the clip (its phases' seconds)."""
    return float(sum((getattr(exp, "seconds_by_phase", None) or {}).values()))


def _shown(name: str) -> str:
    """A codec's name for reports: zoo folders as ``zoo://…``, others as given."""
    try:
        return "zoo://" + Path(name).resolve().relative_to(ZOO_ROOT.resolve()).as_posix()
    except ValueError:
        return name


def explain_with(classifier: Classifier | QueryEngine, x: np.ndarray, method: str = "freqrex", *,
                 train: str | Path | None = None, lmac: Any = None, layer: str | None = None, latent: Any = None,
                 freqrex: Any = None, cache: Cache | str | Path | None = None) -> MethodExplanation:
    """One clip explained by ``method`` (``freqrex``, ``lmac`` or ``latent``) as a
    :class:`~freqrex_audit.engine.methods.MethodExplanation`: the kept part as a mask over the method's own
    representation and as a waveform, its faithfulness (AI, AD, AG, FF, Fid-In), queries, gradient calls and
    seconds. ``train``: clips for L-MAC's decoder (not needed for a zoo model, whose decoder ships with the
    zoo); ``lmac`` / ``latent`` / ``freqrex``: the engine's configs (``latent.codec`` defaults to the zoo codec);
    ``cache``: a result-cache folder for trained decoders. A method that cannot run on the model returns
    ``available=False`` with the reason.
    """
    from ..engine import FreqReXConfig
    from ..engine.explanation import as_engine, explain
    from ..engine.latent import LatentConfig
    from ..engine.lmac import LMACConfig
    from ..engine.methods import METHODS

    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, not {method!r}")
    engine = as_engine(classifier)
    latent = latent or LatentConfig()
    if latent.codec is None:
        import dataclasses

        latent = dataclasses.replace(latent, codec=str(ZOO_ROOT / "instruments" / "codec"))
    settings = ExplainerSettings(methods=(method,), train=Path(train) if train is not None else None,
                                 lmac=lmac or LMACConfig(), layer=layer, latent=latent)
    store = cache if isinstance(cache, Cache) else Cache(cache)
    kit = ExplainerKit(settings, engine.classifier, store)
    x = np.asarray(x, np.float32)
    began = time.perf_counter()
    exp = explain(engine, x, freqrex or FreqReXConfig()) if method == "freqrex" else None
    result = kit.explain(engine, x, exp)[method]
    if kit.notes:
        result.details.setdefault("notes", list(kit.notes))
    if method != "freqrex" and result.available:
        import dataclasses

        result = dataclasses.replace(result, seconds=time.perf_counter() - began)
    return result

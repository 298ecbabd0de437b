"""The model spec's schema, declared once as pydantic models.

:func:`freqrex_audit.specs.loader.load_spec` validates every spec with :class:`SpecDocument`, and
``freqrex-audit schema`` prints its JSON Schema, so editors autocomplete and check exactly what the loader
accepts. What a schema cannot say (paths that must exist inside the project, one budget given twice) is
checked by ``specs.py`` after this. Every section forbids unknown keys; a value must have the right type
as written (YAML ``1`` is no boolean, ``"3"`` no integer). Defaults shown are the engine's own.

Adding a key: add one annotated field to the section below (``new_key: Integer(1) = Field(X.new_key,
description=...)``); tests/test_schema.py fails while an engine config field has no spec field. The value
types and the Section and Check bases are in :mod:`freqrex_audit.specs.fields`.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal, Optional, Union

from pydantic import ConfigDict, Field, model_validator

from ..engine.attack_config import ATTACK_POOLS, AttackConfig
from ..engine.configs import (CONVERGENCE_RULES, MAX_PARTS, METHODS, FreqReXConfig, LatentConfig, LMACConfig,
                              STFTAttackConfig)
from ..models.padding import PAD_MODES
from .fields import (Check, Choice, FrameSize, Integer, Labels, Margin, Positive, Range, Rate, Rule, SampleRate,
                     Section, SpecName, Target, Text, _repeated, _setting, problem)

MODEL_TYPES = ("transformers", "torchscript", "onnx", "tflite", "callable")
OUTPUT_CHOICES = ("probabilities", "logits", "log_probabilities", "probs")
MAX_ATTACK_SCALE = 1000.0
"""A bin scaled by more than this (+60 dB) is no longer a perturbation; the float32 waveform would overflow."""

FX, AX, SX = FreqReXConfig(), AttackConfig(), STFTAttackConfig()  # the engine's defaults, shown in the schema
LX, TX = LMACConfig(), LatentConfig()
DEFAULT_CODEC = "zoo://instruments/codec"
"""The latent explainer's codec when a spec names none: the zoo's small EnCodec (instruments/codec)."""


# --- model, dataset ------------------------------------------------------------------------------------

class Window(Section):
    """A streaming model (onnx, tflite) called on fixed windows, carrying context between calls."""

    samples: Integer(1) = Field(description="samples per model call")
    context: Integer(0) = Field(0, description="samples of the previous window carried into each call")
    reduce: Literal["mean", "max"] = Field("mean", description="how the windows' outputs become one")


class ModelSection(Section):
    """The model under audit: exactly one of ``path``, ``target`` or ``id``."""

    type: Literal[MODEL_TYPES] = Field(None, description="the adapter (default: guessed from path)")
    path: Text = Field(None, description="a model folder or file (relative to the spec's folder), or zoo://task/name")
    target: Target = Field(None, description="package.module:factory returning a classifier")
    id: Text = Field(None, description="a Hugging Face hub id, resolved from the local cache only")
    window: Window = Field(None, description="streaming models: samples per call, carried context, reduction")
    precision: Literal["fp32", "bf16", "fp16"] = Field(
        "fp32", description="autocast precision, checked against fp32 on every clip")
    window_seconds: Positive = Field(None, description="the model's input window when its extractor does not say")
    device: Text = Field(None, description="torch device, e.g. cpu or cuda:0 (default: the run's)")
    labels: Labels = Field(None, description="class names in output order (unique)")
    sample_rate: SampleRate = Field(None, description="the rate the model expects, in Hz")
    outputs: Literal[OUTPUT_CHOICES] = Field(None, description="what the model returns")
    isolation: Literal["thread", "subprocess"] = Field(None, description="where model calls run")
    options: dict[str, Any] = Field(None, description="passed to the adapter as is")
    trust_remote_code: bool = Field(False, description="let transformers run the model folder's code")
    batch_size: Integer(1) = Field(64, description="waveforms per model call")
    pad_calls: Annotated[Literal[PAD_MODES] | bool, Choice(*PAD_MODES)] = Field(
        "auto", description="how model calls are padded (copies of a row, never counted) so that a row's scores do "
        "not depend on how many rows share its call: pairs sends a one-row call as two (lets clips side by side "
        "share one-row questions where a CPU's BLAS rounds a lone row otherwise); full pads every call to "
        "batch_size rows (one shape: a GPU's); off sends exactly the rows asked; auto (default) is pairs where the "
        "model's load-time self-check found them useful, else off. true/false mean full/off")
    clips_at_once: Integer(1) = Field(8, description="clips audited side by side, their questions merged into "
                                      "full calls where that changes no score's bit (1: one clip at a time)")
    timeout_s: Positive = Field(600.0, description="seconds one model call may take; then the model is hung")
    fingerprint: Text = Field(None, description="a version you change whenever the model's answers may change; "
                              "makes a model whose state cannot be hashed (a native handle) cacheable")

    @classmethod
    def extend_schema(cls, schema: dict) -> None:
        schema["oneOf"] = [{"required": [key]} for key in ("path", "target", "id")]

    @model_validator(mode="after")
    def _one_source(self) -> "ModelSection":
        given = [key for key in ("path", "target", "id") if key in self.model_fields_set]
        if not self.model_fields_set:
            raise problem("is required: give 'path' (a model folder or file, or zoo://task/name) "
                          "or 'target' (package.module:factory)")
        if not given:
            raise problem("give 'path' (a model folder or file, or zoo://task/name), 'target' or 'id'")
        if len(given) > 1:
            raise problem(f"give one of 'path', 'target' or 'id', not {' and '.join(given)}")
        return self


class DatasetSection(Section):
    """The labelled clips the audit runs on."""

    path: Text = Field(description="a folder with one sub-folder per class, or a CSV manifest (path,label), "
                                   "relative to the spec's folder, or zoo://task/name")
    type: Literal["folder", "csv"] = Field(None, description="default: folder for a directory, csv for a file")
    sample_rate: SampleRate = Field(None, description="read clips at this rate (default: the model's)")
    clip_seconds: Positive = Field(None, description="longer clips keep their first clip_seconds")
    windows: Literal["first", "all"] = Field("first", description="a clip longer than the model's input window: "
                                             "audit its first window (what the model classifies) or every window "
                                             "of it, each as its own sample")
    limit: Integer(1) = Field(None, description="at most this many clips, balanced across classes")
    only_correct: bool = Field(False, description="analyse only clips the model classifies correctly")
    label_map: Optional[dict[str, Text]] = Field(None, description="dataset label -> model label")
    missing_files: Literal["fail", "skip"] = Field("fail", description="a manifest row naming a file that does not "
                                                   "exist: fail model[load] naming the rows, or skip those clips")


# --- the engine's knobs ----------------------------------------------------------------------------------

class FreqrexSection(Section):
    """FreqReX explanation settings (Algorithm 1; the engine's FreqReXConfig)."""

    seed: Integer(0) = Field(FX.seed, description="base seed; iteration i uses (seed, i)")
    parts: Integer(2, MAX_PARTS) = Field(FX.parts, description="parts per partition (2^p - 2 mutants per split)")
    refine_parts: Optional[Integer(2, MAX_PARTS)] = Field(FX.refine_parts, description="parts per split below the first "
                                                                             "level (null: parts)")
    partition: Literal["contiguous", "interleaved"] = Field(FX.partition, description="random bands or "
                                                                                      "non-contiguous parts")
    iterations: Integer(1) = Field(FX.iterations, description="most responsibility iterations")
    min_iterations: Integer(1) = Field(FX.min_iterations, description="fewest iterations before stopping early")
    epsilon: Annotated[float, Range(0.0)] = Field(FX.epsilon, description="stop once successive maps' EMD ≤ this")
    convergence: Literal[CONVERGENCE_RULES] = Field(FX.convergence, description="running: successive running "
                                                    "maps; literal: the paper's R_i against R_g")
    max_depth: Integer(1) = Field(FX.max_depth, description="refinement levels per iteration")
    min_part_size: Integer(1) = Field(FX.min_part_size, description="smallest part split further, in bins")
    iteration_budget: Integer(1) = Field(FX.iteration_budget, description="queries per iteration")
    refine_top: Integer(1) = Field(FX.refine_top, description="passing mutants refined per level")
    smallest_first: bool = Field(FX.smallest_first, description="ask each node's unions size by size and stop "
                                 "at the first size that passes (false: every proper union, the earlier reading)")
    min_confidence: Rate = Field(FX.min_confidence, description="δ: a sufficient prefix keeps conf ≥ δ·conf(x)")
    chain_length: Integer(1) = Field(FX.chain_length, description="L: prefixes in a row that must be sufficient")
    grid_points: Integer(2) = Field(FX.grid_points, description="geometric grid of prefix sizes")
    refine_points: Integer(1) = Field(FX.refine_points, description="linear sub-grid size")
    decimals: Integer(0) = Field(FX.decimals, description="completeness matches confidence to this many decimals")
    search_chunk: Integer(1) = Field(FX.search_chunk, description="candidates asked together (fixed: results "
                                                                  "never depend on batch size)")
    prune: bool = Field(FX.prune, description="prune the sufficient prefix to a minimal set")
    prune_budget: Integer(1) = Field(FX.prune_budget, description="most queries pruning may spend")
    fragility_check: bool = Field(FX.fragility_check, description="re-query each subset with noise and int16")
    speculate: Integer(0) = Field(FX.speculate, description="rounds of the next responsibility iteration asked "
                                  "in the current one's calls: fewer, fuller calls for a few more queries (0: none)")
    batch_size: Optional[Integer(1)] = Field(FX.batch_size, description="queries per model call (null: the model's)")


class AttackSection(Section):
    """The Fourier attack's settings (the engine's AttackConfig)."""

    budget: Integer(1) = Field(None, description="older name of max_frequencies")
    max_frequencies: Integer(1) = Field(AX.max_frequencies, description="most bins one candidate may mutate")
    query_budget: Integer(3) = Field(AX.query_budget, description="most model queries per clip")
    max_scale: Annotated[float, Range(1.0)] = Field(AX.max_scale, description="largest amplitude boost tried")
    pool: Literal[ATTACK_POOLS] = Field(AX.pool, description="bins the prefix source walks")
    scales: list[Annotated[float, Range(0.0, MAX_ATTACK_SCALE)]] = Field(
        None, min_length=1, description="amplitude multipliers of the ladder (with phases: replaces the default)")
    phases: list[float] = Field(None, min_length=1, description="phase rotations of the ladder, in degrees")
    min_margin: Margin = Field(AX.min_margin, description="a flip needs the new top class this far above the label")
    min_snr_db: float = Field(AX.min_snr_db, description="flips at least this quiet count as quiet")
    require_int16: bool = Field(AX.require_int16, description="a flip must survive a 16-bit WAV round trip")
    screen_bins: Integer(0) = Field(AX.screen_bins, description="top-ranked bins tried alone first")
    degenerate_bins: Integer(0) = Field(AX.degenerate_bins, description="a sufficient set this small widens the pool")
    degenerate_share: Rate = Field(AX.degenerate_share, description="... or one under this share of all bins")
    continuous: bool = Field(AX.continuous, description="walk flips to the boundary and search continuous gains "
                             "(#29); false: the ladder alone, Alg 2's mutations")
    ladder_share: Annotated[float, Range(0.01, 1.0)] = Field(AX.ladder_share, description="share of the budget the ladder's sources get first")
    sparse_bins: Integer(0) = Field(AX.sparse_bins, description="bins of the boundary search (capped by max_frequencies)")
    noise_draws: Integer(0) = Field(AX.noise_draws, description="white and pink noise draws at min_snr_db before "
                                    "the attack (the noise floor); 0: none")
    seed: Integer(0) = Field(AX.seed, description="seed of the boundary search's random probes")
    batch_size: Integer(1) = Field(None, description="queries per model call (default: the model's)")


class STFTAttackSection(Section):
    """The STFT attack's settings (Algorithm 3; the engine's STFTAttackConfig)."""

    frame_sizes: list[FrameSize] = Field(list(SX.frame_sizes), min_length=1, description="frame sizes tried in order")
    frame_budget: Optional[Integer(1)] = Field(SX.frame_budget, description="most frames changed per size")
    neighbours: Integer(0) = Field(SX.neighbours, description="STFT bins on each side of the nearest also mutated")
    min_margin: Margin = Field(SX.min_margin, description="as in attack.min_margin")
    min_snr_db: float = Field(SX.min_snr_db, description="as in attack.min_snr_db")
    search_chunk: Integer(1) = Field(SX.search_chunk, description="candidates asked together")
    batch_size: Optional[Integer(1)] = Field(SX.batch_size, description="queries per model call (null: the model's)")


# --- other explainers (L-MAC, latent space) ---------------------------------------------------------------

class LMACSection(Section):
    """L-MAC's decoder and its training (the engine's LMACConfig); ``layer`` for plain torch models."""

    steps: Integer(1) = Field(LX.steps, description="training steps")
    batch: Integer(1) = Field(LX.batch, description="clips per training step")
    lr: Positive = Field(LX.lr, description="Adam learning rate")
    l1: Annotated[float, Range(0.0)] = Field(LX.l1, description="λ: weight of the mask's mean (smaller masks)")
    out_weight: Annotated[float, Range(0.0)] = Field(LX.out_weight, description="β: weight of the masked-out term")
    guidance_steps: Integer(0) = Field(LX.guidance_steps, description="steps of the guidance fine-tuning (0: none)")
    guidance: Annotated[float, Range(0.0)] = Field(LX.guidance, description="γ: weight of the guidance term")
    threshold: Annotated[float, Range(0.0, 1.0)] = Field(LX.threshold, description="the binary mask keeps cells "
                                                                                    "above this")
    frame_size: FrameSize = Field(LX.frame_size, description="STFT frame of the mask (hop frame/4)")
    width: Integer(1) = Field(LX.width, description="decoder channels")
    bands: Integer(1) = Field(LX.bands, description="mask rows before interpolation to the STFT's bins")
    seed: Integer(0) = Field(LX.seed, description="decoder initialisation and training batches")
    layer: Text = Field(None, description="torch module models: the layer (dotted name) whose output the decoder "
                                          "reads (default: the module's second-to-last child)")


class LatentSection(Section):
    """Latent-space explanations through a codec (the engine's LatentConfig)."""

    codec: Text = Field(DEFAULT_CODEC, description="an EnCodec save_pretrained folder (relative to the spec), "
                                                   "zoo://instruments/codec or hf://org/name from the local cache")
    keep: Annotated[float, Range(0.0, 1.0, open_low=True)] = Field(TX.keep, description="share of latent features kept")
    ig_steps: Integer(2) = Field(TX.ig_steps, description="Integrated Gradients steps (gradient calls per clip)")
    ig_batch: Integer(1) = Field(TX.ig_batch, description="IG steps per backward batch")
    seed: Integer(0) = Field(TX.seed, description="the noise that replaces the other features")


class ExplainersSection(Section):
    """Other explainers run on the audited clips and judged by the same faithfulness numbers as FreqReX.

    ``explainers: [freqrex, lmac, latent]`` is short for ``explainers: {methods: [...]}``."""

    methods: Annotated[list[Literal[METHODS]], Rule(_repeated, {"uniqueItems": True})] = Field(
        min_length=1, description="methods to run: freqrex (its sufficient set), lmac, latent")
    train: Text = Field(None, description="clips L-MAC's decoder trains on: a folder of class folders or a CSV, "
                                          "relative to the spec, or zoo://task/name; never the audited clips "
                                          "(needed unless the zoo ships a decoder for this model)")
    clips: Integer(1) = Field(None, description="run the methods on at most this many of the audited clips")
    lmac: LMACSection = Field(default_factory=LMACSection, description="L-MAC settings")
    latent: LatentSection = Field(default_factory=LatentSection, description="latent-space settings")

    @model_validator(mode="before")
    @classmethod
    def _list_is_methods(cls, data: Any) -> Any:
        return {"methods": data} if isinstance(data, list) else data


# --- checks ---------------------------------------------------------------------------------------------

class AccuracyCheck(Check):
    """Share of clips the model classifies correctly."""

    gates: ClassVar = ("min",)
    min: Rate = _setting("accuracy[aggregate]: lowest share of clips classified correctly")


class SufficiencyCheck(Check):
    """Size of the sufficient frequency sets FreqReX finds (always an item)."""

    max_fraction: Rate = _setting("per clip: the sufficient set is at most this share of all bins")
    max_mean_fraction: Rate = _setting("[aggregate]: the mean sufficient set is at most this share of all bins")


class NecessityCheck(Check):
    """Whether clips have a necessary frequency set."""

    required: bool = Field(None, description="a clip without a necessary set fails (default: it is skipped)")


class CompletenessCheck(Check):
    """Whether clips have a complete frequency set."""

    required: bool = Field(None, description="a clip without a complete set fails (default: it is skipped)")


class FourierAttackCheck(Check):
    """How often a few mutated frequencies flip the label (give at least one gate)."""

    gates: ClassVar = ("min_frequencies", "max_success_rate", "max_raw_success_rate", "max_single_rate",
                       "max_five_rate", "max_int16_survival_rate")
    min_frequencies: Integer(1) = Field(None, description="per clip: no quiet attack with fewer frequencies than this")
    max_success_rate: Rate = _setting("[aggregate]: most clips flipped quietly (SNR ≥ attack.min_snr_db)")
    max_raw_success_rate: Rate = _setting("[aggregate]: most clips flipped at any loudness")
    max_single_rate: Rate = _setting("[aggregate]: most clips flipped quietly by one frequency")
    max_five_rate: Rate = _setting("[aggregate]: most clips flipped quietly by at most five frequencies")
    max_int16_survival_rate: Rate = _setting("[aggregate]: most flips surviving a 16-bit round trip")
    budget: Integer(1) = Field(None, description="older place of attack.max_frequencies (give it once)")


class PeerAttackCheck(Check):
    """The field's attack as a peer (#29): ART's implementation through the same engine, given the query
    count FreqReX used on each clip (explanation + attack). Needs the [art] extra."""

    gates: ClassVar = ("max_success_rate",)
    method: Literal["hopskipjump", "simba", "square"] = Field(
        "hopskipjump", description="ART's attack; simba and square are refused (no honest 1-D adapter, see README)")
    max_success_rate: Rate = _setting("[aggregate]: most clips the peer flips quietly (SNR ≥ min_snr_db)")
    min_snr_db: float = Field(None, description="a peer flip this quiet counts (default: attack.min_snr_db)")

    @model_validator(mode="after")
    def _offered(self) -> "PeerAttackCheck":
        from ..engine.peers import check_method

        check_method(self.method)
        return self


class STFTAttackCheck(Check):
    """How often the STFT attack flips the label (give at least one gate)."""

    gates: ClassVar = ("max_success_rate", "max_rate_256", "max_rate_512", "max_rate_1024",
                       "max_int16_survival_rate")
    max_success_rate: Rate = _setting("[aggregate]: most clips flipped")
    max_rate_256: Rate = _setting("[aggregate]: most clips flipped with 256-sample frames")
    max_rate_512: Rate = _setting("[aggregate]: most clips flipped with 512-sample frames")
    max_rate_1024: Rate = _setting("[aggregate]: most clips flipped with 1024-sample frames")
    max_int16_survival_rate: Rate = _setting("[aggregate]: most flips surviving a 16-bit round trip")


class CompositionCheck(Check):
    """Whether explanations of mixed clips compose from the parts' explanations (give min_ratio)."""

    gates: ClassVar = ("min_ratio",)
    min_ratio: Rate = _setting("[aggregate]: every class's composition ratio is at least this")


class TransferabilityCheck(Check):
    """Whether attacks found on this model transfer to the peers' models."""

    min_alpha: Rate = _setting("[aggregate]: α(this model → peer) is at least this for each peer")
    flat_earther: bool = Field(None, description="true: this model may be a flat-earther (default false: being one "
                                                 "fails; with fewer than 3 models the rule cannot decide: not measured)")

    @classmethod
    def extend_schema(cls, schema: dict) -> None:
        super().extend_schema(schema)  # flat_earther: true waives the default gate, so min_alpha must be given
        schema["if"] = {"required": ["flat_earther"], "properties": {"flat_earther": {"const": True}}}
        schema["then"] = {"required": ["min_alpha"]}

    @model_validator(mode="after")
    def _decides_something(self) -> "TransferabilityCheck":
        if self.flat_earther and self.min_alpha is None:  # the flat-earther rule is the default gate
            raise problem("sets no gate, so it would make no test item: give min_alpha, or drop "
                          "flat_earther: true (the flat-earther rule is then the gate)")
        return self


class FaithfulnessCheck(Check):
    """How faithful an explainer's kept part is to the model (AI, AD, AG, FF, Fid-In over the clips)."""

    gates: ClassVar = ("min_ff", "min_ai", "max_ad", "min_ag", "min_fid_in")
    method: Union[Literal[METHODS], Annotated[list[Literal[METHODS]], Field(min_length=1)]] = Field(
        description="the method gated (or a list: one item per method, the same gates)")
    min_ff: Annotated[float, Range(-1.0, 1.0)] = _setting("[method]: lowest mean faithfulness on spectra "
                                                          "(p − p_removed)")
    min_ai: Rate = _setting("[method]: lowest share of clips whose kept part raises the confidence (a rate)")
    max_ad: Rate = _setting("[method]: highest mean relative drop of confidence on the kept part")
    min_ag: Rate = _setting("[method]: lowest mean relative gain of confidence on the kept part")
    min_fid_in: Rate = _setting("[method]: lowest share of clips whose kept part keeps the label (a rate)")


class Checks(Section):
    """The checks to run; each makes test items. A check given as null takes its defaults."""

    accuracy: Optional[AccuracyCheck] = None
    sufficiency: Optional[SufficiencyCheck] = None
    necessity: Optional[NecessityCheck] = None
    completeness: Optional[CompletenessCheck] = None
    fourier_attack: Optional[FourierAttackCheck] = None
    peer_attack: Optional[PeerAttackCheck] = None
    stft_attack: Optional[STFTAttackCheck] = None
    composition: Optional[CompositionCheck] = None
    transferability: Optional[TransferabilityCheck] = None
    faithfulness: Optional[FaithfulnessCheck] = None

    @classmethod
    def extend_schema(cls, schema: dict) -> None:
        """A check given as null is read as {}: its own schema says whether that loads (a check with gates
        does not), so the Optional's null branch goes."""
        super().extend_schema(schema)
        for prop in schema["properties"].values():
            prop["anyOf"] = [option for option in prop.get("anyOf", ()) if option.get("type") != "null"]

    @model_validator(mode="before")
    @classmethod
    def _null_check_is_empty(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return {k: ({} if v is None and k in cls.model_fields else v) for k, v in data.items()}
        return {} if data is None else data


class SpecDocument(Section):
    """A freqrex_audit model spec: which model, which clips, which checks gate the release."""

    model_config = ConfigDict(title="freqrex_audit model spec")

    name: SpecName = Field(None, description="names results and reports (default: the file name)")
    model: ModelSection = Field(description="the model under audit")
    dataset: DatasetSection = Field(description="the labelled clips")
    freqrex: FreqrexSection = Field(default_factory=FreqrexSection, description="FreqReX explanation settings")
    attack: AttackSection = Field(default_factory=AttackSection, description="Fourier attack settings")
    stft_attack: STFTAttackSection = Field(default_factory=STFTAttackSection, description="STFT attack settings")
    explainers: ExplainersSection = Field(None, description="other explainers (L-MAC, latent space) run and "
                                                             "judged beside FreqReX")
    checks: Checks = Field(default_factory=Checks, description="the gates")
    peers: Optional[list[Text]] = Field(None, description="other specs (name or file stem, same folder) for "
                                                          "transferability")


CHECK_MODELS: dict[str, type[Check]] = {
    name: next(t for t in field.annotation.__args__ if isinstance(t, type) and issubclass(t, Check))
    for name, field in Checks.model_fields.items()}

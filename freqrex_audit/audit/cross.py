"""The checks that need more than one clip: composition (sufficient signals of a class summed, Table 2 and the
transferability paper's §5.1–5.2) and transferability toward the spec's peer models (α/β). The only place the
audit touches :mod:`~freqrex_audit.engine.composition` and :mod:`~freqrex_audit.engine.transfer`."""

from __future__ import annotations

import time
from collections.abc import Callable

from ..engine.codec import from_jsonable, to_jsonable
from ..engine.composition import compose_explanations, composite_spectra, entropy_tests
from ..engine.transfer import TransferResult, TransferSignal, transfer_signals, transferability as transfer_matrix
from ..specs.loader import Spec, find_peer, load_spec
from .cache import Cache, hash_array
from .pipeline import ClipRunner, load_model
from .records import SpecResult, analysed

__all__ = ["composition", "transferability"]


def composition(result: SpecResult, runner: ClipRunner) -> None:
    """Composition ratio per class (Table 2), from the sufficient signals of the analysed clips, and the
    transferability paper's §5.1–5.2 figures; each class keeps its composite waveform and the clips in it
    (results.json's ``composition``; the run folder's waveform sidecar writes it as a file)."""
    records = analysed(result)
    exps = [r.explanation for r in records]
    key = ("composite-waveform", sorted(hash_array(e.waveform) for e in exps), result.spec.freqrex.to_dict())
    q0 = runner.engine.queries

    def compute() -> dict:
        found = compose_explanations(runner.engine, exps, kind="sufficient")
        spectra = composite_spectra(found, exps)  # the transferability paper's §5.1-5.2
        offered: dict[str, list[str]] = {}  # the clips compose_explanations offered per class, in its order
        for r in records:
            if r.explanation.bins("sufficient") is not None:
                offered.setdefault(r.explanation.target_label, []).append(r.sample.id)
        labels = runner.clf.labels
        return {str(c): {"ratio": float(r.ratio), "kept": len(r.kept), "available": int(r.available),
                         "kept_ids": [offered[c][i] for i in r.kept], "sample_rate": int(r.sample_rate),
                         "composite": r.composite if r.kept else None,
                         "composite_label": None if r.composite_label is None else labels[r.composite_label],
                         "composite_confidence": r.composite_confidence, **spectra[c]}
                for c, r in found.items()}

    result.composition = runner.cached("composition", key, compute, lambda v, a: to_jsonable(v, a, "composition"),
                                       lambda d, a: from_jsonable(d, a))
    runner.queries_by_phase["composition"] += runner.engine.queries - q0
    result.tables["composition_by_class"] = {c: v["ratio"] for c, v in sorted(result.composition.items())}
    result.tables["composite_entropy_tests"] = entropy_tests(result.composition)


def transferability(result: SpecResult, runner: ClipRunner, audit_peer: Callable[[Spec], SpecResult], device: str,
                    cache: Cache) -> None:
    """α/β toward the spec's peers; ``audit_peer`` audits a peer spec as any spec is audited, without cross checks
    of its own (its results come from the cache when already computed). The matrix itself is cached too, keyed by
    every model's fingerprint and the signals' bytes: a rerun asks no α/β query (none is charged to anyone)."""
    spec = result.spec
    classifiers = {spec.name: runner.clf}
    signals = {spec.name: transfer_signals([r.explanation for r in analysed(result)])}
    for peer in spec.peers:
        began, cache0 = time.perf_counter(), cache.counts()
        peer_result = audit_peer(load_spec(find_peer(spec, peer)))
        if not peer_result.error:
            classifiers[peer] = load_model(peer_result.spec, device)
        result.peer_work[peer] = {  # the peer's work, never charged to this spec's own seconds / queries
            "seconds": time.perf_counter() - began, "queries": peer_result.queries,
            "cache": {k: v - cache0[k] for k, v in cache.counts().items()}}
        if peer_result.error:
            result.cross_skipped["transferability"] = f"peer {peer!r}: {peer_result.error}"
            return
        signals[peer] = transfer_signals([r.explanation for r in analysed(peer_result)])
    q0 = runner.engine.queries
    asked: dict[str, int] = {}  # what this run asked: nothing when the matrix came from the cache

    def compute() -> TransferResult:
        matrix = transfer_matrix(classifiers, signals, timeout_s=spec.timeout_s)
        asked.update(matrix.queries)
        return matrix

    fingerprints = [(name, getattr(clf, "fingerprint", None)) for name, clf in classifiers.items()]
    if all(fp for _, fp in fingerprints):  # every model identifiable: the matrix is a pure function of the key
        key = (fingerprints, [(name, _signal_hashes(signals[name])) for name in classifiers])
        result.transferability = runner.cached("transferability", key, compute, lambda v, a: v.to_dict(a, "transfer"),
                                               lambda d, a: TransferResult.from_dict(d, a))
    else:
        result.transferability = compute()
    # α/β queries: those to this spec's model are its own work, those to a peer's model that peer's
    runner.engine.queries = q0 + asked.get(spec.name, 0)
    runner.queries_by_phase["transferability"] = asked.get(spec.name, 0)
    for peer in spec.peers:
        result.peer_work[peer]["queries"] += asked.get(peer, 0)


def _signal_hashes(signals: list[TransferSignal]) -> list:
    """What a transfer matrix reads of one model's signals: labels, rates and the waveforms' bytes."""
    return [(s.label, s.sample_rate, None if s.sufficient is None else hash_array(s.sufficient),
             None if s.complete is None else hash_array(s.complete)) for s in signals]

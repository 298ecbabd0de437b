"""Train the zoo's instrument classifiers: one small model per architecture family the paper used.

Run ``python -m freqrex_audit.zoo.train`` (``--only ast whisper`` for a subset, ``--seed N``,
``--threads N``). It reads the committed clips under ``instruments/train`` and ``instruments/eval``
(see ``make_data.py``), trains AST, Wav2Vec2, HuBERT (DistilHuBERT-style: 2 layers) and Whisper
(``WhisperForAudioClassification``) from small configs on the CPU, saves each with
``save_pretrained`` (safetensors) plus its feature extractor under ``instruments/models/<name>/``,
reloads the saved directory and prints its held-out accuracy, and records every figure in
``instruments/training_results.json`` (the zoo README quotes that file).

Deterministic for a given seed and thread count: model initialisation, augmentation and batch order
all come from seeded generators, and torch runs with deterministic algorithms. The training set is
augmented once up front (random gain, shifts of up to ±0.1 s, white noise at 15–40 dB SNR, and
occasionally a random low-pass or high-pass); the eval set is never augmented or used for choices.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import time
from pathlib import Path
from typing import Callable

import numpy as np
import soundfile as sf
import torch

from . import ZOO_ROOT

SAMPLE_RATE = 16000
CLIP_SAMPLES = SAMPLE_RATE
TASK_ROOT = ZOO_ROOT / "instruments"
ARCHITECTURES = ("ast", "wav2vec2", "hubert", "whisper")


# ---------------------------------------------------------------------------------------------
# data


def load_split(split: str, root: Path = TASK_ROOT) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Clips [N, 16000] float32, integer labels [N] and the class names (sorted folder names)."""
    split_dir = root / split
    classes = sorted(p.name for p in split_dir.iterdir() if p.is_dir())
    clips, labels = [], []
    for index, name in enumerate(classes):
        for path in sorted((split_dir / name).glob("*.flac")):
            audio, rate = sf.read(path, dtype="float32")
            if rate != SAMPLE_RATE or audio.ndim != 1:
                raise ValueError(f"{path}: expected 16 kHz mono, got {rate} Hz, shape {audio.shape}")
            clip = np.zeros(CLIP_SAMPLES, dtype=np.float32)
            clip[: min(len(audio), CLIP_SAMPLES)] = audio[:CLIP_SAMPLES]
            clips.append(clip)
            labels.append(index)
    return np.stack(clips), np.asarray(labels), classes


def _butter_filter(x: np.ndarray, cutoff_hz: float, highpass: bool) -> np.ndarray:
    from scipy.signal import butter, sosfilt

    sos = butter(4, cutoff_hz, btype="highpass" if highpass else "lowpass", fs=SAMPLE_RATE, output="sos")
    return sosfilt(sos, x).astype(np.float32)


def augment(clips: np.ndarray, labels: np.ndarray, copies: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The originals plus ``copies`` randomly perturbed versions of each clip."""
    rng = np.random.default_rng([seed, 1])
    out, out_labels = [clips], [labels]
    for _ in range(copies):
        batch = np.empty_like(clips)
        for i, clip in enumerate(clips):
            x = clip.copy()
            if rng.random() < 0.25:
                x = _butter_filter(x, float(rng.uniform(1500, 6000)), highpass=False)
            elif rng.random() < 0.15:
                x = _butter_filter(x, float(rng.uniform(100, 600)), highpass=True)
            shift = int(rng.integers(-1600, 1601))
            x = np.roll(x, shift)
            if shift > 0:
                x[:shift] = 0.0
            elif shift < 0:
                x[shift:] = 0.0
            x *= float(rng.uniform(0.3, 1.6))
            power = float(np.mean(x ** 2)) + 1e-12
            snr_db = float(rng.uniform(15, 40))
            x += rng.standard_normal(len(x)).astype(np.float32) * math.sqrt(power / 10 ** (snr_db / 10))
            batch[i] = np.clip(x, -1.0, 1.0)
        out.append(batch)
        out_labels.append(labels)
    return np.concatenate(out), np.concatenate(out_labels)


# ---------------------------------------------------------------------------------------------
# models: small configs, one builder per family → (model, feature_extractor, features_fn)


def _label_maps(classes: list[str]) -> dict:
    return {"num_labels": len(classes), "id2label": dict(enumerate(classes)),
            "label2id": {c: i for i, c in enumerate(classes)}}


def build_ast(classes: list[str], train_clips: np.ndarray):
    from transformers import ASTConfig, ASTFeatureExtractor, ASTForAudioClassification

    fe = ASTFeatureExtractor(feature_size=1, sampling_rate=SAMPLE_RATE, num_mel_bins=64, max_length=100,
                             do_normalize=False)
    raw = fe(list(train_clips), sampling_rate=SAMPLE_RATE, return_tensors="np")["input_values"]
    fe.mean, fe.std, fe.do_normalize = float(raw.mean()), float(raw.std()), True
    config = ASTConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=128,
                       patch_size=16, frequency_stride=10, time_stride=10, max_length=100, num_mel_bins=64,
                       hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1, **_label_maps(classes))
    return ASTForAudioClassification(config), fe


def _wav2vec2_style(config_cls, model_cls, classes: list[str]):
    from transformers import Wav2Vec2FeatureExtractor

    config = config_cls(hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=128,
                        conv_dim=(32,) * 7, conv_kernel=(10, 3, 3, 3, 3, 2, 2), conv_stride=(5, 2, 2, 2, 2, 2, 2),
                        num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=8, feat_extract_norm="group",
                        do_stable_layer_norm=False, mask_time_prob=0.0, mask_feature_prob=0.0,
                        hidden_dropout=0.1, attention_dropout=0.1, activation_dropout=0.0, feat_proj_dropout=0.0,
                        final_dropout=0.1, layerdrop=0.0, classifier_proj_size=32, use_weighted_layer_sum=False,
                        vocab_size=8, **_label_maps(classes))
    fe = Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=SAMPLE_RATE, padding_value=0.0, do_normalize=True,
                                  return_attention_mask=False)
    return model_cls(config), fe


def build_wav2vec2(classes: list[str], train_clips: np.ndarray):
    from transformers import Wav2Vec2Config, Wav2Vec2ForSequenceClassification

    return _wav2vec2_style(Wav2Vec2Config, Wav2Vec2ForSequenceClassification, classes)


def build_hubert(classes: list[str], train_clips: np.ndarray):
    from transformers import HubertConfig, HubertForSequenceClassification

    return _wav2vec2_style(HubertConfig, HubertForSequenceClassification, classes)


def build_whisper(classes: list[str], train_clips: np.ndarray):
    from transformers import WhisperConfig, WhisperFeatureExtractor, WhisperForAudioClassification

    # 1-s windows: chunk_length=1 → n_samples=16000, nb_max_frames=100 mel frames; the encoder's
    # two convolutions (strides 1, 2) need exactly 2 * max_source_positions = 100 frames.
    fe = WhisperFeatureExtractor(feature_size=64, sampling_rate=SAMPLE_RATE, hop_length=160, chunk_length=1,
                                 n_fft=400)
    config = WhisperConfig(vocab_size=64, num_mel_bins=64, d_model=64, encoder_layers=2, encoder_attention_heads=2,
                           encoder_ffn_dim=128, decoder_layers=1, decoder_attention_heads=2, decoder_ffn_dim=128,
                           max_source_positions=50, max_target_positions=8, classifier_proj_size=32,
                           use_weighted_layer_sum=False, dropout=0.1, attention_dropout=0.1,
                           pad_token_id=0, bos_token_id=1, eos_token_id=2, decoder_start_token_id=1,
                           suppress_tokens=[], begin_suppress_tokens=[], **_label_maps(classes))
    return WhisperForAudioClassification(config), fe


BUILDERS: dict[str, Callable] = {"ast": build_ast, "wav2vec2": build_wav2vec2, "hubert": build_hubert,
                                 "whisper": build_whisper}


def features(fe, clips: np.ndarray) -> torch.Tensor:
    out = fe(list(clips), sampling_rate=SAMPLE_RATE, return_tensors="pt")
    return out["input_features" if "input_features" in out else "input_values"].float()


def model_inputs(model, x: torch.Tensor) -> dict:
    return {"input_features" if model.main_input_name == "input_features" else "input_values": x}


# ---------------------------------------------------------------------------------------------
# training and evaluation


@torch.no_grad()
def accuracy(model, x: torch.Tensor, y: np.ndarray, batch: int = 64) -> float:
    model.eval()
    preds = [model(**model_inputs(model, x[i:i + batch])).logits.argmax(-1) for i in range(0, len(x), batch)]
    return float((torch.cat(preds).numpy() == y).mean())


def train_one(name: str, out_dir: Path, seed: int, epochs: int, lr: float, copies: int) -> dict:
    from transformers import AutoFeatureExtractor, AutoModelForAudioClassification

    began = time.perf_counter()
    train_clips, train_y, classes = load_split("train")
    eval_clips, eval_y, eval_classes = load_split("eval")
    assert classes == eval_classes, (classes, eval_classes)
    aug_clips, aug_y = augment(train_clips, train_y, copies, seed)

    torch.manual_seed(seed)
    model, fe = BUILDERS[name](classes, train_clips)
    x = features(fe, aug_clips)
    y = torch.as_tensor(aug_y)
    optimiser = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    batch = 32
    steps = epochs * math.ceil(len(x) / batch)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=lr, total_steps=steps, pct_start=0.1)
    order_gen = torch.Generator().manual_seed(seed)
    for epoch in range(epochs):
        model.train()
        total = 0.0
        for idx in torch.randperm(len(x), generator=order_gen).split(batch):
            loss = torch.nn.functional.cross_entropy(model(**model_inputs(model, x[idx])).logits, y[idx])
            optimiser.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimiser.step()
            schedule.step()
            total += float(loss.detach()) * len(idx)
        if epoch % 5 == 4 or epoch == epochs - 1:
            print(f"  {name} epoch {epoch + 1}/{epochs}: loss {total / len(x):.3f}", flush=True)
    train_seconds = time.perf_counter() - began

    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir, safe_serialization=True)
    fe.save_pretrained(out_dir)

    # the recorded figures come from the saved directory, reloaded as a user would
    reloaded = AutoModelForAudioClassification.from_pretrained(out_dir)
    reloaded_fe = AutoFeatureExtractor.from_pretrained(out_dir)
    eval_acc = accuracy(reloaded, features(reloaded_fe, eval_clips), eval_y)
    train_acc = accuracy(reloaded, features(reloaded_fe, train_clips), train_y)
    per_class = {}
    preds = reloaded.eval()(**model_inputs(reloaded, features(reloaded_fe, eval_clips))).logits.argmax(-1).numpy()
    for index, cls in enumerate(classes):
        per_class[cls] = float((preds[eval_y == index] == index).mean())
    size = sum(p.stat().st_size for p in out_dir.iterdir() if p.is_file())
    return {"model": name, "class": type(model).__name__, "eval_accuracy": eval_acc, "train_accuracy": train_acc,
            "eval_accuracy_per_class": per_class, "eval_clips": int(len(eval_y)), "train_clips": int(len(train_y)),
            "augmented_train_clips": int(len(x)), "parameters": int(sum(p.numel() for p in model.parameters())),
            "bytes_on_disk": int(size), "epochs": epochs, "lr": lr, "seed": seed,
            "train_seconds": round(train_seconds, 1), "labels": classes}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=ARCHITECTURES, default=list(ARCHITECTURES))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--copies", type=int, default=5, help="augmented copies of each training clip")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (results depend on it slightly)")
    parser.add_argument("--out", type=Path, default=TASK_ROOT / "models")
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    torch.use_deterministic_algorithms(True, warn_only=True)
    results_path = TASK_ROOT / "training_results.json"
    recorded = json.loads(results_path.read_text()) if results_path.is_file() else {}
    models = recorded.get("models", {})
    for name in args.only:
        print(f"training {name} …", flush=True)
        result = train_one(name, args.out / name, args.seed, args.epochs, args.lr, args.copies)
        models[name] = result
        print(f"{name}: held-out accuracy {result['eval_accuracy']:.3f} ({result['eval_clips']} clips, chance 0.25), "
              f"train accuracy {result['train_accuracy']:.3f}, {result['parameters']:,} parameters, "
              f"{result['bytes_on_disk'] / 1e6:.2f} MB, {result['train_seconds']:.0f} s", flush=True)
    if args.out.resolve() == (TASK_ROOT / "models").resolve():
        import transformers

        recorded = {"models": {k: models[k] for k in ARCHITECTURES if k in models},
                    "environment": {"torch": torch.__version__, "transformers": transformers.__version__,
                                    "python": platform.python_version(), "threads": args.threads}}
        results_path.write_text(json.dumps(recorded, indent=2) + "\n")
        print(f"recorded in {results_path}")


if __name__ == "__main__":
    main()

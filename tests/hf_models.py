"""Tiny random-weight Hugging Face audio classifiers, built from configs (no network) for the tests.

``build_tiny_model(family, directory)`` saves a model (safetensors) and its feature extractor into
``directory`` so that ``AutoModelForAudioClassification`` / ``AutoFeatureExtractor`` and
``transformers.pipeline`` load it with ``local_files_only=True``. Every model has three labels
(``LABELS``) and a 16 kHz extractor; weights are seeded so the same family gives the same model.
"""

from __future__ import annotations

from pathlib import Path

import torch

SAMPLE_RATE = 16000
LABELS = ["dog", "rain", "siren"]
FAMILIES = ("ast", "wav2vec2", "hubert", "distilhubert", "whisper")

WHISPER_CHUNK_SECONDS = 1
"""Whisper pads/truncates every clip to ``chunk_length`` seconds; 1 s → 100 frames → 50 positions."""

INIT_RANGE = {"ast": 0.2, "wav2vec2": 0.5, "hubert": 0.5, "distilhubert": 0.5, "whisper": 0.5}
"""With HF's default init (std 0.02) tiny random models answer ~1/3 for every class whatever the
input; a wider init makes the output depend on the clip, so that top-1 and probability comparisons
in the tests mean something."""


def _label_maps() -> dict:
    return {"id2label": dict(enumerate(LABELS)), "label2id": {label: i for i, label in enumerate(LABELS)}}


def _speech_encoder_kwargs(family: str) -> dict:
    """A 3-layer conv front end (stride 4·4·4 = 64) and a 2-layer, 16-wide transformer."""
    return dict(hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32,
                conv_dim=(16, 16, 16), conv_stride=(4, 4, 4), conv_kernel=(8, 8, 8),
                num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2, classifier_proj_size=8,
                mask_time_prob=0.0, initializer_range=INIT_RANGE[family], **_label_maps())


def build_tiny_model(family: str, directory: str | Path, seed: int = 0) -> Path:
    """Build and ``save_pretrained`` a tiny ``family`` classifier + its feature extractor in ``directory``."""
    import transformers as tf

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    if family == "ast":
        config = tf.ASTConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
                              patch_size=16, frequency_stride=10, time_stride=10, max_length=100,
                              num_mel_bins=32, initializer_range=INIT_RANGE[family], **_label_maps())
        model = tf.ASTForAudioClassification(config)
        extractor = tf.ASTFeatureExtractor(sampling_rate=SAMPLE_RATE, num_mel_bins=32, max_length=100)
    elif family == "wav2vec2":
        # Group norm in the conv front end, like wav2vec2-base: no attention mask, normalised input.
        config = tf.Wav2Vec2Config(feat_extract_norm="group", do_stable_layer_norm=False,
                                   **_speech_encoder_kwargs(family))
        model = tf.Wav2Vec2ForSequenceClassification(config)
        extractor = tf.Wav2Vec2FeatureExtractor(sampling_rate=SAMPLE_RATE, do_normalize=True,
                                                return_attention_mask=False)
    elif family == "hubert":
        # Layer norm + stable layer norm, like hubert-large: the extractor returns an attention mask.
        config = tf.HubertConfig(feat_extract_norm="layer", do_stable_layer_norm=True,
                                 **_speech_encoder_kwargs(family))
        model = tf.HubertForSequenceClassification(config)
        extractor = tf.Wav2Vec2FeatureExtractor(sampling_rate=SAMPLE_RATE, do_normalize=True,
                                                return_attention_mask=True)
    elif family == "distilhubert":
        # DistilHuBERT is a HuBERT with a 2-layer encoder and no input normalisation.
        config = tf.HubertConfig(feat_extract_norm="group", do_stable_layer_norm=False,
                                 **_speech_encoder_kwargs(family))
        model = tf.HubertForSequenceClassification(config)
        extractor = tf.Wav2Vec2FeatureExtractor(sampling_rate=SAMPLE_RATE, do_normalize=False,
                                                return_attention_mask=False)
    elif family == "whisper":
        frames = WHISPER_CHUNK_SECONDS * SAMPLE_RATE // 160
        config = tf.WhisperConfig(num_mel_bins=16, d_model=16, encoder_layers=1, encoder_attention_heads=2,
                                  encoder_ffn_dim=32, decoder_layers=1, decoder_attention_heads=2,
                                  decoder_ffn_dim=32, max_source_positions=frames // 2, max_target_positions=8,
                                  init_std=INIT_RANGE[family], classifier_proj_size=8, vocab_size=64,
                                  pad_token_id=0, bos_token_id=1, eos_token_id=2, decoder_start_token_id=3,
                                  **_label_maps())
        model = tf.WhisperForAudioClassification(config)
        extractor = tf.WhisperFeatureExtractor(feature_size=16, sampling_rate=SAMPLE_RATE, hop_length=160,
                                               chunk_length=WHISPER_CHUNK_SECONDS, n_fft=400)
    else:
        raise ValueError(f"unknown family {family!r}; one of {FAMILIES}")
    model.eval()
    model.save_pretrained(directory, safe_serialization=True)
    extractor.save_pretrained(directory)
    return directory

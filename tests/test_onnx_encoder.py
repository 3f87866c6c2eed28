"""The ONNX backends on the real packaged model: same vectors as torch, own cache keys, one export."""

import json

import numpy as np
import pytest

from fewshot import FewshotError, config, onnx_encoder
from fewshot.encoders import EmbeddingCache, SentenceEncoder, backend_of


@pytest.fixture(scope="module")
def texts(ag_sample):
    """40 AG News texts plus one past max_seq_length (256 tokens), so truncation is compared."""
    return [*ag_sample["text"], " ".join(ag_sample["text"][:12])]


@pytest.fixture(scope="module")
def torch_encoder():
    return SentenceEncoder(cache=EmbeddingCache(), backend="torch")


@pytest.fixture(scope="module")
def reference(torch_encoder, texts):
    return torch_encoder.encode(texts)


def test_tokenizer_is_the_models_own(torch_encoder, texts):
    ours = onnx_encoder.Pipeline(torch_encoder.model_path).tokenizer().encode_batch(texts)
    theirs = torch_encoder.model.tokenizer(texts, truncation=True, max_length=256)["input_ids"]
    assert [e.ids[: len(t)] for e, t in zip(ours, theirs)] == theirs
    assert max(len(t) for t in theirs) == 256  # the long text was cut


def test_int8_vectors_stay_close_to_torch(texts, reference):
    # Dynamic int8 quantizes each batch's activations with one scale, so a text with outlier
    # activations loses more: per text >= 0.98, not 0.99 (fewshot.embed_bench has the numbers).
    vectors = SentenceEncoder(backend="onnx-int8").encode(texts)
    cosine = np.einsum("ij,ij->i", vectors, reference)
    assert vectors.dtype == np.float32 and np.allclose(
        np.linalg.norm(vectors, axis=1), 1, atol=1e-5
    )
    assert cosine.min() >= 0.98 and cosine.mean() >= 0.99


def test_openvino_vectors_match_torch(texts, reference):
    vectors = SentenceEncoder(backend="openvino").encode(texts)
    assert np.einsum("ij,ij->i", vectors, reference).min() >= 0.99


def test_cache_key_names_the_backend(monkeypatch):
    names = [SentenceEncoder(backend=b).name for b in config.ENCODER_BACKENDS]
    assert "+" not in names[0]  # the bare fingerprint: caches from before backends stay valid
    assert len(set(names)) == len(names)
    assert [backend_of(name) for name in names] == list(config.ENCODER_BACKENDS)
    monkeypatch.setenv("FEWSHOT_ENCODER", "onnx-int8")
    assert SentenceEncoder().name == names[1]
    monkeypatch.setenv("FEWSHOT_ENCODER", "tensorflow")
    with pytest.raises(FewshotError, match="FEWSHOT_ENCODER"):
        SentenceEncoder()


def test_export_is_reused_from_disk(texts, monkeypatch):
    first = SentenceEncoder(backend="onnx-int8")
    vectors = first.encode(texts[:5])
    onnx = first._onnx
    path = onnx_encoder.model_file(onnx.pipeline, onnx.fingerprint, "onnx-int8")
    written = path.stat().st_mtime_ns

    def no_export(*args):
        raise AssertionError("exported again")

    monkeypatch.setattr(onnx_encoder, "export_fp32", no_export)
    again = SentenceEncoder(backend="onnx-int8").encode(texts[:5])
    assert np.allclose(again, vectors, atol=1e-6)
    assert path.stat().st_mtime_ns == written


def test_a_failed_export_leaves_no_file(encoder, tmp_path, monkeypatch):
    monkeypatch.setenv("FEWSHOT_DATA_DIR", str(tmp_path))

    def broken(pipeline, target):
        target.write_bytes(b"half a model")
        raise RuntimeError("killed")

    monkeypatch.setattr(onnx_encoder, "export_fp32", broken)
    with pytest.raises(RuntimeError, match="killed"):
        SentenceEncoder(backend="openvino").encode(["text"])
    assert list((tmp_path / "models").iterdir()) == []


def test_unsupported_pipeline_is_refused(tmp_path):
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {
            "idx": 1,
            "name": "1",
            "path": "1_Pooling",
            "type": "sentence_transformers.models.Pooling",
        },
        {"idx": 2, "name": "2", "path": "2_Dense", "type": "sentence_transformers.models.Dense"},
    ]
    (tmp_path / "modules.json").write_text(json.dumps(modules))
    (tmp_path / "1_Pooling").mkdir()
    (tmp_path / "1_Pooling" / "config.json").write_text('{"pooling_mode_mean_tokens": true}')
    with pytest.raises(FewshotError, match="FEWSHOT_ENCODER=torch"):
        SentenceEncoder(tmp_path, backend="onnx-int8")

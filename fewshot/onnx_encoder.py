"""The sentence model without torch at run time: ONNX Runtime with int8 weights, or OpenVINO.

Embedding is the slow step of a first run, and on a CPU most of its time is the transformer's
matrix products. The model's transformer is exported to ONNX once, from the weights on this
machine, and kept in `data_dir()/models` under the model's fingerprint; tokenizing (the model's
own tokenizer.json), mean pooling and L2 normalization happen here, as the model's
sentence-transformers pipeline (Transformer, mean Pooling, Normalize) does them.
"""

from __future__ import annotations

import json
import tempfile
import threading
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from fewshot import FewshotError, config
from fewshot.encoders import BATCH_SIZE
from fewshot.numeric import usable_cpus
from fewshot.stored import write_atomic

BACKENDS = ("onnx-int8", "openvino")
_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
_EXPORT_LOCK = threading.Lock()
Runner = Callable[[dict[str, np.ndarray]], np.ndarray]


class Pipeline:
    """What the model's sentence-transformers modules do, read from its files (no torch)."""

    def __init__(self, model_dir: str | Path) -> None:
        model_dir = Path(model_dir)
        modules = json.loads((model_dir / "modules.json").read_text())
        kinds = [m["type"].rsplit(".", 1)[-1] for m in modules]
        pooling = {}
        if kinds[:2] == ["Transformer", "Pooling"]:
            pooling = json.loads((model_dir / modules[1]["path"] / "config.json").read_text())
        modes = {k for k, v in pooling.items() if k.startswith("pooling_mode_") and v is True}
        self.transformer_dir = model_dir / modules[0]["path"]
        if (
            kinds not in (["Transformer", "Pooling"], ["Transformer", "Pooling", "Normalize"])
            or modes != {"pooling_mode_mean_tokens"}
            or not (self.transformer_dir / "tokenizer.json").is_file()
        ):
            raise FewshotError(
                f"The ONNX encoders need a Transformer with mean pooling and a tokenizer.json; "
                f"'{model_dir}' is {' + '.join(kinds)}. Set FEWSHOT_ENCODER=torch for this model."
            )
        self.dim = int(pooling["word_embedding_dimension"])
        settings = json.loads((self.transformer_dir / "sentence_bert_config.json").read_text())
        self.max_seq_length = int(settings["max_seq_length"])
        self.lower_case = bool(settings.get("do_lower_case", False))

    def tokenizer(self):  # noqa: ANN201 - a tokenizers.Tokenizer
        """The model's fast tokenizer, truncating and padding (to the longest) as
        sentence-transformers does; tokenizer.json's own fixed padding is replaced."""
        from tokenizers import Tokenizer

        tokenizer = Tokenizer.from_file(str(self.transformer_dir / "tokenizer.json"))
        pad = json.loads((self.transformer_dir / "tokenizer_config.json").read_text())["pad_token"]
        pad = pad["content"] if isinstance(pad, dict) else pad
        tokenizer.enable_truncation(max_length=self.max_seq_length)
        tokenizer.enable_padding(pad_id=tokenizer.token_to_id(pad), pad_token=pad)
        return tokenizer

    def prepare(self, text: object) -> str:
        """The text as sentence-transformers' Transformer module hands it to the tokenizer."""
        text = str(text).strip()
        return text.lower() if self.lower_case else text


def export_fp32(pipeline: Pipeline, target: Path) -> None:
    """The transformer as ONNX, token embeddings out, with dynamic batch and sequence axes.

    Eager attention rather than SDPA: its graph is the plain MatMul and Softmax one that ONNX
    Runtime fuses and quantizes. The legacy TorchScript exporter needs no extra package.
    """
    import torch
    from transformers import AutoModel

    model = AutoModel.from_pretrained(pipeline.transformer_dir, attn_implementation="eager")
    model.eval()
    names = list(_INPUTS if getattr(model.config, "type_vocab_size", 0) else _INPUTS[:2])

    class TokenEmbeddings(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
            return self.model(**dict(zip(names, inputs))).last_hidden_state

    dummy = tuple(torch.ones((2, 8), dtype=torch.int64) for _ in names)
    axes = {name: {0: "batch", 1: "sequence"} for name in [*names, "token_embeddings"]}
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tracer's notes; the tests compare against torch
        torch.onnx.export(
            TokenEmbeddings(),
            dummy,
            str(target),
            input_names=names,
            output_names=["token_embeddings"],
            dynamic_axes=axes,
            opset_version=17,
            dynamo=False,
        )


def quantize_int8(source: Path, target: Path) -> None:
    """Int8 weights, one scale per output channel, for every MatMul with a constant weight;
    activations are quantized per batch as they come (dynamic quantization, no calibration set).

    Per channel rather than per tensor: per tensor, cosine to fp32 fell to 0.91 on some texts.
    The word embeddings (a Gather) stay float: quantizing them costs accuracy and saves no time.
    """
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(
        source,
        target,
        weight_type=QuantType.QInt8,
        per_channel=True,
        op_types_to_quantize=["MatMul"],
    )


def model_file(pipeline: Pipeline, fingerprint: str, backend: str) -> Path:
    """The backend's ONNX file in data_dir()/models, exported (and quantized) on first use."""
    int8 = backend == "onnx-int8"
    target = config.data_dir() / "models" / f"{fingerprint}-{'int8' if int8 else 'fp32'}.onnx"
    with _EXPORT_LOCK:
        if target.exists():
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        if not int8:
            write_atomic(target, lambda path: export_fp32(pipeline, path))
            return target
        with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
            fp32 = Path(tmp) / "fp32.onnx"
            export_fp32(pipeline, fp32)
            write_atomic(target, lambda path: quantize_int8(fp32, path))
    return target


def onnxruntime_runner(path: Path, threads: int | None = None) -> Runner:
    """An ONNX Runtime session on the CPUs this process may use (threads overrides that).

    No spin-waiting between operators: it would take a core from whatever else this machine
    runs (the app's other sessions, a Spark task beside this one) for little gain.
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or usable_cpus()
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    return lambda feed: session.run(None, {n: feed[n] for n in names})[0]


def openvino_runner(path: Path, threads: int | None = None) -> Runner:
    """An OpenVINO CPU model: it computes in bfloat16 where the CPU has it (AMX, AVX-512 BF16),
    else in float32. One infer request per call, so threads can share the model.

    No pinning of threads to cores: each process would pin to the same first cores, and two
    Spark workers were seen sharing core 0 while core 1 idled.
    """
    import openvino as ov

    core = ov.Core()
    compiled = core.compile_model(
        core.read_model(str(path)),
        "CPU",
        {
            "INFERENCE_NUM_THREADS": threads or usable_cpus(),
            "PERFORMANCE_HINT": "LATENCY",
            "ENABLE_CPU_PINNING": False,
        },
    )
    names = [i.get_any_name() for i in compiled.inputs]
    return lambda feed: compiled.create_infer_request().infer({n: feed[n] for n in names})[0]


class OnnxEncoder:
    """Unit-length sentence vectors from the exported transformer; loaded on first encode."""

    def __init__(
        self, model_dir: str | Path, fingerprint: str, backend: str, threads: int | None = None
    ) -> None:
        if backend not in BACKENDS:
            raise FewshotError(f"Unknown ONNX backend '{backend}': one of {', '.join(BACKENDS)}.")
        self.pipeline = Pipeline(model_dir)
        self.fingerprint = fingerprint
        self.backend = backend
        self.threads = threads
        self._loaded: tuple[Runner, object] | None = None
        self._lock = threading.Lock()

    @property
    def dim(self) -> int:
        return self.pipeline.dim

    def load(self) -> tuple[Runner, object]:
        """The runner and tokenizer, the model exported on first use."""
        with self._lock:
            if self._loaded is None:
                path = model_file(self.pipeline, self.fingerprint, self.backend)
                load = onnxruntime_runner if self.backend == "onnx-int8" else openvino_runner
                self._loaded = load(path, self.threads), self.pipeline.tokenizer()
        return self._loaded

    def encode(self, texts: Sequence[str], batch_size: int = BATCH_SIZE) -> np.ndarray:
        """Float32 rows in input order; batches go longest first, so each pads little."""
        run, tokenizer = self.load()
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        prepared = [self.pipeline.prepare(t) for t in texts]
        order = np.argsort([-len(t) for t in prepared], kind="stable")
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            batch = tokenizer.encode_batch([prepared[i] for i in rows])
            mask = np.array([e.attention_mask for e in batch], dtype=np.int64)
            feed = {
                "input_ids": np.array([e.ids for e in batch], dtype=np.int64),
                "attention_mask": mask,
                "token_type_ids": np.array([e.type_ids for e in batch], dtype=np.int64),
            }
            tokens = run(feed)
            weights = mask[..., None].astype(np.float32)
            pooled = (tokens * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
            norms = np.linalg.norm(pooled, axis=1, keepdims=True)
            out[rows] = pooled / np.maximum(norms, 1e-12)
        return out

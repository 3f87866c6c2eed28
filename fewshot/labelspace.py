"""The label space: candidate labels with optional descriptions, and the prompts that embed them."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from fewshot import FewshotError

TEMPLATES = ("{label}", "This text is about {label}.", "A text about {label}.")


MAX_NAME_CHARS = (
    100  # a name is a button, a legend entry and a column value; a description says more
)


@dataclass(frozen=True)
class LabelSpace:
    """Candidate labels, each with an optional description ("Sports: games, athletes, teams")."""

    names: tuple[str, ...]
    descriptions: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        names = tuple(str(n).strip() for n in self.names)
        descriptions = tuple(str(d).strip() for d in self.descriptions) or ("",) * len(names)
        if len(descriptions) != len(names):
            raise FewshotError("Each label needs exactly one (possibly empty) description.")
        if any(not n for n in names):
            raise FewshotError("A label name is empty.")
        long = next((n for n in names if len(n) > MAX_NAME_CHARS), None)
        if long is not None:
            raise FewshotError(
                f"Label '{long[:40]}...' is {len(long)} characters long; keep names to "
                f"{MAX_NAME_CHARS} and put the rest in a description after ':'."
            )
        seen: dict[str, str] = {}
        for name in names:
            if name.casefold() in seen:
                raise FewshotError(f"Duplicate label: '{name}' (labels are case-insensitive).")
            seen[name.casefold()] = name
        if len(names) < 2:
            raise FewshotError("At least two labels are needed to classify anything.")
        object.__setattr__(self, "names", names)
        object.__setattr__(self, "descriptions", descriptions)

    @classmethod
    def parse(cls, lines: Iterable[str]) -> LabelSpace:
        """One label per line, optionally `name: description`; blank lines and # comments skipped."""
        names, descriptions = [], []
        for line in lines:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            name, _, description = line.partition(":")
            names.append(name)
            descriptions.append(description)
        return cls(tuple(names), tuple(descriptions))

    def __len__(self) -> int:
        return len(self.names)

    def index(self, labels: Sequence[str]) -> np.ndarray:
        """Label names to class positions; an unknown name is an error, not a silent drop."""
        lookup = {n.casefold(): i for i, n in enumerate(self.names)}
        try:
            return np.array([lookup[str(v).strip().casefold()] for v in labels], dtype=np.int64)
        except KeyError as exc:
            raise FewshotError(f"Unknown label {exc.args[0]!r}; labels are {self.names}.") from None

    def prompts(self, templates: Sequence[str] = TEMPLATES) -> list[list[str]]:
        """Texts to embed per label: its readable name in each template, plus the description."""
        out = []
        for name, description in zip(self.names, self.descriptions):
            readable = re.sub(r"[_\s]+", " ", name).strip()
            texts = [t.format(label=readable) for t in templates]
            if description:
                texts.append(f"{readable}: {description}")
            out.append(texts)
        return out

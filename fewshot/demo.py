"""The bundled demo: 200 AG News headlines (text only) and the four AG News topics as labels.

It lets a first-time user see zero-shot results before bringing any data of their own.
"""

from __future__ import annotations

from pathlib import Path

from fewshot import ingest
from fewshot.store import Project, open_project

DEMO_PROJECT = "demo"
DEMO_CSV = Path(__file__).resolve().parents[1] / "data" / "demo.csv"
DEMO_LABELS = (
    ("World", "politics, governments, international news"),
    ("Sports", "games, athletes, teams"),
    ("Business", "companies, markets, economy"),
    ("Sci/Tech", "science, technology, computers, internet"),
)


def open_demo(root: Path | None = None) -> Project:
    """The demo project, filled with the sample and default labels where it lacks them.

    An existing demo keeps its documents, labels and annotations, so clicking twice loses nothing.
    """
    project = open_project(DEMO_PROJECT, root=root)
    if project.n_documents() == 0:
        project.set_documents(ingest.read_path(DEMO_CSV))
    if not project.labels():
        project.set_labels(DEMO_LABELS, user="demo")  # not in the user's undo
    return project

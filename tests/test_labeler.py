"""The labeler file: a round trip that predicts what the fit predicts, and refusals with reasons."""

import io
import json
import zipfile

import numpy as np
import pytest

from fewshot import FewshotError, config
from fewshot.apply import embedder_for
from fewshot.classify import FewShotClassifier
from fewshot.encoders import backend_of
from fewshot.labeler import Labeler
from fewshot.labelspace import LabelSpace
from fewshot.workspace import Workspace

NAMES = ("Business", "Sci/Tech", "Sports", "World")


@pytest.fixture(scope="module")
def taught(embedder, ag_sample):
    """A labeler taught on 32 AG News rows (2 labeled per class), and 8 rows it never saw."""
    corpus, new = ag_sample.groupby("label").head(8), ag_sample.groupby("label").tail(2)
    workspace = Workspace(corpus["text"].tolist(), embedder)
    labels = LabelSpace(NAMES)
    human = {int(i): corpus["label"].iloc[i] for i in range(0, len(corpus), 4)}
    prediction = workspace.predict(labels, human)
    return workspace, prediction, new.reset_index(drop=True)


def _rewrite(data: bytes, member: str, change) -> bytes:
    """The labeler archive with one member changed."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as source, zipfile.ZipFile(out, "w") as target:
        for info in source.infolist():
            content = source.read(info.filename)
            if info.filename == member:
                content = change(content)
            if content is not None:
                target.writestr(info.filename, content)
    return out.getvalue()


def test_round_trip_predicts_new_documents_as_the_fit_does(taught, embedder, tmp_path):
    workspace, prediction, new = taught
    labeler = workspace.labeler(prediction, label_set="demo:3")
    assert labeler.lexical is not None and labeler.temperature != 1.0
    texts = new["text"].tolist()
    vectors = embedder.view(texts, labeler.view)
    before = labeler.predict_proba(vectors, texts)
    labeler.save(tmp_path / "lab.zip")
    loaded = Labeler.load(tmp_path / "lab.zip")
    after = loaded.predict_proba(vectors, texts)
    assert np.allclose(before, after, atol=1e-6) and np.allclose(after.sum(axis=1), 1, atol=1e-5)
    assert loaded.labels == prediction.labels and loaded.about["label_set"] == "demo:3"
    # The embedding part is the fit's own answer for documents outside its corpus.
    fit = prediction.classifier.predict_proba(vectors)
    assert np.allclose(loaded.model.predict_proba(vectors), fit, atol=1e-6)
    # Mostly right on documents it never saw (8 rows: chance is 2).
    gold = prediction.labels.index(new["label"].tolist())
    assert np.sum(np.argmax(after, axis=1) == gold) >= 5
    loaded.check(embedder.identity(loaded.view))


def test_round_trip_of_a_distilled_discriminant(tmp_path):
    rng = np.random.default_rng(0)
    centers = np.eye(3, 16) * 3
    x = np.concatenate([c + 0.35 * rng.normal(size=(60, 16)) for c in centers])
    clf = FewShotClassifier(np.eye(3, 16) + 0.5).fit(corpus=x)
    assert clf.model_.kind == "discriminant"
    labeler = Labeler(LabelSpace(("a", "b", "c")), "sbert", {"sentence": "m"}, clf.model_, 0.7)
    loaded = Labeler.load(labeler.to_bytes())
    fresh = centers + 0.35 * rng.normal(size=(3, 16))
    assert np.allclose(loaded.predict_proba(fresh, []), labeler.predict_proba(fresh, []), atol=1e-6)
    assert list(np.argmax(loaded.predict_proba(fresh, []), axis=1)) == [0, 1, 2]


def test_refusals_say_why(taught):
    workspace, prediction, _ = taught
    good = workspace.labeler(prediction).to_bytes()

    def meta(change):
        return lambda raw: json.dumps(change(json.loads(raw))).encode()

    cases = {
        "damaged": good[: len(good) // 2],
        "not a labeler": b"id,text\n1,hello\n",
        "format version 99": _rewrite(good, "labeler.json", meta(lambda m: {**m, "version": 99})),
        "no arrays.npz": _rewrite(good, "arrays.npz", lambda raw: None),
        "3 labels": _rewrite(
            good, "labeler.json", meta(lambda m: {**m, "labels": m["labels"][:3]})
        ),
        "no 'fewshot-labeler' header": _rewrite(
            good, "labeler.json", meta(lambda m: {**m, "format": "other"})
        ),
    }
    for message, data in cases.items():
        with pytest.raises(FewshotError, match=message):
            Labeler.load(data)
    with pytest.raises(FewshotError, match="not found"):
        Labeler.load("/nonexistent/lab.zip")
    labeler = Labeler.load(good)
    with pytest.raises(FewshotError, match="taught with sentence model"):
        labeler.check({"sentence": "another-model-0123"})


def test_a_labeler_embeds_with_the_backend_it_was_taught_with(taught, monkeypatch):
    workspace, prediction, _ = taught
    labeler = workspace.labeler(prediction)
    backend = backend_of(labeler.encoders["sentence"])
    other = next(b for b in config.ENCODER_BACKENDS if b != backend)
    monkeypatch.setenv("FEWSHOT_ENCODER", other)  # what this machine would use for a new fit
    embedder = embedder_for(labeler)
    assert embedder.sentence.backend == backend and embedder.words is None

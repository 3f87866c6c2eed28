"""Several people, one project, through the real app (AppTest, real models): each session labels
under the name it typed once, FEWSHOT_PASSWORD guards the app, and the Review page shows agreement,
disagreements to resolve, the counting rule and the likely mistakes."""

import time
from pathlib import Path

import pandas as pd
import pytest
from sklearn.metrics import cohen_kappa_score
from streamlit.testing.v1 import AppTest

from fewshot import config
from fewshot.demo import open_demo
from fewshot.store import open_project

ROOT = Path(__file__).resolve().parents[1]


pytestmark = pytest.mark.usefixtures("app_data_dir")  # a fresh data directory per test


def app() -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.session_state["project"] = "demo"
    return at.run()


def sign_in(at: AppTest, name: str) -> AppTest:
    at.text_input(key="your_name").input(name)
    return at.button[0].click().run()


def test_the_name_is_asked_once_and_goes_with_every_label():
    open_demo()
    at = app()
    assert at.title[0].value == "Few-Shot Labeler"
    assert at.text_input(key="your_name").label == "Your name"
    assert not at.sidebar.selectbox  # nothing else until named

    sign_in(at, "   ")
    assert "Type your name" in at.error[0].value
    assert at.text_input(key="your_name").label == "Your name"

    sign_in(at, "  Ada   Lovelace ")
    assert not at.exception, at.exception
    assert at.title[0].value == "Data"
    assert "Ada Lovelace" in at.sidebar.caption[0].value

    at.switch_page("pages/teach.py").run()
    assert not at.exception, at.exception
    key = next(b.key for b in at.button if b.key and b.key.startswith("label_"))
    doc = int(key.split("_")[1])
    time.sleep(0.35)  # read: a press in the first 0.3 s does not count
    at.button(key=key).click().run()
    history = open_project("demo", create=False).history(doc)
    assert history["user"].tolist()[-1] == "Ada Lovelace"

    next(b for b in at.sidebar.button if b.key == "not_you").click().run()
    assert at.text_input(key="your_name").label == "Your name"


def test_a_password_guards_the_app_and_is_asked_before_the_name(monkeypatch):
    monkeypatch.setenv("FEWSHOT_PASSWORD", "open sesame")
    open_demo()
    at = app()
    assert [box.key for box in at.text_input] == ["password"]  # the name comes after
    at.text_input(key="password").input("open sesam")
    at.button[0].click().run()
    assert "not right" in at.error[0].value
    assert at.session_state["password"] == ""  # never kept in the session

    at.text_input(key="password").input("open sesame")
    at.button[0].click().run()
    sign_in(at, "Grace")
    assert not at.exception, at.exception
    assert at.title[0].value == "Data"


AUTH = {
    "redirect_uri": "http://localhost:8501/oauth2callback",
    "cookie_secret": "a long random string",
    "client_id": "fewshot",
    "client_secret": "not a real one",
    "server_metadata_url": "https://login.example.com/.well-known/openid-configuration",
}


def test_with_streamlit_login_the_e_mail_is_the_name():
    project = open_demo()
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.session_state["project"] = "demo"
    at.secrets["auth"] = AUTH
    at.user = {"is_logged_in": False}
    at.run()
    assert [b.label for b in at.button] == ["Log in"]
    assert not at.text_input  # no name box: the login names the user

    at.user = {"is_logged_in": True, "email": "ada@example.com", "name": "Ada"}
    at.session_state["annotator"] = "mallory"  # a typed name never counts beside a login
    at.run()
    assert not at.exception, at.exception
    assert "ada@example.com" in at.sidebar.caption[0].value.replace("\\", "")
    at.switch_page("pages/teach.py").run()
    key = next(b.key for b in at.button if b.key and b.key.startswith("label_"))
    time.sleep(0.35)
    at.button(key=key).click().run()
    assert project.history()["user"].tolist()[-1] == "ada@example.com"


def test_review_shows_agreement_resolves_and_the_counting_rule_feeds_the_export():
    project = open_demo()
    names = [name for name, _ in project.labels()]
    # ada and bob on five documents, disagreeing on two; cy agrees with bob on the first.
    for doc, (ada, bob) in enumerate([(0, 0), (1, 1), (2, 2), (0, 1), (3, 2)]):
        project.annotate(doc, names[ada], user="ada")
        project.annotate(doc, names[bob], user="bob")
    project.annotate(3, names[1], user="cy")
    at = app()
    sign_in(at, "rev")
    at.switch_page("pages/review.py").run()
    assert not at.exception, at.exception
    metrics = {m.label: m.value for m in at.metric}
    expected = cohen_kappa_score([0, 1, 2, 0, 3], [0, 1, 2, 1, 2])
    assert metrics["Cohen's kappa, ada and bob"] == f"{expected:.2f}"
    assert "2 documents with different labels, 2 not resolved yet" in at.caption[0].value

    # majority: document 3 is bob's and cy's Sports over ada's World
    at.segmented_control(key="counting_rule").set_value("majority").run()
    assert project.get_setting("counting_rule") == "majority"
    counted = project.annotations(rule="majority").set_index("doc_id")["label"]
    assert counted[3] == names[1]

    # the reviewer settles document 4 as ada had it; the rule "reviewer" counts that
    project.resolve([4], names[3], user="rev")  # what the Resolve button calls
    at.segmented_control(key="counting_rule").set_value("reviewer").run()
    assert not at.exception, at.exception
    assert "1 not resolved yet" in at.caption[0].value
    assert project.history(4)["action"].tolist()[-1] == "resolve"
    at.switch_page("pages/export.py").run()
    assert not at.exception, at.exception
    exported = open_project("demo", create=False).annotations(rule="reviewer")
    assert exported.set_index("doc_id")["label"][4] == names[3]


def test_likely_mistakes_list_the_label_a_fit_without_it_contradicts():
    news = pd.read_csv(config.shared_data_dir() / "ag_news" / "normalized_test.csv")
    news = news.groupby("label").sample(50, random_state=0).reset_index(drop=True)
    project = open_project("news")
    project.set_documents(news[["text"]].assign(source="ag.csv"))
    project.set_labels([(name, "") for name in sorted(news["label"].unique())], user="setup")
    for doc, gold in enumerate(news["label"]):
        if doc % 50 < 6:  # six of each class labeled, as they are
            project.annotate(doc, gold, user="ada")
    wrong = int(news.index[news["label"] == "Sports"][0])
    project.annotate(wrong, "Business", user="ada")  # a sports story filed as Business
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.session_state["project"] = "news"
    sign_in(at.run(), "rev")
    at.switch_page("pages/review.py").run()
    deadline = time.monotonic() + 120
    while "Cross-validating" in " ".join(c.value for c in at.caption):
        assert time.monotonic() < deadline
        time.sleep(1)
        at.run()
    assert not at.exception, at.exception
    table = at.dataframe(key="mistakes_table").value
    flagged = table.set_index("doc_id")
    assert (flagged.loc[wrong, "label"], flagged.loc[wrong, "suggested"]) == ("Business", "Sports")
    assert "a fit without this label gives Sports" in flagged.loc[wrong, "reason"]

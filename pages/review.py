"""Review: which label counts when annotators differ, how far they agree (Cohen's kappa), the
documents they disagree on with a resolve action, and the human labels that are probably wrong."""

import pandas as pd
import plotly.express as px
import streamlit as st

from fewshot.agreement import disagreements, label_kappa, pairwise_kappa
from fewshot.store import COUNTING_RULES
from pages import common

RULES = {
    "latest": "the latest label",
    "majority": "the majority",
    "reviewer": "the reviewer's resolution",
}
PREVIEW_CHARS = 160
MAX_PAIR_METRICS = 3  # pairs shown as a number each; more as a table


def picked_document(table: pd.DataFrame, headings: dict[str, str], key: str) -> int | None:
    """The table (its columns named in headings, then the start of each document's text) to pick
    one row from; the picked row's position, its document shown in full below, or None."""
    texts = state.workspace.texts
    shown = table[list(headings)].assign(text=[texts[d][:PREVIEW_CHARS] for d in table["doc_id"]])
    picked = st.dataframe(
        shown, hide_index=True, on_select="rerun", selection_mode="single-row", key=key,
        column_config=headings,
    )  # fmt: skip
    if not picked.selection.rows:
        return None
    row = picked.selection.rows[0]
    doc = int(table["doc_id"].iloc[row])
    st.markdown(f"**Document {doc}**: {common.escape_markdown(texts[doc])}")
    return row


def resolve(doc: int, label: str) -> None:
    """Button callback: the reviewer's label for the document, an annotation of its own."""
    state.project.resolve([doc], label, user=common.annotator())
    st.toast(f"Document {doc} resolved as {common.escape_markdown(label)}")


def relabel(doc: int, label: str) -> None:
    """Button callback: the label a fit without it suggests, by this annotator (undoable)."""
    state.project.annotate(doc, label, user=common.annotator())
    st.toast(f"Document {doc}: {common.escape_markdown(label)}")


st.title("Review")
state = common.current()
project, names = state.project, state.labels.names
votes = project.votes()
votes = votes[votes["label"].str.casefold().isin({n.casefold() for n in names})]
people = sorted(votes.loc[~votes["resolution"], "user"].unique())

rule = project.get_setting(common.COUNTING_RULE, "latest")
chosen = st.segmented_control(
    "When annotators differ, count",
    COUNTING_RULES,
    format_func=RULES.get,
    default=rule,
    key="counting_rule",
    help="The classifier, the Teach page and the export use the label this picks. Without a "
    "resolution, 'the reviewer's resolution' counts the latest label; a tie in 'the majority' "
    "goes to the latest of the tied labels.",
)
if chosen is not None and chosen != rule:
    project.set_setting(common.COUNTING_RULE, chosen)
    st.rerun()

st.subheader("Agreement")
if len(people) < 2:
    who = f"only {common.escape_markdown(people[0])} has" if people else "nobody has"
    st.info(
        f"So far {who} labeled documents here. Agreement needs two people labeling the same "
        "documents: with a shared store (FEWSHOT_DATABASE_URL) each browser labels under its "
        "own name, and their overlap shows here."
    )
else:
    pairs = pairwise_kappa(votes)
    if pairs.empty:
        st.info("No document has labels from two annotators yet.")
    else:
        left, right = st.columns(2)
        if len(pairs) <= MAX_PAIR_METRICS:
            for column, pair in zip(left.columns(len(pairs)), pairs.itertuples()):
                kappa = "undefined" if pd.isna(pair.kappa) else f"{pair.kappa:.2f}"
                column.metric(
                    f"Cohen's kappa, {pair.annotator_a} and {pair.annotator_b}", kappa,
                    help=f"On the {pair.documents} documents both labeled, of which "
                    f"{pair.agreement:.0%} got the same label. 1 is full agreement, 0 what "
                    "chance gives.",
                )  # fmt: skip
        else:
            left.dataframe(
                pairs,
                hide_index=True,
                column_config={
                    "annotator_a": "annotator", "annotator_b": "and",
                    "documents": st.column_config.NumberColumn("both labeled"),
                    "agreement": st.column_config.NumberColumn("same label", format="percent"),
                    "kappa": st.column_config.NumberColumn("Cohen's kappa", format="%.2f"),
                },
            )  # fmt: skip
        per_label = label_kappa(votes, names).dropna()
        if not per_label.empty:
            figure = px.bar(per_label, x="kappa", y="label", orientation="h", range_x=[-1, 1])
            figure.update_layout(title="Kappa per label (this label or not)")
            right.plotly_chart(common.compact(figure, 60 + 30 * len(per_label)))

st.subheader("Disagreements")
table = disagreements(votes)
if table.empty:
    st.success("Annotators agree on every document they share.", icon=":material/check:")
else:
    unresolved = int(table["resolved"].isna().sum())
    st.caption(
        f"{common.plural(len(table), 'document')} with different labels, {unresolved} not "
        "resolved yet. Pick one to resolve it."
    )
    shown = table.assign(resolved=table["resolved"].fillna(""))
    headings = {"doc_id": "document", "votes": "votes", "resolved": "resolved as"}
    if (row := picked_document(shown, headings, "disagreements_table")) is not None:
        doc = int(table["doc_id"].iloc[row])
        columns = st.columns(min(len(names), 6))
        for i, name in enumerate(names):
            columns[i % len(columns)].button(
                f"Resolve as {name}", key=f"resolve_{doc}_{i}", on_click=resolve, args=(doc, name)
            )

st.subheader("Likely mistakes")
if len(state.human) < 4:
    st.info("With four human labels or more, the labels a fit without them contradicts show here.")
elif not (job := state.likely_mistakes()).done():
    st.caption(":material/hourglass_top: Cross-validating the human labels in the background...")
    common.rerun_when_done(job)
else:
    mistakes = job.result()
    if mistakes.empty:
        st.success("No human label is contradicted by a fit without it.", icon=":material/check:")
    else:
        st.caption(
            f"{common.plural(len(mistakes), 'human label')} that a fit on the other labels "
            "contradicts (cross-validated), the least likely as labeled first. Pick one to "
            "relabel it."
        )
        headings = {"doc_id": "document", "label": "human label", "suggested": "suggested",
                    "reason": "reason"}  # fmt: skip
        if (row := picked_document(mistakes, headings, "mistakes_table")) is not None:
            doc, suggested = int(mistakes["doc_id"].iloc[row]), mistakes["suggested"].iloc[row]
            st.button(
                f"Relabel as {suggested}", key=f"relabel_{doc}", on_click=relabel,
                args=(doc, suggested), type="primary",
            )  # fmt: skip

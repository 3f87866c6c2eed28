"""Map: the corpus in 2-D, coloured by label, with the labels drawn in; lasso a cluster, label it.

The page never waits for UMAP: it draws the PCA layout at once and swaps in UMAP when the
background fit is done (the first fit in a server process pays up to a minute of compilation).
"""

import html
import re

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st
from plotly.colors import qualitative

from fewshot import config
from fewshot.projection import MIN_UMAP_POINTS, LayoutCache, drawn, plot_sample
from fewshot.views import DEFAULT_VIEW, VIEWS
from pages import common, finder

UNLABELED = "(no human label)"
UNLABELED_COLOUR = "#c3c7cf"
HOVER_CHARS = 240
WRAP = re.compile(r"\S.{0,68}\S(?=\s|$)|\S+")  # lines of at most 70 characters, broken at spaces


@st.cache_resource(show_spinner=False)
def layout_cache(directory: str) -> LayoutCache:
    """One cache per data directory and process, so background fits outlive page runs."""
    return LayoutCache(directory)


def colours(names: tuple[str, ...]) -> dict[str, str]:
    palette = qualitative.Plotly if len(names) <= 10 else qualitative.Alphabet
    return {name: palette[i % len(palette)] for i, name in enumerate(names)}


def hover_texts(rows: pd.DataFrame) -> list[str]:
    """Plotly hover labels are HTML-ish: the user's text escaped, wrapped, kept short. A regex
    wraps, not textwrap: that took 0.4 s a run for the map's 5,000 points."""
    return [
        "<br>".join(html.escape(line) for line in WRAP.findall(text[:HOVER_CHARS]))
        + ("…" if len(text) > HOVER_CHARS else "")
        + f"<br><br><b>Predicted:</b> {html.escape(predicted)} ({score:.2f})"
        + f"<br><b>Human label:</b> {html.escape(human if isinstance(human, str) else 'none')}"
        + f"<br><b>Document</b> {doc}"
        for text, predicted, score, human, doc in zip(
            rows["text"], rows["predicted_label"], rows["score"], rows["human_label"], rows["id"]
        )
    ]


def _outline(rows: pd.DataFrame) -> dict:
    """Search matches stand out (dark ring, drawn larger) and the rest fade, when there is a
    search."""
    if "found" not in rows:
        return {}
    found = rows["found"].to_numpy()
    return {
        "size": np.where(found, 10, 5).tolist(),
        "opacity": np.where(found, 1.0, 0.35).tolist(),
        "line": {"width": np.where(found, 2, 0).tolist(), "color": "#111827"},
    }


def figure(
    shown: pd.DataFrame, colour_by: str, label_xy: np.ndarray, names: tuple[str, ...]
) -> go.Figure:
    """One trace per label (so the legend toggles them), documents carry their id as customdata."""
    palette = colours(names)
    fig = go.Figure()
    groups = [*names, UNLABELED] if colour_by == "human_label" else list(names)
    for name in groups:
        rows = shown[shown[colour_by].fillna(UNLABELED) == name]
        if rows.empty:
            continue
        fig.add_trace(
            go.Scatter(
                x=rows["x"],
                y=rows["y"],
                mode="markers",
                name=f"{name} ({len(rows):,})",
                marker={
                    "size": 7,
                    "color": palette.get(name, UNLABELED_COLOUR),
                    "opacity": 0.8,
                    **_outline(rows),
                },
                customdata=rows["id"].tolist(),  # a plain list: one int per point
                hovertext=hover_texts(rows),
                hovertemplate="%{hovertext}<extra></extra>",
            )
        )
    fig.add_trace(
        go.Scatter(
            x=label_xy[:, 0],
            y=label_xy[:, 1],
            mode="markers+text",
            name="Labels",
            text=[f"<b>{html.escape(n)}</b>" for n in names],
            textposition="top center",
            textfont={"size": 15, "color": "#111827", "shadow": "auto"},
            marker={
                "size": 22,
                "symbol": "star",
                "color": [palette[n] for n in names],
                "line": {"width": 2, "color": "#1f2937"},
            },
            hovertemplate="Label: %{text}<extra></extra>",
        )
    )
    fig.update_layout(
        height=640,
        margin={"l": 10, "r": 10, "t": 40, "b": 10},  # room for the toolbar above the legend
        dragmode="lasso",
        hoverlabel={"align": "left"},
        legend={"title": {"text": "Click to hide or show"}, "itemsizing": "constant"},
        xaxis={"showticklabels": False, "title": None, "zeroline": False},
        yaxis={"showticklabels": False, "title": None, "zeroline": False},
    )
    return fig


st.title("Map")
now = common.current()

left, right = st.columns(2)
view = left.radio(
    "Embedding", list(VIEWS), format_func=VIEWS.get, horizontal=True, key="map_view",
    index=list(VIEWS).index(DEFAULT_VIEW),
)  # fmt: skip
colour_by = right.radio(
    "Colour by", ["predicted_label", "human_label"], horizontal=True, key="map_colour",
    format_func={"predicted_label": "Predicted label", "human_label": "Human label"}.get,
)  # fmt: skip

query = finder.search_box("map_search", now)
prediction = now.predict(view)
common.refresh_when_calibrated(now, prediction)
table = now.table(prediction)
docs = now.workspace.views[view]
sample = plot_sample(len(docs))
cache = layout_cache(str(config.data_dir() / "layouts"))
layout = cache.layout(docs[sample])
status = cache.status(docs[sample])
label_xy = layout.transform(now.workspace.label_vectors(now.labels)[view])
chart = f"map-{view}-{layout.method}-{st.session_state.get('map_search_round', 0)}"

if layout.method == "umap":
    st.caption(f"UMAP layout of the {VIEWS[view]} embeddings (cosine, 15 neighbours).")
elif status == "too few points":
    st.caption(f"PCA layout: UMAP needs at least {MIN_UMAP_POINTS} documents.")
elif status.startswith("failed"):
    st.warning(f"UMAP could not lay out these documents ({status}); showing PCA instead.")
else:
    st.caption(
        f"Quick PCA layout of the {VIEWS[view]} embeddings. The UMAP layout is being computed in "
        "the background (the first one after a server start takes up to a minute); it replaces "
        "this one by itself when ready."
    )

    @st.fragment(run_every=2)
    def swap_in_umap() -> None:
        """Poll the background fit, saying how far it is; rerun the page once it has finished
        (or failed), but not under a selection: the new layout would drop what the user is
        about to label."""
        if cache.status(docs[sample]) == "computing":
            st.caption(f":material/hourglass_top: UMAP: {cache.progress(docs[sample])}.")
        elif (st.session_state.get(chart) or {}).get("selection", {}).get("points"):
            st.caption(
                ":material/check: The UMAP layout is ready; it replaces this one once nothing is "
                "selected."
            )
        else:
            st.rerun()

    swap_in_umap()
rows, xy = drawn(layout, docs, sample, np.fromiter(now.human, np.int64, len(now.human)))
if len(sample) < len(docs):
    extra = len(rows) - len(sample)
    st.caption(
        f"Showing {len(rows):,} of the {len(docs):,} documents: a random sample of "
        f"{len(sample):,} (the same every time; at most {config.plot_points():,} are laid out)"
        + (f" plus the {extra:,} human-labeled documents outside it, placed beside their "
           "nearest neighbours in the sample" if extra else "")
        + ". Human-labeled documents are always shown; a selection labels only documents shown."
    )  # fmt: skip

shown = table.iloc[rows].assign(x=xy[:, 0], y=xy[:, 1])
found = finder.search(now, prediction, query)
if found is not None:
    shown = shown.assign(found=shown["id"].isin(found["id"]))
    missing = len(found) - int(shown["found"].sum())
    st.caption(
        f"{common.plural(len(found), 'document')} found, outlined on the map"
        + (f"; {missing:,} of them are outside the plotted sample" if missing else "")
        + "."
    )
event = st.plotly_chart(
    figure(shown, colour_by, label_xy, now.labels.names),
    on_select="rerun",
    selection_mode=("lasso", "box"),
    key=chart,
    config={"displaylogo": False},
)

finder.notice("map_search", now.project)
selected = sorted({int(p["customdata"]) for p in event.selection.points if "customdata" in p})
if not selected and found is not None:
    st.subheader("Search results")
    st.caption("Drawn with a dark outline on the map; a lasso or box narrows them down.")
    ids = finder.results("map_search", now, found, query)
    if ids:
        finder.bulk_label("map_search", now, prediction, ids)
    st.stop()
if not selected:
    st.info(
        "Draw a lasso or a box around documents on the map to label them all at once, or search "
        "for them above."
    )
    st.stop()

rows = table.iloc[selected]
st.subheader(f"{len(selected):,} documents selected")
st.dataframe(
    rows[["id", "text", "predicted_label", "score", "human_label"]],
    hide_index=True,
    height=min(38 + 35 * len(rows), 300),
    column_config={
        "id": "Doc",
        "text": st.column_config.TextColumn("Text", width="large"),
        "predicted_label": "Predicted",
        "score": st.column_config.NumberColumn("Score", format="%.2f"),
        "human_label": "Human label",
    },
)
finder.bulk_label("map_search", now, prediction, selected)

"""Review: label the visits where a verdict teaches most, and see how far each evaluator agrees with you.

Pick an evaluator (and a stage); the queue shows the unreviewed visit whose label teaches most (near the
threshold that decided it, stratified over stages and score bands: :func:`journeyscope.warehouse.reviews.
review_queue`), with the evaluator's verdict, its reason and the visit's transcript. Keys (Streamlit button
shortcuts, anywhere on the page but inside a text box): **P** pass, **F** fail, **S** skip; to add a note,
type it, press Tab (Esc does not leave the box), then the key; or click. Each verdict is stored at once
through the warehouse (or the API) with your name and the time, and the next visit comes up.

The second tab is the agreement of the evaluator with the reviews (overall, per journey type and stage,
each engine on its own row) and the thresholds adopted so far; a suggested threshold can be adopted there,
with a reason: a new, recorded version.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st
from journeyscope.dashboard import data
from journeyscope.dashboard.context import ALL, PageContext, run_page
from journeyscope.dashboard.transcript import TRANSCRIPT_CSS, clock, turn_html
from journeyscope.warehouse.audit import default_actor

TITLE = "Review"
#: The verdict buttons' keyboard shortcuts (C and R are Streamlit's own).
KEYS = {"pass": "P", "fail": "F", "skip": "S"}
#: Visits read ahead from the queue (skipped ones are left out of it).
AHEAD = 20


def _key(item: dict[str, Any]) -> tuple[str, str, int, str]:
    return (item["journey_id"], item["stage"], int(item["visit"]), item["evaluator"])


def _visit(ctx: PageContext, item: dict[str, Any]) -> None:
    """The visit's turns (the evidence its scores cite marked), and the journey's earlier visits folded away."""
    detail = ctx.journey(item["journey_id"])
    if detail is None:
        st.warning(f"Journey {item['journey_id']!r} is no longer in the warehouse.")
        return
    st.markdown(TRANSCRIPT_CSS, unsafe_allow_html=True)
    visits = detail["visits"]
    here = next((i for i, v in enumerate(visits) if v["stage"] == item["stage"] and v["visit"] == item["visit"]), None)
    if here is None:
        st.warning("This visit is no longer in the warehouse.")
        return

    def body(v: dict[str, Any]) -> str:
        scores = {e["evaluator"]: e for e in v["evaluations"]}
        turns = "".join(turn_html(t, scores) for t in v["transcript"])
        return f'<div class="js-visit">{turns or "<div class=js-meta>no turns</div>"}</div>'

    if here:
        with st.expander(f"Earlier in this journey ({here} visit(s))"):
            for v in visits[:here]:
                st.markdown(f"**{v['stage']}** · visit {v['visit']} · {v['outcome']}")
                st.markdown(body(v), unsafe_allow_html=True)
    v = visits[here]
    st.markdown(f"**{v['stage']}** · visit {v['visit']} · {v.get('channel') or '?'} · {v['outcome']} · "
                f"{clock(v['started_at'])}–{clock(v['ended_at'])}")
    st.markdown(body(v), unsafe_allow_html=True)


def _queue(ctx: PageContext, evaluator: str, stage: str | None, reviewer: str) -> None:
    skipped: set[tuple[str, str, int, str]] = st.session_state.setdefault("rv_skipped", set())
    saved = st.session_state.pop("rv_saved", None)
    if saved:
        st.success(saved, icon=":material/check:")
    ahead = ctx.source.review_queue(evaluator, stage, limit=AHEAD + len(skipped))
    queue = [q for q in ahead if _key(q) not in skipped]
    if not queue:
        where = f" at stage {stage}" if stage else ""
        st.info(f"Nothing left to review for {evaluator}{where}" + (" (some skipped this session)." if skipped else "."))
        return
    item = queue[0]
    verdict = "passed" if item["passed"] else "failed"
    st.markdown(f"**{item['journey_id']}** · {item.get('journey_name') or '?'} · stage **{item['stage']}** · "
                f"visit {item['visit']}")
    st.markdown(f"`{evaluator}` ({item['engine']}) scored **{item['score']:.2f}**: **{verdict}** at threshold "
                f"{item['threshold']:g}")
    st.caption(item.get("reason") or "")
    with st.form("rv_form", clear_on_submit=True, border=False):
        note = st.text_input("Note (optional)", key="rv_note", placeholder="what the evaluator got right or wrong")
        left, middle, right = st.columns(3)
        passed = left.form_submit_button(f"Pass ({KEYS['pass']})", shortcut=KEYS["pass"], type="primary",
                                         icon=":material/thumb_up:", use_container_width=True)
        failed = middle.form_submit_button(f"Fail ({KEYS['fail']})", shortcut=KEYS["fail"],
                                           icon=":material/thumb_down:", use_container_width=True)
        skip = right.form_submit_button(f"Skip ({KEYS['skip']})", shortcut=KEYS["skip"],
                                        icon=":material/skip_next:", use_container_width=True)
    if passed or failed:
        review = {"journey_id": item["journey_id"], "stage": item["stage"], "visit": int(item["visit"]),
                  "evaluator": evaluator, "passed": bool(passed), "note": note or None}
        result = ctx.source.add_reviews([review], reviewer)
        if result.get("accepted"):
            data.clear()  # agreement and counts changed
            st.session_state["rv_saved"] = (f"Saved: {'pass' if passed else 'fail'} for {item['journey_id']} · "
                                            f"{item['stage']} · visit {item['visit']}.")
            st.rerun()
        st.error("Not saved: " + "; ".join(r["reason"] for r in result.get("rejected", [])))
    if skip:
        skipped.add(_key(item))
        st.rerun()
    st.caption(f"{len(queue) - 1}{'+' if len(ahead) >= AHEAD + len(skipped) else ''} more in the queue. "
               f"Keys: {KEYS['pass']} pass · {KEYS['fail']} fail · {KEYS['skip']} skip (after a note: Tab, then the key).")
    _visit(ctx, item)


def _ci(row: dict[str, Any], name: str) -> str:
    value, low, high = row.get(name), row.get(f"{name}_ci_low"), row.get(f"{name}_ci_high")
    if value is None:
        return "–"
    return f"{value:.2f} [{low:.2f}–{high:.2f}]" if low is not None and high is not None else f"{value:.2f}"


def _scope(row: dict[str, Any]) -> str:
    if row.get("journey") is None:
        return "overall"
    return row["journey"] + (f" / {row['stage']}" if row.get("stage") else "")


def _agreement(ctx: PageContext, evaluator: str, stage: str | None, reviewer: str) -> None:
    report = ctx.read("agreement", evaluator=evaluator)
    rows = [r for r in report["evaluators"] if stage is None or r["stage"] in (None, stage)]
    if not rows:
        st.info(f"No reviewed visit of {evaluator} has a score yet: review some in the queue, or import reviews "
                "with `journeyscope reviews import FILE.jsonl`.")
    else:
        frame = pd.DataFrame([{
            "engine": r["engine"], "scope": _scope(r), "n": r["n"],
            "reviewed pass/fail": f"{r['reviewed_pass']}/{r['reviewed_fail']}",
            "AUROC": _ci(r, "auroc"), "kappa": _ci(r, "kappa"), "precision": _ci(r, "precision"),
            "recall": _ci(r, "recall"),
            "threshold": r["threshold"], "suggested": r["suggested_threshold"],
            "note": r.get("suggestion_note") or "",
        } for r in rows])
        st.dataframe(frame, hide_index=True, key="rv_agreement")
        st.caption(f"Intervals: {report['intervals']}. Suggested threshold: {report['suggestion_rule']}.")
        if st.button("Score the reviewed visits with the other engine", icon=":material/compare:",
                     help="Local, and the llm judge where JOURNEYSCOPE_LLM_* is configured (for the API: on the "
                          "server), so both engines show on the same reviews. Cached: a second press asks nothing."):
            done = ctx.source.score_reviewed()
            data.clear()
            st.success("; ".join(f"{d['engine']}: {d['scored']} scored, {d['up_to_date']} already scored"
                                 + (f", {d['no_consent']} kept from the judge (no consent)" if d["no_consent"] else "")
                                 for d in done))
        _adopt(ctx, evaluator, rows, reviewer)
    history = ctx.read("thresholds", evaluator=evaluator)["thresholds"]
    st.subheader("Adopted thresholds")
    if not history:
        st.caption(f"None: {evaluator} decides at its built-in threshold.")
    else:
        st.dataframe(pd.DataFrame(history)[["version", "engine", "journey", "stage", "threshold", "previous",
                                            "reviews", "actor", "adopted_at", "reason"]],
                     hide_index=True, key="rv_history")


def _adopt(ctx: PageContext, evaluator: str, rows: list[dict[str, Any]], reviewer: str) -> None:
    """Adopt a threshold for one row's scope and engine: an explicit, recorded version."""
    with st.form("rv_adopt", border=True):
        st.markdown("**Adopt a threshold**: a new version, kept with who, when, why and the value it replaces; "
                    "stored results it covers are decided again (their scores never change).")
        labels = {i: f"{r['engine']} · {_scope(r)} (now {r['threshold']:g}"
                     + (f", suggested {r['suggested_threshold']:g})" if r["suggested_threshold"] is not None else ")")
                  for i, r in enumerate(rows)}
        picked = st.selectbox("Scope", list(labels), format_func=labels.get, key="rv_adopt_scope")
        row = rows[picked]
        default = row["suggested_threshold"] if row["suggested_threshold"] is not None else row["threshold"]
        threshold = st.number_input("Threshold (a visit passes at or above it)", min_value=0.0, max_value=1.0,
                                    value=float(default if default is not None else 0.5), step=0.01, format="%.3f",
                                    key="rv_adopt_threshold")
        reason = st.text_input("Reason (required)", key="rv_adopt_reason",
                               placeholder="e.g. calibrated on 240 reviews of week 48")
        if st.form_submit_button("Adopt threshold", icon=":material/tune:"):
            if not reason.strip():
                st.error("Say why: the reason is kept with the version.")
                return
            adopted = ctx.source.adopt_threshold(evaluator, float(threshold), reason, engine=row["engine"],
                                                 journey=row["journey"], stage=row["stage"], actor=reviewer)
            data.clear()
            st.success(f"Adopted {adopted['threshold']:g} as version {adopted['version']} "
                       f"({adopted['decided']} stored results decided by it).")


def render(ctx: PageContext) -> None:
    st.title("Review")
    summary = ctx.source.review_summary()["evaluators"]  # not cached: every review changes it
    if not summary:
        st.info("Nothing scored yet: run `journeyscope evaluate`, then press Refresh data.")
        return
    labels = {e["evaluator"]: f"{e['evaluator']} · {e['reviewed']} of {e['scored']} reviewed" for e in summary}
    first, second, third = st.columns([3, 2, 2])
    evaluator = first.selectbox("Evaluator", list(labels), format_func=labels.get, key="rv_evaluator")
    stages = next(e["stages"] for e in summary if e["evaluator"] == evaluator)
    picked = second.selectbox("Stage", [ALL, *stages], key="rv_stage")
    stage = None if picked == ALL else picked
    reviewer = third.text_input("Reviewer", value=default_actor(), key="rv_reviewer").strip() or default_actor()
    queue, agreement = st.tabs(["Queue", "Agreement and thresholds"])
    with queue:
        _queue(ctx, evaluator, stage, reviewer)
    with agreement:
        _agreement(ctx, evaluator, stage, reviewer)


if __name__ == "__main__":  # executed by st.navigation as a page
    run_page(render)

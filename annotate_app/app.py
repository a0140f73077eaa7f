"""The rating app (Streamlit): the paper's human protocol on a run folder.

A rater sees one generated image at a time with the action's exemplars and the subject's
name, and answers two questions: does the image show the exemplars' action, and is the
subject right (recognisably it, not deformed)? Method names are never shown; the order is
shuffled per rater (seeded by the name, so a rater who comes back continues in the same
order). Each click is stored in ``RUN_DIR/ratings.sqlite`` at once. Once both are
answered the next image comes; "Next" leaves an image for later (it comes back after the
others).

Who rates. With ``RUN_DIR/raters.json`` (invite mode, ``actionbench annotate RUN --raters
alice,bob``) the app accepts only a valid link: the ``token`` in its URL names the rater,
who gets their share of the study (:mod:`annotate_app.plan`: K raters per image, gold
items, attention checks); no token, an unknown or a revoked one is refused and nothing can
be rated. Without it (open mode, one local user; the CLI then serves on 127.0.0.1 only)
the rater types a name and rates every image.

Everything has a key, so the ~5,900 images of the paper's protocol can be rated without
the mouse: 1 / 2 answer the first question yes / no, 3 / 4 the second, N (or the right
arrow) is "Next". Streamlit has no key bindings: a small script in an iframe listens on
the page and clicks the button whose label names the key.

Start with ``actionbench annotate RUN_DIR`` (or ``streamlit run annotate_app/app.py -- RUN_DIR``).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import streamlit as st

from annotate_app import invites
from annotate_app.plan import benchmark_folder, open_queue, study_queue
from annotate_app.store import widget_key
from evaluate.ratings import RatingStore
from evaluate.study import Item, shown_exemplars


def _run_dir() -> Path:
    if "--" in sys.argv:
        args = sys.argv[sys.argv.index("--") + 1:]
    else:
        args = sys.argv[1:]
    path = os.environ.get("ACTIONBENCH_RUN_DIR") or (args[0] if args else "")
    return Path(path)


@st.cache_resource
def _store(run_dir: str) -> RatingStore:
    return RatingStore(run_dir)


@st.cache_data
def _manifest(run_dir: str):
    from evaluate.manifest import read_manifest

    return read_manifest(run_dir)


@st.cache_data
def _exemplars(run_dir: str, action: str) -> list[str]:
    from actionbench.bench import load_action

    bench = benchmark_folder(run_dir)
    if bench is None or not (bench / action).is_dir():
        return []
    return [str(e.image_path) for e in load_action(bench / action, verify_images=False).exemplars]


@st.cache_data
def _data_uri(path: str, height: int) -> str:
    """An image as a small inline JPEG/PNG data URI.

    Inline, not ``st.image``: Streamlit 1.60's media endpoint fails (HTTP 500) beside
    starlette 1.x's gzip middleware, and inline thumbnails need no media server at all.
    """
    import base64
    import io

    from PIL import Image

    with Image.open(path) as im:
        im = im.convert("RGB")
        if im.height > height:
            im = im.resize((max(1, round(im.width * height / im.height)), height), Image.LANCZOS)
        elif im.height < height:  # small generations: scale up without blurring
            im = im.resize((round(im.width * height / im.height), height), Image.NEAREST)
        buf = io.BytesIO()
        im.save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _images_html(paths: list[str], height: int, caption: str = "") -> str:
    imgs = "".join(f'<img src="{_data_uri(p, height)}" style="height:{height}px;margin:2px;border-radius:3px">' for p in paths)
    cap = f'<div style="font-size:0.8em;color:#666">{caption}</div>' if caption else ""
    return f"<div>{imgs}{cap}</div>"


# Button labels name their key; the key script finds a button by its label.
LABELS = {("action_ok", True): "Yes (1)", ("action_ok", False): "No (2)",
          ("subject_ok", True): "Yes (3)", ("subject_ok", False): "No (4)"}
NEXT_LABEL = "Next (N)"
KEYS = {"1": LABELS["action_ok", True], "2": LABELS["action_ok", False], "3": LABELS["subject_ok", True],
        "4": LABELS["subject_ok", False], "n": NEXT_LABEL, "ArrowRight": NEXT_LABEL}
SHORTCUTS_HELP = "Keys: 1 / 2 answer the first question yes / no, 3 / 4 the second; N or → moves on to the next image (this one comes back later)."

# Runs in an iframe of the app's own origin; listens on the app's page. Installed once per
# page (a re-created iframe replaces the listener); ignores repeats, modifier chords and
# keys typed into a text field. The first time, it takes the focus off the name field the
# rater just pressed Enter in, so the next key rates instead of typing.
KEY_SCRIPT = """<script>
(function () {
  const page = window.parent, doc = page.document, keys = %s;
  const old = page.__actionbenchKeys;
  if (old) doc.removeEventListener("keydown", old, true);
  else if (doc.activeElement && doc.activeElement.tagName === "INPUT") doc.activeElement.blur();
  function onKey(e) {
    if (e.repeat || e.ctrlKey || e.metaKey || e.altKey || e.defaultPrevented) return;
    const t = e.target;
    if (t && (t.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(t.tagName))) return;
    const label = keys[e.key.length === 1 ? e.key.toLowerCase() : e.key];
    if (!label) return;
    const button = [...doc.querySelectorAll("button")].find(b => b.innerText.trim() === label && !b.disabled);
    if (!button) return;
    e.preventDefault();
    button.click();
  }
  page.__actionbenchKeys = onKey;
  doc.addEventListener("keydown", onKey, true);
})();
</script>"""


def _key_script() -> None:
    import json

    html = KEY_SCRIPT % json.dumps(KEYS)
    if hasattr(st, "iframe"):  # streamlit >= 1.5x; components.v1.html is deprecated there
        st.iframe(html, height=1, tab_index=-1)
    else:
        import streamlit.components.v1 as components

        components.html(html, height=0)


def _rater(run_dir: Path) -> str | None:
    """Who is rating: in invite mode the rater of the link's token (read from disk now, so a
    revoked link stops at once), in open mode the name typed in the sidebar."""
    if invites.has_raters(run_dir):
        return invites.rater_for_token(run_dir, st.query_params.get("token"))
    return st.session_state.get("rater", "").strip() or None


def _answer(run_dir: str, item: Item, question: str, value: bool) -> None:
    """An answer button's callback. The rater is resolved again here, from the token, not
    taken from the page that drew the button: a link revoked since then writes nothing, and
    no page can write for another rater."""
    rater = _rater(Path(run_dir))
    if not rater:
        return
    store = _store(run_dir)
    if item.kind == "image":
        store.answer(rater, item.item_id, question, value)
    else:
        store.answer_check(rater, item.item_id, item.kind, item.expected, question, value)


def _later(rater: str, image_id: str) -> None:
    """The "Next" button: this image goes after every other unrated one (for this session)."""
    later = st.session_state.setdefault("later", {}).setdefault(rater, [])
    if image_id in later:
        later.remove(image_id)
    later.append(image_id)
    st.session_state.setdefault("current", {}).pop(rater, None)


def _refuse(run_dir: Path) -> None:
    if st.query_params.get("token"):
        st.error("This link is not valid: it is unknown or has been revoked. Ask the study's organiser for a new link.")
    else:
        st.error("This rating app is invite-only: open it with the link you were given (it ends in ?token=...).")


def _complete(answers: dict) -> bool:
    return bool(answers) and None not in answers.values()


def main() -> None:
    st.set_page_config(page_title="ActionBench rating", layout="wide")
    run_dir = _run_dir()
    if not (run_dir / "manifest").is_dir() and not (run_dir / "manifest.csv").exists():
        st.error(f"{run_dir}: not a run folder (start with `actionbench annotate RUN_DIR`)")
        return
    invited = invites.has_raters(run_dir)
    st.sidebar.title("ActionBench rating")
    if invited:
        rater = _rater(run_dir)
        if rater is None:
            _refuse(run_dir)
            return
        st.sidebar.markdown(f"Rating as **{rater}**")
        st.sidebar.caption("This link is yours alone: do not share it.")
    else:
        st.sidebar.text_input("Your name", key="rater")
        rater = _rater(run_dir)
        if not rater:
            st.info("Type your name in the sidebar to start. Several raters can rate the same run; each rates every image.")
            return
    manifest = _manifest(str(run_dir))
    store = _store(str(run_dir))
    if invited:
        design = invites.load_design(run_dir)
        items = study_queue(run_dir, manifest, store.frame(), rater, invites.active_raters(run_dir), design)
        checks = store.checks_for_rater(rater)
    else:
        design, items, checks = None, open_queue(manifest, rater), {}
    answers = store.for_rater(rater)

    def given(item: Item) -> dict:
        return (answers if item.kind == "image" else checks).get(item.item_id, {})

    done = [it for it in items if _complete(given(it))]
    st.sidebar.progress(len(done) / max(len(items), 1), text=f"{len(done)} of {len(items)} rated")
    st.sidebar.caption("Each answer is saved the moment you click it; you can close the tab and come back.")

    later = {i: k for k, i in enumerate(st.session_state.get("later", {}).get(rater, []))}
    todo = sorted((it for it in items if not _complete(given(it))), key=lambda it: later.get(it.item_id, -1))
    if not todo:
        more = " If raters disagree on an image, it may come back to you for one more opinion: open your link again later." if invited else ""
        st.success(f"All {len(items)} images rated. Thank you, {rater}!{more}")
        return
    # the image on screen stays until answered or left for later, even if the queue changes meanwhile
    current = st.session_state.setdefault("current", {})
    item = next((it for it in todo if it.item_id == current.get(rater)), todo[0])
    current[rater] = item.item_id
    shown = given(item)

    st.subheader("The action, as shown by these photos")
    ex = _exemplars(str(run_dir), item.action)
    if design is not None and design.gold_per_rater > 0:
        ex = shown_exemplars(ex, item)  # one fewer on every page: a gold photo is never also in the strip
    if ex:
        st.markdown(_images_html(ex, 110), unsafe_allow_html=True)
    left, right = st.columns([1, 1])
    with left:
        st.markdown(_images_html([str(run_dir / item.path)], 320, f"image {len(done) + 1} of {len(items)}"),
                    unsafe_allow_html=True)
    with right:
        st.markdown(f"### Subject: **{item.subject}**")
        if item.instruction:
            st.markdown(f"**{item.instruction}**")
        for question, text in (("action_ok", "Does the image show the action of the photos above?"),
                               ("subject_ok", f"Is the subject right: recognisably {item.subject}, without deformation?")):
            value = shown.get(question)
            st.markdown(f"**{text}**" + ("" if value is None else f"  (your answer: {'yes' if value else 'no'})"))
            c1, c2 = st.columns(2)
            c1.button(LABELS[question, True], key=widget_key(question, "yes", item.item_id), on_click=_answer,
                      args=(str(run_dir), item, question, True), type="primary" if value is True else "secondary")
            c2.button(LABELS[question, False], key=widget_key(question, "no", item.item_id), on_click=_answer,
                      args=(str(run_dir), item, question, False), type="primary" if value is False else "secondary")
        st.button(NEXT_LABEL, key=widget_key("next", "later", item.item_id), on_click=_later, args=(rater, item.item_id),
                  help="Leave this image for later: it comes back after the others.")
        st.caption(SHORTCUTS_HELP)
    _key_script()


main()

"""The rating app (Streamlit): the paper's human protocol on a run folder.

A rater gives a name, then sees one generated image at a time with the action's
exemplars and the subject's name, and answers two questions: does the image show the
exemplars' action, and is the subject right (recognisably it, not deformed)? Method
names are never shown; the order is shuffled per rater (seeded by the name, so a rater
who comes back continues in the same order). Each click is stored in
``RUN_DIR/ratings.sqlite`` at once. Once both are answered the next image comes;
"Next" leaves an image for later (it comes back after the others).

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

from annotate_app.store import rating_order, widget_key
from evaluate.ratings import RatingStore


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
    import yaml

    from actionbench.bench import load_action

    config = yaml.safe_load((Path(run_dir) / "run.yaml").read_text()) or {}
    bench = Path(config.get("benchmark", "../shared/ActionBench"))
    # a relative benchmark path is relative to where the run was started: here, or the
    # project root above results/<run>
    candidates = [bench / action] if bench.is_absolute() else [bench / action, Path(run_dir).resolve().parents[1] / bench / action]
    folder = next((c for c in candidates if c.is_dir()), None)
    if folder is None:
        return []
    return [str(e.image_path) for e in load_action(folder, verify_images=False).exemplars]


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


def _answer(store: RatingStore, rater: str, image_id: str, question: str, value: bool) -> None:
    store.answer(rater, image_id, question, value)


def _later(rater: str, image_id: str) -> None:
    """The "Next" button: this image goes after every other unrated one (for this session)."""
    later = st.session_state.setdefault("later", {}).setdefault(rater, [])
    if image_id in later:
        later.remove(image_id)
    later.append(image_id)


def main() -> None:
    st.set_page_config(page_title="ActionBench rating", layout="wide")
    run_dir = _run_dir()
    if not (run_dir / "manifest").is_dir() and not (run_dir / "manifest.csv").exists():
        st.error(f"{run_dir}: not a run folder (start with `actionbench annotate RUN_DIR`)")
        return
    manifest = _manifest(str(run_dir))
    store = _store(str(run_dir))

    st.sidebar.title("ActionBench rating")
    rater = st.sidebar.text_input("Your name", key="rater").strip()
    if not rater:
        st.info("Type your name in the sidebar to start. Several raters can rate the same run; each rates every image.")
        return
    order = rating_order(list(manifest.image_id), rater)
    answers = store.for_rater(rater)
    done = [i for i in order if i in answers and None not in answers[i].values()]
    st.sidebar.progress(len(done) / max(len(order), 1), text=f"{len(done)} of {len(order)} rated")
    st.sidebar.caption("Each answer is saved the moment you click it; you can close the tab and come back.")

    later = {i: k for k, i in enumerate(st.session_state.get("later", {}).get(rater, []))}
    todo = sorted((i for i in order if i not in done), key=lambda i: later.get(i, -1))  # stable: the order otherwise
    if not todo:
        st.success(f"All {len(order)} images rated. Thank you, {rater}!")
        return
    image_id = todo[0]
    row = manifest.set_index("image_id").loc[image_id]
    given = answers.get(image_id, {})

    st.subheader("The action, as shown by these photos")
    ex = _exemplars(str(run_dir), row.action)
    if ex:
        st.markdown(_images_html(ex, 110), unsafe_allow_html=True)
    left, right = st.columns([1, 1])
    with left:
        st.markdown(_images_html([str(run_dir / row.path)], 320, f"image {len(done) + 1} of {len(order)}"),
                    unsafe_allow_html=True)
    with right:
        st.markdown(f"### Subject: **{row.subject}**")
        for question, text in (("action_ok", "Does the image show the action of the photos above?"),
                               ("subject_ok", f"Is the subject right: recognisably {row.subject}, without deformation?")):
            current = given.get(question)
            st.markdown(f"**{text}**" + ("" if current is None else f"  (your answer: {'yes' if current else 'no'})"))
            c1, c2 = st.columns(2)
            c1.button(LABELS[question, True], key=widget_key(question, "yes", image_id), on_click=_answer,
                      args=(store, rater, image_id, question, True), type="primary" if current is True else "secondary")
            c2.button(LABELS[question, False], key=widget_key(question, "no", image_id), on_click=_answer,
                      args=(store, rater, image_id, question, False), type="primary" if current is False else "secondary")
        st.button(NEXT_LABEL, key=widget_key("next", "later", image_id), on_click=_later, args=(rater, image_id),
                  help="Leave this image for later: it comes back after the others.")
        st.caption(SHORTCUTS_HELP)
    _key_script()


main()

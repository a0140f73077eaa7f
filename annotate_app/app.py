"""The rating app (Streamlit): the paper's human protocol on a run folder.

A rater gives a name, then sees one generated image at a time with the action's
exemplars and the subject's name, and answers two questions: does the image show the
exemplars' action, and is the subject right (recognisably it, not deformed)? Method
names are never shown; the order is shuffled per rater (seeded by the name, so a rater
who comes back continues in the same order). Each click is stored in
``RUN_DIR/ratings.sqlite`` at once.

Start with ``actionbench annotate RUN_DIR`` (or ``streamlit run annotate_app/app.py -- RUN_DIR``).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import streamlit as st

from annotate_app.store import RatingStore, rating_order, widget_key


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


def _answer(store: RatingStore, rater: str, image_id: str, question: str, value: bool) -> None:
    store.answer(rater, image_id, question, value)


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

    todo = [i for i in order if i not in done]
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
            c1.button("Yes", key=widget_key(question, "yes", image_id), on_click=_answer,
                      args=(store, rater, image_id, question, True), type="primary" if current is True else "secondary")
            c2.button("No", key=widget_key(question, "no", image_id), on_click=_answer,
                      args=(store, rater, image_id, question, False), type="primary" if current is False else "secondary")


main()

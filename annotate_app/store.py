"""What the rating app adds to the ratings store: each rater's image order and the answer
buttons' opaque keys. The store itself (``RatingStore``, ``read_ratings``) is
:mod:`evaluate.ratings`, re-exported here so ``annotate_app.store`` imports keep working."""

from __future__ import annotations

import hashlib
import random

from evaluate.ratings import DB_NAME, QUESTIONS, RatingStore, read_ratings  # noqa: F401  (re-exported)


def rating_order(image_ids: list[str], rater: str) -> list[str]:
    """The rater's shuffled order of images: the same every time for the same name."""
    seed = int(hashlib.sha256(rater.encode()).hexdigest()[:8], 16)
    order = sorted(image_ids)
    random.Random(seed).shuffle(order)
    return order


def widget_key(question: str, answer: str, image_id: str) -> str:
    """An opaque key for an answer button: Streamlit puts keys into the page (CSS classes),
    and image ids name the method, which raters must not see."""
    return f"{question}-{answer}-{hashlib.sha256(image_id.encode()).hexdigest()[:16]}"

"""The slug rule: the one way a user-supplied name becomes a folder, a model name or an adapter
name.

A persona's slug (`[a-z0-9-]+`) names its folders, its MLflow model (`persona-<slug>`) and its
served adapter; `slugify` makes "../../etc" harmless. It sits at the package root because the
configuration (paths per persona) and every record that names a persona both check it.
"""

from __future__ import annotations

import re
import unicodedata

SLUG_PATTERN = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
MAX_SLUG_CHARS = 64


def slugify(name: str) -> str:
    """Turn a display name into a slug: ASCII, lowercase, runs of anything else become one dash.

    Raises:
        ValueError: when nothing usable is left (for example a name made only of punctuation).
    """
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-")[:MAX_SLUG_CHARS].strip("-")
    if not slug:
        raise ValueError(
            f"cannot make a slug from name {name!r}: it has no letters or digits; "
            "give the persona a name with letters or digits, or set `slug:` explicitly"
        )
    return slug


def check_slug(value: str) -> str:
    """Return `value` if it is a valid slug, else raise a `ValueError` that says how to fix it."""
    if not SLUG_PATTERN.fullmatch(value) or len(value) > MAX_SLUG_CHARS:
        raise ValueError(
            f"{value!r} is not a valid slug: use lowercase letters, digits and single dashes "
            f"(at most {MAX_SLUG_CHARS} characters), for example {_suggest(value)!r}"
        )
    return value


def _suggest(value: str) -> str:
    try:
        return slugify(value)
    except ValueError:
        return "my-persona"

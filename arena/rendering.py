"""Model answers as HTML: markdown rendered, then sanitised, so a model can never put markup on a page.

markdown-it-py runs with raw HTML off (a model's ``<script>`` stays text), then nh3 (the Ammonia
sanitiser) keeps only the tags that markdown itself produces: a second, independent line in case a
renderer bug or a crafted link lets something through. Images are dropped: an ``<img>`` pointing at a
model-chosen host would tell that host the voter's address.
"""
from __future__ import annotations

import nh3
from markdown_it import MarkdownIt

_markdown = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False}).enable("table")

ALLOWED_TAGS = {
    "p", "br", "hr", "strong", "em", "del", "code", "pre", "blockquote", "ul", "ol", "li",
    "h1", "h2", "h3", "h4", "h5", "h6", "table", "thead", "tbody", "tr", "th", "td", "a",
}
ALLOWED_ATTRIBUTES = {"a": {"href", "title"}, "code": {"class"},
                      "th": {"style"}, "td": {"style"}, "ol": {"start"}}


def markdown_to_safe_html(text: str) -> str:
    """Render ``text`` as CommonMark (plus tables) and return HTML that is safe to insert in a page."""
    html = _markdown.render(text)
    return nh3.clean(
        html, tags=ALLOWED_TAGS, attributes=ALLOWED_ATTRIBUTES, url_schemes={"http", "https", "mailto"},
        link_rel="nofollow noopener noreferrer",
        filter_style_properties={"text-align"},
    )

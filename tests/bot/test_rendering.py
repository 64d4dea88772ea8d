"""Rendering model output for Telegram, checked against the sandbox's copy of Telegram's HTML
parser: it must never fail to parse, never exceed 4096 characters, never lose text."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.rendering import html_to_plain, render_draft, render_markdown, split_html, utf16_len
from sandbox.telegram.markup import parse_html


def telegram_text(html: str) -> str:
    """What Telegram would show, or the parse error it would answer."""
    text, _ = parse_html(html)
    return text


def squash(text: str) -> str:
    return re.sub(r"\s+", "", text)


def test_model_special_characters_are_escaped_everywhere() -> None:
    md = 'a < b && c > d "q" <script>alert(1)</script> `x<y>` [l&nk](https://x.test/?a=1&b="2")'
    html = render_markdown(md)
    shown = telegram_text(html)
    assert "a < b && c > d" in shown
    assert "<script>alert(1)</script>" in shown
    assert "x<y>" in shown
    assert '<a href="https://x.test/?a=1&amp;b=%222%22">l&amp;nk</a>' in html


def test_bold_italic_strike_code_and_headings() -> None:
    html = render_markdown("# Title\n\n**b** *i* ~~s~~ `c`")
    assert html == "<b>Title</b>\n\n<b>b</b> <i>i</i> <s>s</s> <code>c</code>"


def test_fenced_code_keeps_its_language_and_text() -> None:
    html = render_markdown("```python\nif a < b:\n    print('&')\n```")
    assert html == (
        "<pre><code class=\"language-python\">if a &lt; b:\n    print('&amp;')</code></pre>"
    )
    assert telegram_text(html) == "if a < b:\n    print('&')"


def test_lists_nest_with_bullets_and_numbers() -> None:
    html = render_markdown("- one\n- two\n  1. inner\n  2. more\n- three")
    assert telegram_text(html) == "• one\n• two\n  1. inner\n  2. more\n• three"


def test_tables_become_aligned_monospace() -> None:
    html = render_markdown("| a | bb |\n|---|---|\n| ccc | d |")
    assert telegram_text(html) == "a   | bb\n----+---\nccc | d"


def test_unsafe_link_schemes_become_plain_text() -> None:
    html = render_markdown("[click](javascript:alert(1)) [f](ftp://x.test) [ok](https://ok.test)")
    assert '<a href="javascript' not in html
    assert "ftp://" not in html
    assert telegram_text(html).startswith("[click](javascript:alert(1)) f ok")
    assert '<a href="https://ok.test">ok</a>' in html


@pytest.mark.parametrize(
    "target",
    [
        "tg://resolve?domain=somebot&start=pay",
        "TG://join?invite=abc",
        "tg:openmessage?user_id=1",
        "javascript:alert(1)",
        "JaVaScRiPt:alert(1)",
        "data:text/html,<b>x</b>",
        "vbscript:x",
        "file:///etc/passwd",
        "intent://scan/#Intent;scheme=zxing;end",
        "ftp://files.test/x",
    ],
)
def test_only_http_https_and_mailto_links_stay_links(target: str) -> None:
    for source in (f"[tap here]({target})", f"<{target}>", f"![pic]({target})"):
        html = render_markdown(source)
        assert "<a " not in html, (source, html)
        # The text is kept, only as text.
        assert telegram_text(html).strip()


@pytest.mark.parametrize(
    "target", ["https://ok.test/a?b=1", "HTTP://ok.test", "mailto:someone@ok.test"]
)
def test_web_and_mail_links_stay_links(target: str) -> None:
    html = render_markdown(f"[here]({target}) and <{target}>")
    assert html.count("<a href=") == 2, html


def test_quotes_become_blockquotes() -> None:
    html = render_markdown("> quoted **bold**\n\nafter")
    assert html == "<blockquote>quoted <b>bold</b></blockquote>\n\nafter"


def test_a_long_code_block_splits_into_valid_parts_that_reassemble() -> None:
    code = "\n".join(f"line {n}: {'x' * 40} < & >" for n in range(300))
    html = render_markdown(f"Intro\n\n```js\n{code}\n```\n\nOutro")
    parts = split_html(html)
    assert len(parts) > 1
    for part in parts:
        assert utf16_len(telegram_text(part)) <= 4096
        assert part.count("<pre>") == part.count("</pre>")
    assert parts[1].startswith('<pre><code class="language-js">')
    assert squash("".join(telegram_text(p) for p in parts)) == squash(telegram_text(html))


def test_astral_characters_at_the_boundary_are_never_cut_in_half() -> None:
    html = render_markdown("😀" * 3000)
    parts = split_html(html)
    assert all(utf16_len(telegram_text(p)) <= 4096 for p in parts)
    assert "".join(telegram_text(p) for p in parts) == "😀" * 3000


def test_a_draft_with_an_open_fence_renders_as_code_so_far() -> None:
    html = render_draft("Here:\n\n```python\nprint('hi')")
    assert telegram_text(html) == "Here:\n\nprint('hi')"
    assert "<pre>" in html


def test_a_long_draft_shows_its_newest_part() -> None:
    html = render_draft("word " * 2000)
    assert utf16_len(telegram_text(html)) <= 4096


markdownish = st.lists(
    st.sampled_from(
        [
            *"ab <>&\"'*_~`#[]()!|-+.\n\\",
            *("😀", "я", "```", "**", "http://x.y", "\n\n", "- ", "1. ", "> "),
            *("$", "$$", "\\(", "\\)", "\\[", "\\]", "\\frac{", "}", "^", "_", "\\,"),
            "| a | b |\n|---|---|\n",
        ]
    ),
    max_size=150,
).map("".join)


@settings(max_examples=300, deadline=None)
@given(markdownish)
def test_any_model_output_renders_to_html_telegram_accepts(text: str) -> None:
    html = render_markdown(text)
    if html_to_plain(html).strip():
        telegram_text(html)


@settings(max_examples=150, deadline=None)
@given(markdownish, st.integers(min_value=20, max_value=200))
def test_every_part_of_a_split_is_valid_short_and_nothing_is_lost(text: str, limit: int) -> None:
    html = render_markdown(text * 3)
    parts = split_html(html, limit)
    for part in parts:
        shown = telegram_text(part)
        assert utf16_len(shown) <= limit
    whole = html_to_plain(html)
    if whole.strip():
        assert squash("".join(html_to_plain(p) for p in parts)) == squash(whole)


@settings(max_examples=100, deadline=None)
@given(markdownish)
def test_every_prefix_of_a_stream_renders_valid_drafts(text: str) -> None:
    for end in range(0, len(text) + 1, max(1, len(text) // 10)):
        html = render_draft(text[:end])
        if html_to_plain(html).strip():
            telegram_text(html)

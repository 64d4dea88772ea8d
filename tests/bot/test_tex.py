"""TeX math in replies for Telegram: inline math as readable Unicode where it can be, otherwise
exactly as written in code; display math exactly as written in a code block; prices stay prose;
no backslash is lost. Checked against the sandbox's copy of Telegram's HTML parser."""

from __future__ import annotations

import time

import pytest

from bot.rendering import render_draft, render_markdown
from bot.tex import to_unicode
from sandbox.telegram.markup import parse_html
from tests.bot.conftest import BotHarness, PersonFactory
from tests.bot.test_chat import _ready


def shown(markdown: str) -> str:
    text, _ = parse_html(render_markdown(markdown))
    return text


@pytest.mark.parametrize(
    ("tex", "unicode"),
    [
        ("x^2", "x²"),
        (r"x^2\,dx", "x²\u2009dx"),
        (r"\int_0^1 x^2\,dx", "∫₀¹ x²\u2009dx"),
        (r"\sum_{i=1}^n i", "∑ᵢ₌₁ⁿ i"),
        (r"\alpha + \beta \cdot \gamma", "α + β ⋅ γ"),
        (r"a \le b \ge c \ne d", "a ≤ b ≥ c ≠ d"),
        (r"a \times b", "a × b"),
        (r"\infty", "∞"),
        (r"\frac{a}{b}", "a/b"),
        (r"\frac{a+b}{2}", "(a+b)/2"),
        (r"\sqrt{x}", "√x"),
        (r"\sqrt[3]{x+1}", "∛(x+1)"),
        (r"\pm\sqrt{b^2-4ac}", "±√(b²-4ac)"),
        (r"\mathbb{R}^n", "ℝⁿ"),
        (r"90^\circ", "90°"),
        (r"\left( x \right)", "( x )"),
        (r"x_{10}", "x₁₀"),
        (r"e^{i\pi}", "e^(iπ)"),
        (r"\text{speed} = \frac{d}{t}", "speed = d/t"),
        (r"\not\in", "∉"),
    ],
)
def test_inline_math_becomes_readable_unicode(tex: str, unicode: str) -> None:
    assert to_unicode(tex) == unicode


@pytest.mark.parametrize(
    "tex",
    [
        r"\begin{pmatrix} 1 & 2 \\ 3 & 4 \end{pmatrix}",
        r"a \\ b",
        r"\unknowncommand{x}",
        r"\overline{AB}",
        r"\frac{a}{",
    ],
)
def test_math_without_a_faithful_unicode_form_is_not_converted(tex: str) -> None:
    assert to_unicode(tex) is None


def test_inline_math_in_a_reply_is_shown_in_unicode() -> None:
    assert shown(r"The area is $\int_0^1 x^2\,dx = \frac{1}{3}$.") == (
        "The area is ∫₀¹ x²\u2009dx = 1/3."
    )
    assert shown(r"Pythagoras: \(a^2 + b^2 = c^2\)") == "Pythagoras: a² + b² = c²"


def test_inline_math_that_cannot_be_converted_stays_exact_in_code() -> None:
    html = render_markdown(r"Matrix $\begin{pmatrix}1 & 2\end{pmatrix}$ here")
    assert html == r"Matrix <code>\begin{pmatrix}1 &amp; 2\end{pmatrix}</code> here"


@pytest.mark.parametrize("opener,closer", [("$$", "$$"), ("\\[", "\\]")])
def test_display_math_stays_exact_in_a_code_block(opener: str, closer: str) -> None:
    tex = "\\int_0^1 x^2\\,dx = \\frac{1}{3} \\\\\n\\sum_{k=1}^{n} k = \\frac{n(n+1)}{2}"
    html = render_markdown(f"Display:\n\n{opener}\n{tex}\n{closer}\n\nAfter.")
    assert f'<pre><code class="language-latex">{tex}</code></pre>' in html.replace("&amp;", "&")
    text, entities = parse_html(html)
    assert tex in text and "After." in text
    assert any(e["type"] == "pre" and e.get("language") == "latex" for e in entities)


def test_display_math_in_a_paragraph_stays_exact() -> None:
    html = render_markdown(r"So $$x^2\,dx$$ and \[y_1\] done")
    assert '<pre><code class="language-latex">x^2\\,dx</code></pre>' in html
    assert '<pre><code class="language-latex">y_1</code></pre>' in html


@pytest.mark.parametrize(
    "prose",
    [
        "It costs $5 and $10.",
        "Between $5-$10 a month",
        "Pay $ 5 now and $3 later",
        "A price of $20, or $x more",
    ],
)
def test_prices_in_dollars_stay_prose(prose: str) -> None:
    assert shown(prose) == prose


def test_backslashes_outside_math_are_never_dropped() -> None:
    # CommonMark would show x^2,dx and \{a\} as {a}: TeX written without delimiters stays whole.
    assert shown(r"x^2\,dx and \{a\} and C:\\Users") == r"x^2\,dx and \{a\} and C:\\Users"
    # A backslash that hides Markdown still does.
    assert shown(r"\*not italic\* and \_name\_") == "*not italic* and _name_"


def test_a_draft_with_display_math_still_coming_shows_it_as_code_so_far() -> None:
    html = render_draft("Here:\n\n$$\n\\frac{a}{b}\\,x")
    assert html.endswith('<pre><code class="language-latex">\\frac{a}{b}\\,x</code></pre>')


@pytest.mark.parametrize("unit", ["$a ", "\\(", "\\[", "$$a ", "$$\n", "\\[\n", "$x$", "$5 $"])
def test_replies_full_of_unclosed_math_render_in_linear_time(unit: str) -> None:
    # 100 000 characters: a renderer that searched from every opener would take minutes.
    text = unit * (100_000 // len(unit))
    started = time.perf_counter()
    render_markdown(text)
    assert time.perf_counter() - started < 5


async def test_a_reply_with_math_arrives_readable_through_the_bot(
    harness: BotHarness, person: PersonFactory
) -> None:
    emmy = await _ready(harness, person, "Emmy")
    display = "\\int_0^1 x^2\\,dx = \\frac{1}{3}"
    reply = (
        "The integral $\\int_0^1 x^2\\,dx$ of $x^2\\,dx$ costs $5 and $10 to write.\n\n"
        f"$$\n{display}\n$$\n\nDone."
    )
    await harness.client._call(
        "POST",
        "/providers/script",
        json={"provider": "openai", "reply": reply, "chunk_size": 9, "chunk_delay_ms": 10},
    )
    before = await harness.client.last_seq()
    await harness.client.send_text(emmy.id, "Integrate x squared")
    final = await harness.client.wait_for(
        lambda e: e["type"] == "bot_message" and "Done." in (e["message"].get("text") or ""),
        chat_id=emmy.id,
        after=before,
        wait=20,
    )
    text = final["message"]["text"]
    assert text.startswith(
        "The integral ∫₀¹ x²\u2009dx of x²\u2009dx costs $5 and $10 to write.\n\n"
    )
    # Display math arrives exactly as written, as a LaTeX code block; no backslash lost.
    assert display in text
    [block] = [e for e in final["message"]["entities"] if e["type"] == "pre"]
    assert block.get("language") == "latex"
    assert text[block["offset"] : block["offset"] + block["length"]] == display
    # While it streamed, no draft showed the formula with its backslashes dropped.
    events, _ = await harness.client.events(after=before, chat_id=emmy.id)
    drafts = [e["text"] for e in events if e["type"] == "draft" and e.get("text")]
    assert drafts and not any("x^2,dx" in d for d in drafts)

"""Model output rendered for Telegram: HTML that cannot fail to parse, split at 4096 characters
without breaking formatting, and drafts of a reply still streaming in.

Markdown is parsed with markdown-it-py (CommonMark plus GFM tables and strikethrough); raw HTML a
model writes is shown as text. TeX math (bot.tex): inline math as readable Unicode where it can
be, else as code exactly as written; display math exactly as written in a code block. A
backslash is dropped only where it hides Markdown (a backslash-star), never anywhere else.
Every character the model wrote is escaped; only the tags below are emitted, always balanced:
b, i, s, code, pre, a, blockquote. Links keep only http, https and mailto targets; any other
becomes its plain text.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from dataclasses import dataclass

from markdown_it import MarkdownIt
from markdown_it.token import Token

from bot.tex import math_plugin, to_unicode

LIMIT = 4096
# Links a model writes keep only these schemes: tg:// and the like would act inside Telegram
# (join a chat, open a bot, start a payment) at a tap on text the model chose.
SAFE_LINK = re.compile(r"^(https?|mailto):", re.IGNORECASE)
TAG_OR_TEXT = re.compile(r"<[^>]*>|[^<]+")
FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})", re.MULTILINE)

_md = (
    MarkdownIt("commonmark", {"html": False, "linkify": False})
    .enable(["table", "strikethrough"])
    .use(math_plugin)
)
MATH_LINE = re.compile(r"^ {0,3}(\$\$|\\\[|\\\])[ \t]*$", re.MULTILINE)


def _display_math(tex: str) -> str:
    return f'<pre><code class="language-latex">{_esc(tex.strip(chr(10)))}</code></pre>'


def _inline_math(tex: str) -> str:
    shown = to_unicode(tex)
    return _esc(shown) if shown is not None else f"<code>{_esc(tex)}</code>"


def utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _esc(text: str) -> str:
    return html.escape(text, quote=False)


def _attr(text: str) -> str:
    return html.escape(text, quote=True)


# --- Markdown → Telegram HTML ---------------------------------------------------------------


@dataclass
class _List:
    ordered: bool
    number: int


def _inline(children: Sequence[Token]) -> str:
    out: list[str] = []
    link_open: list[bool] = []
    for tok in children:
        kind = tok.type
        if kind == "text":
            out.append(_esc(tok.content))
        elif kind in ("softbreak", "hardbreak"):
            out.append("\n")
        elif kind == "code_inline":
            out.append(f"<code>{_esc(tok.content)}</code>")
        elif kind == "math_inline":
            out.append(_inline_math(tok.content))
        elif kind == "math_inline_display":
            out.append(_display_math(tok.content))
        elif kind == "strong_open":
            out.append("<b>")
        elif kind == "strong_close":
            out.append("</b>")
        elif kind == "em_open":
            out.append("<i>")
        elif kind == "em_close":
            out.append("</i>")
        elif kind == "s_open":
            out.append("<s>")
        elif kind == "s_close":
            out.append("</s>")
        elif kind == "link_open":
            href = str(tok.attrs.get("href", ""))
            safe = bool(SAFE_LINK.match(href))
            link_open.append(safe)
            if safe:
                out.append(f'<a href="{_attr(href)}">')
        elif kind == "link_close":
            if link_open.pop():
                out.append("</a>")
        elif kind == "image":
            alt = "".join(c.content for c in tok.children or [])
            src = str(tok.attrs.get("src", ""))
            label = _esc(alt or src)
            out.append(f'<a href="{_attr(src)}">{label}</a>' if SAFE_LINK.match(src) else label)
        elif kind in ("html_inline", "html_block"):
            out.append(_esc(tok.content))
        else:
            out.append(_esc(tok.content))
    return "".join(out)


def _table(tokens: list[Token], start: int) -> tuple[str, int]:
    """A GFM table as aligned monospace text (Telegram has no tables)."""
    rows: list[list[str]] = []
    i = start + 1
    while tokens[i].type != "table_close":
        tok = tokens[i]
        if tok.type == "tr_open":
            rows.append([])
        elif tok.type == "inline":
            rows[-1].append(
                "".join(c.content for c in tok.children or [] if c.type in ("text", "code_inline"))
            )
        i += 1
    width = max((len(r) for r in rows), default=0)
    cols = [max((len(r[c]) if c < len(r) else 0) for r in rows) for c in range(width)]
    lines = []
    for n, row in enumerate(rows):
        cells = [(row[c] if c < len(row) else "").ljust(cols[c]) for c in range(width)]
        lines.append(" | ".join(cells).rstrip())
        if n == 0:
            lines.append("-+-".join("-" * w for w in cols))
    return f"<pre>{_esc(chr(10).join(lines))}</pre>", i


def render_markdown(text: str) -> str:
    """Telegram HTML for model Markdown; never fails to parse."""
    tokens = _md.parse(text)
    blocks: list[str] = []
    lists: list[_List] = []
    quote_depth = 0
    quote_start: list[int] = []
    pending_prefix = ""
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        kind = tok.type
        if kind == "heading_open":
            blocks.append(f"<b>{_inline(tokens[i + 1].children or [])}</b>")
            i += 3
            continue
        if kind == "paragraph_open":
            body = _inline(tokens[i + 1].children or [])
            if lists:
                indent = "  " * (len(lists) - 1)
                body = body.replace("\n", "\n" + indent + "  ")
                blocks.append(indent + pending_prefix + body)
                pending_prefix = ""
            else:
                blocks.append(body)
            i += 3
            continue
        if kind == "math_block":
            if lists and pending_prefix:
                blocks.append("  " * (len(lists) - 1) + pending_prefix + _display_math(tok.content))
                pending_prefix = ""
            else:
                blocks.append(_display_math(tok.content))
        elif kind in ("fence", "code_block"):
            language = (tok.info or "").strip().split(" ")[0]
            code = _esc(tok.content.rstrip("\n"))
            if language:
                blocks.append(f'<pre><code class="language-{_attr(language)}">{code}</code></pre>')
            else:
                blocks.append(f"<pre>{code}</pre>")
        elif kind in ("bullet_list_open", "ordered_list_open"):
            start = int(tok.attrs.get("start", 1) or 1)
            lists.append(_List(kind == "ordered_list_open", start))
        elif kind in ("bullet_list_close", "ordered_list_close"):
            lists.pop()
        elif kind == "list_item_open":
            current = lists[-1]
            pending_prefix = f"{current.number}. " if current.ordered else "• "
            current.number += 1
        elif kind == "list_item_close":
            if pending_prefix:  # an empty item
                blocks.append("  " * (len(lists) - 1) + pending_prefix.rstrip())
                pending_prefix = ""
        elif kind == "blockquote_open":
            quote_depth += 1
            quote_start.append(len(blocks))
        elif kind == "blockquote_close":
            quote_depth -= 1
            begin = quote_start.pop()
            if quote_depth == 0 and begin < len(blocks):
                inner = "\n".join(blocks[begin:])
                blocks[begin:] = [f"<blockquote>{inner}</blockquote>"]
        elif kind == "table_open":
            table, i = _table(tokens, i)
            blocks.append(table)
        elif kind == "hr":
            blocks.append("———")
        elif kind == "html_block":
            blocks.append(_esc(tok.content.rstrip("\n")))
        i += 1
    joined: list[str] = []
    for n, block in enumerate(blocks):
        if n:
            # List items sit on consecutive lines; other blocks get a blank line between them.
            tight = block.lstrip().startswith(("• ",)) or re.match(r"\s*\d+\. ", block)
            joined.append("\n" if tight else "\n\n")
        joined.append(block)
    return "".join(joined).strip("\n")


def render_draft(partial: str) -> str:
    """Telegram HTML for a reply still streaming in: an unterminated code fence is closed, and
    the result keeps to one message (the newest part when the reply is already longer)."""
    fences = FENCE.findall(partial)
    if len(fences) % 2 == 1:
        partial = partial.rstrip("`~ ") + "\n" + fences[-1]
    else:
        # Display math still coming in shows as it will end up, not as prose.
        marks = MATH_LINE.findall(partial)
        if marks.count("$$") % 2 == 1:
            partial += "\n$$"
        elif marks.count("\\[") > marks.count("\\]"):
            partial += "\n\\]"
    rendered = render_markdown(partial)
    return tail(rendered)


# --- splitting ------------------------------------------------------------------------------


@dataclass
class _Open:
    name: str
    tag: str


def _tag_name(tag: str) -> str:
    match = re.match(r"</?\s*([A-Za-z0-9-]+)", tag)
    return match.group(1).lower() if match else ""


def html_to_plain(text: str) -> str:
    """The text Telegram displays for this HTML."""
    return "".join(
        html.unescape(part) for part in TAG_OR_TEXT.findall(text) if not part.startswith("<")
    )


def _cut(text: str, budget: int) -> int:
    """Where to cut decoded text so the head fits ``budget`` UTF-16 units: at a paragraph, a
    line, a space, else anywhere (never inside a surrogate pair)."""
    units = 0
    fit = 0
    for index, ch in enumerate(text):
        units += 2 if ord(ch) > 0xFFFF else 1
        if units > budget:
            break
        fit = index + 1
    head = text[:fit]
    for sep in ("\n\n", "\n", " "):
        at = head.rfind(sep)
        if at > 0 and at >= fit // 3:
            return at + len(sep)
    return fit


def split_html(text: str, limit: int = LIMIT) -> list[str]:
    """Split Telegram HTML into messages of at most ``limit`` characters of displayed text, each
    valid on its own: tags open at a cut are closed before it and reopened after it."""
    parts: list[str] = []
    current: list[str] = []
    used = 0
    stack: list[_Open] = []

    def flush() -> None:
        nonlocal current, used
        closing = "".join(f"</{o.name}>" for o in reversed(stack))
        body = "".join(current) + closing
        if html_to_plain(body).strip():
            parts.append(body)
        current = [o.tag for o in stack]
        used = 0

    for piece in TAG_OR_TEXT.findall(text):
        if piece.startswith("</"):
            if stack and stack[-1].name == _tag_name(piece):
                stack.pop()
            current.append(piece)
            continue
        if piece.startswith("<"):
            stack.append(_Open(_tag_name(piece), piece))
            current.append(piece)
            continue
        plain = html.unescape(piece)
        while plain:
            room = limit - used
            size = utf16_len(plain)
            if size <= room:
                current.append(_esc(plain))
                used += size
                break
            if room <= 0:
                flush()
                plain = plain.lstrip("\n")
                continue
            at = _cut(plain, room)
            head, plain = plain[:at], plain[at:]
            current.append(_esc(head.rstrip("\n ") if head.strip() else head))
            used += utf16_len(head)
            flush()
            plain = plain.lstrip("\n")
    if "".join(current):
        closing = "".join(f"</{o.name}>" for o in reversed(stack))
        body = "".join(current) + closing
        if html_to_plain(body).strip():
            parts.append(body)
    return parts or [_esc("…")]


def tail(text: str, limit: int = LIMIT) -> str:
    """The newest part of rendered HTML that fits one message."""
    if utf16_len(html_to_plain(text)) <= limit:
        return text
    return split_html(text, limit)[-1]

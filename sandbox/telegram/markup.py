"""Message formatting as Telegram parses it: HTML, MarkdownV2, legacy Markdown and raw entities.

Parsing yields the plain text and entities with offsets and lengths in UTF-16 code units, or a
``ParseError`` whose text follows Telegram's "can't parse entities" wording. Display HTML for the
sandbox's page is rebuilt from text + entities, so it is safe by construction.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
from typing import Any

MAX_TEXT = 4096
HTML_TAGS = {
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "u": "underline",
    "ins": "underline",
    "s": "strikethrough",
    "strike": "strikethrough",
    "del": "strikethrough",
    "tg-spoiler": "spoiler",
    "span": "spoiler",
    "a": "text_link",
    "code": "code",
    "pre": "pre",
    "blockquote": "blockquote",
    "tg-emoji": "custom_emoji",
}
ENTITY_TYPES = {
    "mention",
    "hashtag",
    "cashtag",
    "bot_command",
    "url",
    "email",
    "phone_number",
    "bold",
    "italic",
    "underline",
    "strikethrough",
    "spoiler",
    "blockquote",
    "expandable_blockquote",
    "code",
    "pre",
    "text_link",
    "text_mention",
    "custom_emoji",
    "date_time",
}
MDV2_RESERVED = set("_*[]()~`>#+-=|{}.!")
NAMED_ENTITIES = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}


class ParseError(ValueError):
    """Telegram's 400 for bad markup; ``str()`` is the full description."""

    def __init__(self, detail: str) -> None:
        super().__init__(f"Bad Request: can't parse entities: {detail}")


def utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


@dataclass
class _Builder:
    chars: list[str] = field(default_factory=list)
    units: int = 0

    def add(self, text: str) -> None:
        self.chars.append(text)
        self.units += utf16_len(text)

    @property
    def text(self) -> str:
        return "".join(self.chars)


def _entity(kind: str, start: int, end: int, attrs: dict[str, str]) -> dict[str, Any] | None:
    if end <= start:
        return None
    entity: dict[str, Any] = {"type": kind, "offset": start, "length": end - start}
    if kind == "text_link":
        entity["url"] = attrs.get("href", "")
    elif kind == "pre" and attrs.get("language"):
        entity["language"] = attrs["language"]
    elif kind == "custom_emoji":
        entity["custom_emoji_id"] = attrs.get("emoji-id", "")
    elif kind == "blockquote" and "expandable" in attrs:
        entity["type"] = "expandable_blockquote"
    return entity


TAG_RE = re.compile(r"<(/?)([A-Za-z][A-Za-z0-9-]*)?((?:\s+[^<>]*?)?)\s*(/?)>", re.S)
ATTR_RE = re.compile(r"""([A-Za-z-]+)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'=<>`]+)))?""")


def parse_html(source: str) -> tuple[str, list[dict[str, Any]]]:
    out = _Builder()
    entities: list[dict[str, Any]] = []
    # (tag name, entity type, start offset, attrs)
    stack: list[tuple[str, str, int, dict[str, str]]] = []
    i = 0
    n = len(source)
    while i < n:
        ch = source[i]
        byte_offset = len(source[:i].encode())
        if ch == "<":
            match = TAG_RE.match(source, i)
            if match is None or match.group(2) is None:
                raise ParseError(f'Unsupported start tag "" at byte offset {byte_offset}')
            closing, name, attr_text = match.group(1), match.group(2).lower(), match.group(3)
            if closing:
                if not stack:
                    raise ParseError(f"Unexpected end tag at byte offset {byte_offset}")
                top = stack[-1][0]
                if name != top:
                    raise ParseError(
                        f'Unmatched end tag at byte offset {byte_offset}, expected "</{top}>", '
                        f'found "</{name}>"'
                    )
                _, kind, start, attrs = stack.pop()
                made = _entity(kind, start, out.units, attrs)
                if made is not None:
                    entities.append(made)
            else:
                if name not in HTML_TAGS:
                    raise ParseError(f'Unsupported start tag "{name}" at byte offset {byte_offset}')
                attrs = {
                    m.group(1).lower(): html.unescape(m.group(2) or m.group(3) or m.group(4) or "")
                    for m in ATTR_RE.finditer(attr_text or "")
                }
                kind = HTML_TAGS[name]
                if name == "span" and attrs.get("class") != "tg-spoiler":
                    raise ParseError(f'Unsupported start tag "span" at byte offset {byte_offset}')
                if name == "code" and stack and stack[-1][0] == "pre":
                    # <pre><code class="language-x"> gives the pre block its language.
                    language = attrs.get("class", "")
                    if language.startswith("language-"):
                        stack[-1][3]["language"] = language.removeprefix("language-")
                    kind = "code_in_pre"
                stack.append((name, kind, out.units, attrs))
            i = match.end()
        elif ch == "&":
            end = source.find(";", i + 1, i + 12)
            name = source[i + 1 : end] if end != -1 else ""
            if name in NAMED_ENTITIES:
                out.add(NAMED_ENTITIES[name])
                i = end + 1
            elif re.fullmatch(r"#[0-9]{1,7}|#[xX][0-9a-fA-F]{1,6}", name):
                code = int(name[2:], 16) if name[1:2] in "xX" else int(name[1:])
                if code > 0x10FFFF or 0xD800 <= code <= 0xDFFF or code == 0:
                    raise ParseError(f"Invalid numeric entity at byte offset {byte_offset}")
                out.add(chr(code))
                i = end + 1
            else:
                # Telegram keeps an ampersand that starts no known entity as text.
                out.add("&")
                i += 1
        else:
            j = i
            while j < n and source[j] not in "<&":
                j += 1
            out.add(source[i:j])
            i = j
    if stack:
        raise ParseError(f'Can\'t find end tag corresponding to start tag "{stack[-1][0]}"')
    return out.text, [e for e in entities if e["type"] != "code_in_pre"]


MDV2_PAIRS = [
    ("```", "pre"),
    ("||", "spoiler"),
    ("__", "underline"),
    ("*", "bold"),
    ("_", "italic"),
    ("~", "strikethrough"),
    ("`", "code"),
]
MDV2_NAMES = {
    "pre": "Pre",
    "spoiler": "Spoiler",
    "underline": "Underline",
    "bold": "Bold",
    "italic": "Italic",
    "strikethrough": "Strikethrough",
    "code": "Code",
    "text_link": "TextUrl",
}


def parse_markdown_v2(source: str) -> tuple[str, list[dict[str, Any]]]:
    out = _Builder()
    entities: list[dict[str, Any]] = []
    stack: list[tuple[str, int, int]] = []  # (entity type, start units, byte offset)
    i = 0
    n = len(source)
    while i < n:
        ch = source[i]
        byte_offset = len(source[:i].encode())
        if ch == "\\" and i + 1 < n and 0 < ord(source[i + 1]) < 127:
            out.add(source[i + 1])
            i += 2
            continue
        if source.startswith("```", i):
            end = source.find("```", i + 3)
            if end == -1:
                raise ParseError(f"Can't find end of Pre entity at byte offset {byte_offset}")
            body = source[i + 3 : end]
            language = ""
            if "\n" in body:
                first, rest = body.split("\n", 1)
                if re.fullmatch(r"[A-Za-z0-9_+#.-]*", first):
                    language, body = first, rest
            start = out.units
            out.add(re.sub(r"\\([`\\])", r"\1", body))
            made = _entity("pre", start, out.units, {"language": language})
            if made:
                entities.append(made)
            i = end + 3
            continue
        if ch == "`":
            end = source.find("`", i + 1)
            if end == -1:
                raise ParseError(f"Can't find end of Code entity at byte offset {byte_offset}")
            start = out.units
            out.add(re.sub(r"\\([`\\])", r"\1", source[i + 1 : end]))
            made = _entity("code", start, out.units, {})
            if made:
                entities.append(made)
            i = end + 1
            continue
        if ch == "[":
            stack.append(("text_link", out.units, byte_offset))
            i += 1
            continue
        if ch == "]" and stack and stack[-1][0] == "text_link":
            if not source.startswith("(", i + 1):
                raise ParseError(f"Can't find end of TextUrl entity at byte offset {byte_offset}")
            end = source.find(")", i + 2)
            while end != -1 and source[end - 1] == "\\":
                end = source.find(")", end + 1)
            if end == -1:
                raise ParseError(f"Can't find end of TextUrl entity at byte offset {byte_offset}")
            url = re.sub(r"\\([)\\])", r"\1", source[i + 2 : end])
            _, start, _ = stack.pop()
            made = _entity("text_link", start, out.units, {"href": url})
            if made:
                entities.append(made)
            i = end + 1
            continue
        matched = False
        for marker, kind in MDV2_PAIRS[1:6]:
            if source.startswith(marker, i):
                if stack and stack[-1][0] == kind:
                    _, start, _ = stack.pop()
                    made = _entity(kind, start, out.units, {})
                    if made:
                        entities.append(made)
                else:
                    stack.append((kind, out.units, byte_offset))
                i += len(marker)
                matched = True
                break
        if matched:
            continue
        if ch in MDV2_RESERVED:
            raise ParseError(
                f"Character '{ch}' is reserved and must be escaped with the preceding '\\'"
            )
        out.add(ch)
        i += 1
    if stack:
        kind, _, byte_offset = stack[-1]
        raise ParseError(
            f"Can't find end of {MDV2_NAMES[kind]} entity at byte offset {byte_offset}"
        )
    return out.text, entities


LEGACY = {"*": "bold", "_": "italic"}


def parse_markdown(source: str) -> tuple[str, list[dict[str, Any]]]:
    out = _Builder()
    entities: list[dict[str, Any]] = []
    i = 0
    n = len(source)
    while i < n:
        ch = source[i]
        byte_offset = len(source[:i].encode())
        if ch in LEGACY or ch == "`":
            marker = "```" if source.startswith("```", i) else ch
            end = source.find(marker, i + len(marker))
            if end == -1:
                raise ParseError(
                    f"Can't find end of the entity starting at byte offset {byte_offset}"
                )
            start = out.units
            out.add(source[i + len(marker) : end])
            kind = "pre" if marker == "```" else ("code" if ch == "`" else LEGACY[ch])
            made = _entity(kind, start, out.units, {})
            if made:
                entities.append(made)
            i = end + len(marker)
        elif ch == "[":
            close = source.find("](", i)
            end = source.find(")", close) if close != -1 else -1
            if close == -1 or end == -1:
                raise ParseError(
                    f"Can't find end of the entity starting at byte offset {byte_offset}"
                )
            start = out.units
            out.add(source[i + 1 : close])
            made = _entity("text_link", start, out.units, {"href": source[close + 2 : end]})
            if made:
                entities.append(made)
            i = end + 1
        else:
            out.add(ch)
            i += 1
    return out.text, entities


def check_entities(text: str, raw: Any) -> list[dict[str, Any]]:
    if not isinstance(raw, list):
        raise ValueError("Bad Request: can't parse entities JSON object")
    total = utf16_len(text)
    checked: list[dict[str, Any]] = []
    for item in raw:
        if not isinstance(item, dict) or item.get("type") not in ENTITY_TYPES:
            raise ValueError("Bad Request: can't parse entities: unsupported entity type")
        offset, length = item.get("offset"), item.get("length")
        if not isinstance(offset, int) or not isinstance(length, int) or offset < 0 or length < 1:
            raise ValueError("Bad Request: can't parse entities: wrong entity offset or length")
        if offset + length > total:
            raise ValueError("Bad Request: can't parse entities: entity beyond the end of text")
        checked.append(dict(item))
    return checked


def command_entities(text: str) -> list[dict[str, Any]]:
    """Entities Telegram adds to what a user types: a leading /command."""
    match = re.match(r"/[A-Za-z0-9_]{1,32}(@[A-Za-z0-9_]{3,32})?", text)
    if not match:
        return []
    return [{"type": "bot_command", "offset": 0, "length": utf16_len(match.group(0))}]


def parse(
    text: str, parse_mode: str | None, entities: Any | None
) -> tuple[str, list[dict[str, Any]]]:
    """Text and entities as Telegram would store them; raises ValueError with the description."""
    mode = (parse_mode or "").lower()
    if entities is not None and entities != []:
        plain, parsed = text, check_entities(text, entities)
    elif mode == "html":
        plain, parsed = parse_html(text)
    elif mode == "markdownv2":
        plain, parsed = parse_markdown_v2(text)
    elif mode == "markdown":
        plain, parsed = parse_markdown(text)
    elif mode:
        raise ValueError("Bad Request: unsupported parse_mode")
    else:
        plain, parsed = text, []
    return plain, parsed


def _units(text: str) -> list[str]:
    """The text split into UTF-16 code units' worth of characters (astral chars take two)."""
    units: list[str] = []
    for ch in text:
        units.append(ch)
        if ord(ch) > 0xFFFF:
            units.append("")
    return units


HTML_OPEN = {
    "bold": "<b>",
    "italic": "<i>",
    "underline": "<u>",
    "strikethrough": "<s>",
    "spoiler": '<span class="spoiler">',
    "code": "<code>",
    "blockquote": "<blockquote>",
    "expandable_blockquote": "<blockquote>",
}
HTML_CLOSE = {
    "bold": "</b>",
    "italic": "</i>",
    "underline": "</u>",
    "strikethrough": "</s>",
    "spoiler": "</span>",
    "code": "</code>",
    "blockquote": "</blockquote>",
    "expandable_blockquote": "</blockquote>",
    "pre": "</code></pre>",
    "text_link": "</a>",
}


def to_html(text: str, entities: list[dict[str, Any]]) -> str:
    """Safe HTML for display: every character escaped, only known entity tags emitted."""
    units = _units(text)
    opens: dict[int, list[dict[str, Any]]] = {}
    closes: dict[int, list[dict[str, Any]]] = {}
    for entity in sorted(entities, key=lambda e: (e["offset"], -e["length"])):
        opens.setdefault(entity["offset"], []).append(entity)
        closes.setdefault(entity["offset"] + entity["length"], []).insert(0, entity)
    parts: list[str] = []
    for index in range(len(units) + 1):
        for entity in closes.get(index, []):
            parts.append(HTML_CLOSE.get(entity["type"], ""))
        for entity in opens.get(index, []):
            kind = entity["type"]
            if kind == "text_link":
                url = str(entity.get("url", ""))
                safe = url if re.match(r"(https?|tg|mailto):", url) else "#"
                parts.append(f'<a href="{html.escape(safe)}" rel="noopener" target="_blank">')
            elif kind == "pre":
                language = html.escape(str(entity.get("language", "")))
                parts.append(f'<pre><code data-language="{language}">')
            else:
                parts.append(HTML_OPEN.get(kind, ""))
        if index < len(units):
            parts.append(html.escape(units[index]))
    return "".join(parts)

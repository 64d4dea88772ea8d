"""TeX math in model replies, for Telegram: found in the Markdown, inline math shown as readable
Unicode where it can be, everything else kept exactly as written.

Delimiters: ``$...$`` and ``\\(...\\)`` inline, ``$$...$$`` and ``\\[...\\]`` display (as a
block of their own lines, or within a paragraph). A ``$`` opens math only when a non-space
follows it, and closes only after a non-space and before a non-digit, so "$5 and $10" stays
prose (the rule KaTeX's auto-render and Pandoc use).

Every search for a closing delimiter remembers its answer for the text it searched, so a reply
full of unclosed openers is still read in linear time.

Conversion (``to_unicode``) reads the TeX with a small recursive parser and the symbol tables of
the ``unicodeit`` package (used as data only: its own replace() matches command prefixes, so
``\\left`` would come out as "≤ft"). Anything it cannot show faithfully (alignment, matrices, an
unknown command, a superscript without a Unicode form inside a larger one) makes it give up, and
the formula is shown as code, exactly as the model wrote it. No backslash is ever dropped.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field

from markdown_it import MarkdownIt
from markdown_it.rules_block import StateBlock
from markdown_it.rules_inline import StateInline
from unicodeit.data import COMBININGMARKS, REPLACEMENTS, SUBSUPERSCRIPTS

# Longer than this, inline math is shown as written rather than converted.
MAX_CONVERTED = 400
MAX_DEPTH = 24

# --- finding math in Markdown ----------------------------------------------------------------


@dataclass
class _Found:
    """The last answer of one search over one text: from ``start`` on, the first match is at
    ``at`` (-1: none). A later search from a position in [start, at] has the same answer."""

    text: str = ""
    start: int = 0
    at: int = -1


@dataclass
class _Memo:
    found: dict[str, _Found] = field(default_factory=dict)


def _memo(state: StateInline | StateBlock) -> _Memo:
    memo = state.env.get("_math_memo")
    if not isinstance(memo, _Memo):
        memo = _Memo()
        state.env["_math_memo"] = memo
    return memo


def _dollar_closes(src: str, i: int, end: int) -> bool:
    before = src[i - 1]
    after = src[i + 1] if i + 1 < end else ""
    return not before.isspace() and before != "\\" and not after.isdigit() and after != "$"


def _find(state: StateInline, what: str, start: int, end: int) -> int:
    """The first closer ``what`` at or after ``start`` (-1: none). ``$`` means a single dollar
    that may close inline math."""
    src = state.src
    memo = _memo(state)
    key = f"{what}:{end}"
    last = memo.found.get(key)
    if (
        last is not None
        and last.text is src
        and last.start <= start
        and (last.at == -1 or last.at >= start)
    ):
        return last.at
    at = src.find(what, start, end)
    if what == "$":
        while at != -1 and not _dollar_closes(src, at, end):
            at = src.find("$", at + 1, end)
    memo.found[key] = _Found(src, start, at)
    return at


def _math_inline(state: StateInline, silent: bool) -> bool:
    src, pos, end = state.src, state.pos, state.posMax
    ch = src[pos]
    if ch == "$":
        if src.startswith("$$", pos):
            close = _find(state, "$$", pos + 2, end)
            if close == -1 or not src[pos + 2 : close].strip():
                return False
            kind, content, after = "math_inline_display", src[pos + 2 : close], close + 2
        else:
            if pos + 1 >= end or src[pos + 1].isspace():
                return False
            close = _find(state, "$", pos + 2, end)
            if close == -1:
                return False
            kind, content, after = "math_inline", src[pos + 1 : close], close + 1
        markup = "$$" if kind == "math_inline_display" else "$"
    elif ch == "\\" and pos + 1 < end and src[pos + 1] in "([":
        closer = "\\)" if src[pos + 1] == "(" else "\\]"
        close = _find(state, closer, pos + 2, end)
        if close == -1 or not src[pos + 2 : close].strip():
            return False
        kind = "math_inline" if closer == "\\)" else "math_inline_display"
        content, after, markup = src[pos + 2 : close], close + 2, src[pos : pos + 2]
    else:
        return False
    if not silent:
        token = state.push(kind, "math", 0)
        token.content = content
        token.markup = markup
    state.pos = after
    return True


def _closing_line(state: StateBlock, closer: str, first: int, last: int) -> int:
    """The first line in [first, last) whose text ends with ``closer`` (-1: none), remembered
    like the inline searches."""
    memo = _memo(state)
    key = f"block{closer}:{last}"
    found = memo.found.get(key)
    if (
        found is not None
        and found.text is state.src
        and found.start <= first
        and (found.at == -1 or found.at >= first)
    ):
        return found.at
    at = -1
    for line in range(first, last):
        text = state.src[state.bMarks[line] + state.tShift[line] : state.eMarks[line]]
        if text.rstrip().endswith(closer):
            at = line
            break
    memo.found[key] = _Found(state.src, first, at)
    return at


def _math_block(state: StateBlock, start_line: int, end_line: int, silent: bool) -> bool:
    if state.sCount[start_line] - state.blkIndent >= 4:
        return False
    begin = state.bMarks[start_line] + state.tShift[start_line]
    line_end = state.eMarks[start_line]
    first = state.src[begin:line_end]
    if first.startswith("$$"):
        closer = "$$"
    elif first.startswith("\\["):
        closer = "\\]"
    else:
        return False
    rest = first[2:].rstrip()
    if rest.endswith(closer) and rest[: -len(closer)].strip():
        last_line, content = start_line, rest[: -len(closer)]
    elif rest.strip():
        # Text after the opener that does not close on this line: a paragraph's math.
        return False
    else:
        last_line = _closing_line(state, closer, start_line + 1, end_line)
        if last_line == -1:
            return False
        # The closer may end a line of math ("x = 1 $$") or stand alone.
        close_text = state.src[state.bMarks[last_line] : state.eMarks[last_line]].rstrip()
        close_at = state.bMarks[last_line] + len(close_text) - len(closer)
        content = state.src[line_end + 1 : close_at]
    if silent:
        return True
    token = state.push("math_block", "math", 0)
    token.block = True
    token.content = content.strip("\n")
    token.markup = first[:2]
    token.map = [start_line, last_line + 1]
    state.line = last_line + 1
    return True


# Escapes that hide Markdown: the backslash goes, as CommonMark says. Before anything else (TeX's
# \, \{ \\ and the like) it stays: a model's backslashes are never dropped.
MARKDOWN_ESCAPES = frozenset("`*_[]<>#~|\\")


def _escape(state: StateInline, silent: bool) -> bool:
    pos, end, src = state.pos, state.posMax, state.src
    if src[pos] != "\\" or pos + 1 >= end:
        return False
    ch = src[pos + 1]
    if ch == "\n":
        if not silent:
            state.push("hardbreak", "br", 0)
        pos += 2
        while pos < end and src[pos] in " \t":
            pos += 1
        state.pos = pos
        return True
    if ch not in MARKDOWN_ESCAPES or ch == "\\":
        return False
    if not silent:
        token = state.push("text_special", "", 0)
        token.content = ch
        token.markup = "\\" + ch
        token.info = "escape"
    state.pos = pos + 2
    return True


def math_plugin(md: MarkdownIt) -> None:
    md.inline.ruler.at("escape", _escape)
    md.inline.ruler.before("escape", "math_inline", _math_inline)
    md.block.ruler.before(
        "fence",
        "math_block",
        _math_block,
        {"alt": ["paragraph", "reference", "blockquote", "list"]},
    )


# --- TeX → Unicode -----------------------------------------------------------------------------

SYMBOLS: dict[str, str] = {k: v for k, v in REPLACEMENTS}
SYMBOLS.update(
    {
        "\\dots": "…",
        "\\ldots": "…",
        "\\cdots": "⋯",
        "\\langle": "⟨",
        "\\rangle": "⟩",
        "\\lvert": "|",
        "\\rvert": "|",
        "\\vert": "|",
        "\\lVert": "‖",
        "\\rVert": "‖",
        "\\Vert": "‖",
        "\\|": "‖",
        "\\colon": ":",
        "\\lbrace": "{",
        "\\rbrace": "}",
        "\\lbrack": "[",
        "\\rbrack": "]",
        "\\setminus": "∖",
        "\\emptyset": "∅",
        "\\varnothing": "∅",
        "\\degree": "°",
        "\\cdotp": "·",
    }
)
SPACES = {
    "\\,": "\u2009",
    "\\:": "\u205f",
    "\\>": "\u205f",
    "\\;": "\u2004",
    "\\!": "",
    "\\ ": " ",
    "\\quad": "\u2003",
    "\\qquad": "\u2003\u2003",
    "\\enspace": "\u2002",
    "\\thinspace": "\u2009",
}
LITERAL = {"\\{": "{", "\\}": "}", "\\%": "%", "\\$": "$", "\\&": "&", "\\#": "#", "\\_": "_"}
SIZES = frozenset(
    [
        "left",
        "right",
        "middle",
        "big",
        "Big",
        "bigg",
        "Bigg",
        "bigl",
        "bigr",
        "Bigl",
        "Bigr",
        "biggl",
        "biggr",
        "Biggl",
        "Biggr",
        "displaystyle",
        "textstyle",
        "scriptstyle",
        "limits",
        "nolimits",
    ]
)
FUNCTIONS = frozenset(
    [
        "sin",
        "cos",
        "tan",
        "cot",
        "sec",
        "csc",
        "arcsin",
        "arccos",
        "arctan",
        "sinh",
        "cosh",
        "tanh",
        "coth",
        "log",
        "ln",
        "lg",
        "exp",
        "lim",
        "liminf",
        "limsup",
        "max",
        "min",
        "sup",
        "inf",
        "det",
        "gcd",
        "lcm",
        "deg",
        "dim",
        "ker",
        "arg",
        "Pr",
        "hom",
        "mod",
        "bmod",
    ]
)
TEXT = frozenset(
    ["text", "textrm", "textup", "textnormal", "mathrm", "mathit", "textit", "operatorname", "mbox"]
)
BOLD = frozenset(["textbf", "mathbf", "boldsymbol", "bm"])
FONTS = frozenset(["mathbb", "mathcal", "mathfrak", "mathsf", "mathtt", "mathscr"])
ACCENTS = {k[1:]: v for k, v in COMBININGMARKS}
FRACTIONS = frozenset(["frac", "dfrac", "tfrac", "cfrac"])
# Two wrong entries in the table: a Hangul letter for V, a Canadian syllabic for ".".
SUPERSCRIPT = {k[1]: v for k, v in SUBSUPERSCRIPTS if k[0] == "^" and k not in ("^V", "^.")}
SUBSCRIPT = {k[1]: v for k, v in SUBSUPERSCRIPTS if k[0] == "_"}
SUPERSCRIPT.update({"∘": "°", "′": "′", "−": "⁻", "*": "*"})


class _CannotConvert(Exception):
    pass


def _tokens(tex: str) -> list[str]:
    out: list[str] = []
    i = 0
    while i < len(tex):
        ch = tex[i]
        if ch == "\\" and i + 1 < len(tex):
            j = i + 1
            if tex[j].isalpha():
                while j < len(tex) and tex[j].isalpha():
                    j += 1
                out.append(tex[i:j])
                i = j
                continue
            out.append(tex[i : j + 1])
            i = j + 1
            continue
        out.append(ch)
        i += 1
    return out


class _Reader:
    def __init__(self, tex: str) -> None:
        self.tokens = _tokens(tex)
        self.at = 0
        self.depth = 0

    def peek(self) -> str | None:
        return self.tokens[self.at] if self.at < len(self.tokens) else None

    def take(self) -> str:
        piece = self.peek()
        if piece is None:
            raise _CannotConvert("unexpected end")
        self.at += 1
        return piece

    def skip_spaces(self) -> None:
        while self.peek() == " ":
            self.at += 1

    def raw_group(self) -> str:
        """The source of the next argument, unconverted (for \\text and font lookups)."""
        self.skip_spaces()
        piece = self.take()
        if piece != "{":
            return piece
        parts: list[str] = []
        level = 1
        while True:
            piece = self.take()
            if piece == "{":
                level += 1
            elif piece == "}":
                level -= 1
                if level == 0:
                    return "".join(parts)
            parts.append(piece)

    def argument(self) -> str:
        self.skip_spaces()
        piece = self.take()
        if piece == "{":
            return self.sequence(closing="}")
        self.at -= 1
        return self.one()

    def sequence(self, closing: str | None = None) -> str:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise _CannotConvert("too deep")
        out: list[str] = []
        while True:
            piece = self.peek()
            if piece is None:
                if closing is not None:
                    raise _CannotConvert("unclosed group")
                break
            if piece == closing:
                self.at += 1
                break
            out.append(self.one())
        self.depth -= 1
        return "".join(out)

    def one(self) -> str:
        piece = self.take()
        if piece == "{":
            return self.sequence(closing="}")
        if piece == "}":
            raise _CannotConvert("unbalanced }")
        if piece in ("^", "_"):
            return _script(self.argument(), SUPERSCRIPT if piece == "^" else SUBSCRIPT, piece)
        if piece == "'":
            return "′"
        if piece in ("&", "\\\\"):
            raise _CannotConvert("alignment")
        if piece == "~":
            return "\u00a0"
        if not piece.startswith("\\"):
            return piece
        if piece in SPACES:
            return SPACES[piece]
        if piece in LITERAL:
            return LITERAL[piece]
        name = piece[1:]
        if name in SIZES:
            if name in ("left", "right", "middle") and self.peek() == ".":
                self.at += 1
            return ""
        if name in FUNCTIONS:
            return name
        if name == "pmod":
            return f" (mod {self.argument()})"
        if name in FRACTIONS:
            top, bottom = self.argument(), self.argument()
            return f"{_wrap(top)}/{_wrap(bottom)}"
        if name == "sqrt":
            index = ""
            if self.peek() == "[":
                self.at += 1
                parts: list[str] = []
                while self.peek() != "]":
                    parts.append(self.one())
                self.at += 1
                index = "".join(parts)
            body = _wrap(self.argument())
            if index in ("", "2"):
                return "√" + body
            if index in ("3", "4"):
                return ("∛" if index == "3" else "∜") + body
            return _script(index, SUPERSCRIPT, "^") + "√" + body
        if name in TEXT:
            return self.raw_group().replace("\\ ", " ").replace("~", "\u00a0")
        if name in BOLD:
            return self._styled("mathbf", self.raw_group(), fallback=True)
        if name in FONTS:
            return self._styled(name, self.raw_group(), fallback=False)
        if name in ACCENTS:
            inner = self.argument()
            if len(inner) != 1:
                raise _CannotConvert(f"\\{name} over more than one character")
            return inner + ACCENTS[name]
        if name == "not":
            following = self.one()
            if following == "=":
                return "≠"
            if len(following) != 1:
                raise _CannotConvert("\\not before more than one character")
            return following + "\u0338"
        if piece in SYMBOLS:
            return SYMBOLS[piece]
        raise _CannotConvert(f"unknown {piece}")

    def _styled(self, font: str, raw: str, *, fallback: bool) -> str:
        whole = SYMBOLS.get(f"\\{font}{{{raw}}}")
        if whole is not None:
            return whole
        out = []
        for ch in raw:
            styled = SYMBOLS.get(f"\\{font}{{{ch}}}")
            if styled is None:
                if not fallback and not ch.isspace():
                    raise _CannotConvert(f"\\{font}{{{ch}}}")
                styled = ch
            out.append(styled)
        return "".join(out)


def _wrap(text: str) -> str:
    """A fraction's part or a root's body, in parentheses when it is more than one term."""
    if len(text) <= 1 or text.isalnum() or (text.startswith("(") and text.endswith(")")):
        return text
    return f"({text})"


def _script(text: str, table: dict[str, str], mark: str) -> str:
    if text and all(ch in table for ch in text):
        return "".join(table[ch] for ch in text)
    if len(text) == 1:
        return mark + text
    return f"{mark}({text})"


def to_unicode(tex: str) -> str | None:
    """Inline math as readable Unicode, or None when it cannot be shown faithfully."""
    if len(tex) > MAX_CONVERTED or "\\begin" in tex:
        return None
    reader = _Reader(tex)
    try:
        text = reader.sequence()
    except _CannotConvert:
        return None
    # Composed where Unicode has one character: ∈ and a slash become ∉.
    text = unicodedata.normalize("NFC", text.strip())
    return text or None

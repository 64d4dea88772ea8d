// Markdown of model replies rendered to DOM nodes. Text only ever becomes text nodes; the only
// elements made are the ones below, and links keep only http(s) and mailto addresses. Nothing is
// parsed as HTML, so a reply cannot inject markup whatever it contains.
//
// Math ($...$ and \(...\) inline, $$...$$ and \[...\] display) becomes an element holding the TeX
// as written; code blocks get a copy button. Once the reply is on the page, richtext.js typesets
// the math with KaTeX and colours the code with highlight.js (both loaded on first need). A "$"
// opens math only before a non-space and closes only after a non-space and before a non-digit,
// so "$5 and $10" stays prose.
//
// Every step takes time linear in the length of the reply, whatever its shape: inline spans are
// found in one pass that looks closers up in tables built once per text (no pattern ever scans
// ahead from each position), block patterns are checked by hand or by patterns that cannot
// backtrack, and quotes nest at most MAX_QUOTE_DEPTH deep.

import { enhance } from "./richtext.js";
import { copyWithToast, icon, t as translate } from "./ui.js";

const MAX_QUOTE_DEPTH = 8;

// The math and code elements of the reply being rendered, made rich once it is on the page.
let maths = [];
let codes = [];

function el(tag, children = []) {
  const node = document.createElement(tag);
  for (const child of children) node.append(child);
  return node;
}

function safeHref(raw) {
  try {
    const url = new URL(raw, window.location.origin);
    return ["http:", "https:", "mailto:"].includes(url.protocol) ? url.href : null;
  } catch (_) {
    return null;
  }
}

function link(children, href) {
  const a = el("a", children);
  a.href = href;
  a.target = "_blank";
  a.rel = "noopener noreferrer nofollow";
  return a;
}

// --- inline spans: `code`, **bold**, __bold__, *italic*, _italic_, ~~strike~~, [text](url),
// bare http(s) URLs ---------------------------------------------------------------------------

const SPACE = /\s/;
// What a bare URL may not end with.
const TRAIL = ".,;:!?'\"";
// Characters that may start a span; a text without any is all plain.
const SPECIAL = /[`*_~[h$\\]/;

function isSpace(c) {
  if (c === undefined) return false;
  const k = c.charCodeAt(0);
  return k < 128 ? k === 32 || (k >= 9 && k <= 13) : SPACE.test(c);
}

function isDigit(c) {
  if (c === undefined) return false;
  const k = c.charCodeAt(0);
  return k >= 48 && k <= 57;
}

function isWord(c) {
  if (c === undefined) return false;
  const k = c.charCodeAt(0);
  return (k >= 48 && k <= 57) || (k >= 65 && k <= 90) || (k >= 97 && k <= 122) || k === 95;
}

// For each position, the first position at or after it where `test` holds (text.length: none).
function nextWhere(t, test) {
  const n = t.length;
  const next = new Int32Array(n + 2).fill(n);
  for (let i = n - 1; i >= 0; i -= 1) next[i] = test(t, i) ? i : next[i + 1];
  return next;
}

const pairCloser = (c) => (t, i) => t[i] === c && t[i + 1] === c && i > 0 && !isSpace(t[i - 1]);

// How each lookup table of a text is built, in one linear pass.
const TABLES = {
  boldClose: (t) => nextWhere(t, pairCloser("*")),
  bold2Close: (t) => nextWhere(t, pairCloser("_")),
  strikeClose: (t) => nextWhere(t, pairCloser("~")),
  italicClose: (t) =>
    nextWhere(t, (s, i) => s[i] === "*" && i > 0 && !isSpace(s[i - 1]) && s[i - 1] !== "*"),
  italic2Close: (t) =>
    nextWhere(
      t,
      (s, i) =>
        s[i] === "_" && i > 0 && !isSpace(s[i - 1]) && s[i - 1] !== "_" && !isWord(s[i + 1]),
    ),
  // A "$" that may close inline math: after a non-space (not an escape), before a non-digit.
  dollarClose: (t) =>
    nextWhere(
      t,
      (s, i) =>
        s[i] === "$" && i > 0 && !isSpace(s[i - 1]) && s[i - 1] !== "\\" && s[i - 1] !== "$" && s[i + 1] !== "$" && !isDigit(s[i + 1]),
    ),
  dollarPair: (t) => nextWhere(t, (s, i) => s[i] === "$" && s[i + 1] === "$"),
  parenClose: (t) => nextWhere(t, (s, i) => s[i] === "\\" && s[i + 1] === ")"),
  bracketClose: (t) => nextWhere(t, (s, i) => s[i] === "\\" && s[i + 1] === "]"),
  notStar: (t) => nextWhere(t, (s, i) => s[i] !== "*"),
  notUnderscore: (t) => nextWhere(t, (s, i) => s[i] !== "_"),
  notTilde: (t) => nextWhere(t, (s, i) => s[i] !== "~"),
  bracket: (t) => nextWhere(t, (s, i) => s[i] === "]"),
  newline: (t) => nextWhere(t, (s, i) => s[i] === "\n"),
  hrefStop: (t) => nextWhere(t, (s, i) => s[i] === ")" || isSpace(s[i])),
  nonSpace: (t) => nextWhere(t, (s, i) => !isSpace(s[i])),
  quote: (t) => nextWhere(t, (s, i) => s[i] === '"'),
  urlStop: (t) => nextWhere(t, (s, i) => isSpace(s[i]) || "<>()".includes(s[i])),
  // For each position, the last position at or before it that a bare URL may end on.
  urlEnd: (t) => {
    const last = new Int32Array(t.length + 1).fill(-1);
    let found = -1;
    for (let i = 0; i < t.length; i += 1) {
      if (!TRAIL.includes(t[i])) found = i;
      last[i] = found;
    }
    return last;
  },
  // Backtick runs: for the position each run starts at, where it ends and where the next run of
  // the same length starts (0: none).
  runs: (t) => {
    const ends = new Int32Array(t.length + 1);
    const mates = new Int32Array(t.length + 1);
    const starts = [];
    for (let i = 0; i < t.length; ) {
      if (t[i] !== "`") {
        i += 1;
        continue;
      }
      let j = i;
      while (t[j] === "`") j += 1;
      starts.push(i);
      ends[i] = j;
      i = j;
    }
    const following = new Map();
    for (let r = starts.length - 1; r >= 0; r -= 1) {
      const length = ends[starts[r]] - starts[r];
      if (following.has(length)) mates[starts[r]] = following.get(length);
      following.set(length, starts[r]);
    }
    return { ends, mates };
  },
};

// The lookup tables of one text, each built the first time it is needed.
class Scan {
  constructor(text) {
    this.text = text;
    this.built = new Map();
  }

  get(name) {
    let table = this.built.get(name);
    if (table === undefined) {
      table = TABLES[name](this.text);
      this.built.set(name, table);
    }
    return table;
  }
}

// Math: the TeX as written (delimiters too) until richtext.js typesets it.
function math(tex, display, source, block = false) {
  const node = document.createElement(block ? "div" : "span");
  node.className = display ? "math math-display" : "math math-inline";
  node.dataset.tex = tex;
  node.append(source);
  maths.push(node);
  return node;
}

// The spans of text[start, end) as nodes. Each kind of span closes at its first possible closer,
// so a span never holds another of its own kind: recursion is at most a few kinds deep, and each
// level reads its characters once.
function spans(scan, start, end) {
  const t = scan.text;
  const nodes = [];
  let plain = start;
  let p = start;
  const emit = (node, next) => {
    if (p > plain) nodes.push(t.slice(plain, p));
    nodes.push(node);
    p = next;
    plain = next;
  };
  while (p < end) {
    const c = t[p];
    if (c === "`") {
      const runs = scan.get("runs");
      const runEnd = runs.ends[p];
      if (runEnd === 0) {
        p += 1;
        continue;
      }
      const mate = runs.mates[p];
      const length = runEnd - p;
      if (mate !== 0 && mate + length <= end) {
        emit(el("code", [t.slice(runEnd, mate)]), mate + length);
      } else {
        p = Math.min(runEnd, end);
      }
      continue;
    }
    if (c === "*" || c === "_" || c === "~") {
      const double = t[p + 1] === c && p + 2 < end && !isSpace(t[p + 2]);
      const table = c === "*" ? "boldClose" : c === "_" ? "bold2Close" : "strikeClose";
      const close = double ? scan.get(table)[p + 3] : end;
      // A span holds more than its own delimiter: a run of stars stays a run of stars.
      const other = c === "*" ? "notStar" : c === "_" ? "notUnderscore" : "notTilde";
      if (double && close + 2 <= end && scan.get(other)[p + 2] < close) {
        const tag = c === "~" ? "del" : "strong";
        emit(el(tag, spans(scan, p + 2, close)), close + 2);
        continue;
      }
      const next = t[p + 1];
      const opens =
        c !== "~" &&
        p + 1 < end &&
        !isSpace(next) &&
        next !== c &&
        (c === "*" || !isWord(p > start ? t[p - 1] : undefined));
      const single = opens ? scan.get(c === "*" ? "italicClose" : "italic2Close")[p + 2] : end;
      if (opens && single < end) {
        emit(el("em", spans(scan, p + 1, single)), single + 1);
        continue;
      }
      p += 1;
      continue;
    }
    if (c === "$") {
      if (t[p + 1] === "$") {
        const close = scan.get("dollarPair")[p + 2];
        if (close + 2 <= end && t.slice(p + 2, close).trim()) {
          emit(math(t.slice(p + 2, close), true, t.slice(p, close + 2)), close + 2);
        } else {
          p += 2;
        }
        continue;
      }
      if (p + 1 < end && !isSpace(t[p + 1])) {
        const close = scan.get("dollarClose")[p + 2];
        if (close < end) {
          emit(math(t.slice(p + 1, close), false, t.slice(p, close + 1)), close + 1);
          continue;
        }
      }
      p += 1;
      continue;
    }
    if (c === "\\") {
      const next = t[p + 1];
      if (next === "(" || next === "[") {
        const close = scan.get(next === "(" ? "parenClose" : "bracketClose")[p + 2];
        if (close + 2 <= end && t.slice(p + 2, close).trim()) {
          emit(math(t.slice(p + 2, close), next === "[", t.slice(p, close + 2)), close + 2);
          continue;
        }
      }
      // "\[", "\(" and "\$" that open nothing are escapes: no link, no math, shown as written.
      p += next === "$" || next === "[" || next === "(" ? 2 : 1;
      continue;
    }
    if (c === "[") {
      const close = linkEnd(scan, p, end);
      if (close !== null) {
        const [labelEnd, hrefEnd, after] = close;
        const safe = safeHref(t.slice(labelEnd + 2, hrefEnd));
        if (safe) {
          emit(link(spans(scan, p + 1, labelEnd), safe), after);
        } else {
          // Shown as written, nothing in it made a link or a span.
          emit(t.slice(p, after), after);
        }
        continue;
      }
      p += 1;
      continue;
    }
    if (c === "h" && (t.startsWith("http://", p) || t.startsWith("https://", p))) {
      const body = p + (t[p + 4] === "s" ? 8 : 7);
      const stop = Math.min(scan.get("urlStop")[body], end);
      const last = stop > body ? scan.get("urlEnd")[stop - 1] : -1;
      if (last >= body + 1) {
        const bare = t.slice(p, last + 1);
        const safe = safeHref(bare);
        emit(safe ? link([bare], safe) : bare, last + 1);
        continue;
      }
    }
    p += 1;
  }
  if (end > plain) nodes.push(t.slice(plain, end));
  return nodes;
}

// A link `[label](href)` or `[label](href "title")` opening at p: [end of label, end of href,
// position after the link], or null.
function linkEnd(scan, p, end) {
  const t = scan.text;
  const labelEnd = scan.get("bracket")[p + 1];
  if (labelEnd <= p + 1 || labelEnd + 1 >= end || t[labelEnd + 1] !== "(") return null;
  if (scan.get("newline")[p + 1] < labelEnd) return null;
  const href = labelEnd + 2;
  const hrefEnd = scan.get("hrefStop")[href];
  if (hrefEnd <= href || hrefEnd >= end) return null;
  if (t[hrefEnd] === ")") return [labelEnd, hrefEnd, hrefEnd + 1];
  const title = scan.get("nonSpace")[hrefEnd];
  if (title >= end || t[title] !== '"') return null;
  const titleEnd = scan.get("quote")[title + 1];
  if (titleEnd + 1 >= end || t[titleEnd + 1] !== ")") return null;
  return [labelEnd, hrefEnd, titleEnd + 2];
}

export function inline(text) {
  return SPECIAL.test(text) ? spans(new Scan(text), 0, text.length) : [text];
}

// The lines of a paragraph, their breaks kept as newlines (shown by `white-space: pre-line`),
// neighbouring text in one text node.
function withBreaks(lines) {
  const nodes = [];
  let text = "";
  lines.forEach((line, index) => {
    if (index) text += "\n";
    for (const node of inline(line)) {
      if (typeof node === "string") {
        text += node;
      } else {
        if (text) nodes.push(text);
        text = "";
        nodes.push(node);
      }
    }
  });
  if (text) nodes.push(text);
  return nodes;
}

// --- blocks ----------------------------------------------------------------------------------

const FENCE_MARK = /^(`{3,}|~{3,})/;
const FENCE_LANG = /^[\w+#.-]*$/;
const HEADING = /^(#{1,6})\s+/;
const BULLET = /^(\s*)[-*+]\s+(.*)$/;
const ORDERED = /^(\s*)(\d{1,9})[.)]\s+(.*)$/;
const QUOTE = /^\s*>\s?(.*)$/;
const RULE = /^(?:-{3,}|\*{3,}|_{3,})$/;
const SEP_CELL = /^:?-+:?$/;
// How every block but a paragraph or a table starts; a line that does not is a paragraph's.
const BLOCK_START = /^\s*[-`~#>*+_\d$\\]/;
const MATH_OPEN = /^\s{0,3}(\$\$|\\\[)/;
const MATH_LEAD = /^\s*[$\\]/;

// A fence line: its marker and language, or null.
function fenceOf(line) {
  const trimmed = line.trim();
  const mark = FENCE_MARK.exec(trimmed);
  if (!mark) return null;
  const lang = trimmed.slice(mark[1].length).trim();
  return FENCE_LANG.test(lang) ? { marker: mark[1], lang } : null;
}

// A heading line: its level and text, or null. Closing hashes are dropped.
function headingOf(line) {
  const match = HEADING.exec(line);
  if (!match) return null;
  let text = line.slice(match[0].length).trimEnd();
  let cut = text.length;
  while (cut > 0 && text[cut - 1] === "#") cut -= 1;
  text = text.slice(0, cut).trimEnd();
  return { level: match[1].length, text };
}

function isRule(line) {
  return RULE.test(line.replace(/\s+/g, ""));
}

function cells(line) {
  let row = line.trim();
  if (row.startsWith("|")) row = row.slice(1);
  if (row.endsWith("|")) row = row.slice(0, -1);
  return row.split("|").map((cell) => cell.trim());
}

function isTableSeparator(line) {
  return cells(line).every((cell) => SEP_CELL.test(cell));
}

function table(header, rows) {
  const head = el("tr", cells(header).map((cell) => el("th", inline(cell))));
  const body = rows.map((row) => el("tr", cells(row).map((cell) => el("td", inline(cell)))));
  const wrap = el("div", [el("table", [el("thead", [head]), el("tbody", body)])]);
  wrap.className = "table-wrap";
  return wrap;
}

function list(lines, ordered) {
  const node = document.createElement(ordered ? "ol" : "ul");
  if (ordered) {
    const first = ORDERED.exec(lines[0]);
    if (first && first[2] !== "1") node.start = Number(first[2]);
  }
  let item = null;
  for (const line of lines) {
    const match = ordered ? ORDERED.exec(line) : BULLET.exec(line);
    if (match) {
      item = el("li", inline(ordered ? match[3] : match[2]));
      node.append(item);
    } else if (item) {
      item.append("\n");
      for (const child of inline(line.trim())) item.append(child);
    }
  }
  return node;
}

// For each line, the first line at or after it that ends display math with `closer` (lines.length:
// none), built once per text.
function closingLines(lines, closer) {
  const next = new Int32Array(lines.length + 1).fill(lines.length);
  for (let k = lines.length - 1; k >= 0; k -= 1) next[k] = lines[k].trimEnd().endsWith(closer) ? k : next[k + 1];
  return next;
}

// Display math that starts at line i, on its line ("$$ x $$") or on the lines up to its closer:
// { tex, next } or null.
function displayMathAt(lines, i, closers) {
  const open = MATH_OPEN.exec(lines[i]);
  if (!open) return null;
  const closer = open[1] === "$$" ? "$$" : "\\]";
  const rest = lines[i].slice(open[0].length).trimEnd();
  if (rest.endsWith(closer) && rest.length > 2) {
    const tex = rest.slice(0, -2).trim();
    return tex ? { tex, next: i + 1 } : null;
  }
  if (rest.trim()) return null;
  if (!closers[closer]) closers[closer] = closingLines(lines, closer);
  const j = closers[closer][i + 1];
  if (j >= lines.length) return null;
  const last = lines[j].trimEnd();
  const tex = [...lines.slice(i + 1, j), last.slice(0, -2)].join("\n").trim();
  return tex ? { tex, next: j + 1 } : null;
}

// A fenced code block: the code as written, its language, and a button that copies it.
function codeBlock(body, lang) {
  const code = el("code", [body]);
  if (lang) code.dataset.lang = lang;
  codes.push(code);
  const copy = el("button", [icon("copy"), el("span", [translate("copy")])]);
  copy.type = "button";
  copy.className = "code-copy";
  copy.dataset.testid = "code-copy";
  copy.setAttribute("aria-label", translate("copy_code"));
  copy.addEventListener("click", () => copyWithToast(body));
  const label = el("span", [lang]);
  label.className = "code-lang";
  const head = el("div", [label, copy]);
  head.className = "code-head";
  const block = el("div", [head, el("pre", [code])]);
  block.className = "code-block";
  block.dataset.testid = "code-block";
  return block;
}

// Whether a line starts a block that ends a paragraph.
function startsBlock(line, quotes, lines, i, closers) {
  if (!BLOCK_START.test(line)) return false;
  if (MATH_LEAD.test(line)) return Boolean(displayMathAt(lines, i, closers));
  return Boolean(
    fenceOf(line) ||
      headingOf(line) ||
      (quotes && QUOTE.test(line)) ||
      BULLET.test(line) ||
      ORDERED.test(line) ||
      isRule(line),
  );
}

export function render(source, depth = 0) {
  if (depth === 0) {
    maths = [];
    codes = [];
  }
  const root = document.createDocumentFragment();
  // Lookup tables of display math closers, built on first need.
  const closers = {};
  const lines = String(source || "").replace(/\r\n?/g, "\n").split("\n");
  // Deeper than this, a quote's lines are shown as they are.
  const quotes = depth < MAX_QUOTE_DEPTH;
  let i = 0;
  while (i < lines.length) {
    const line = lines[i];
    if (!line.trim()) {
      i += 1;
      continue;
    }
    const fence = fenceOf(line);
    if (fence) {
      const body = [];
      i += 1;
      while (i < lines.length && !lines[i].trim().startsWith(fence.marker)) body.push(lines[i++]);
      i += 1;
      root.append(codeBlock(body.join("\n"), fence.lang));
      continue;
    }
    const display = displayMathAt(lines, i, closers);
    if (display) {
      root.append(math(display.tex, true, lines.slice(i, display.next).join("\n"), true));
      i = display.next;
      continue;
    }
    const heading = headingOf(line);
    if (heading) {
      root.append(el(`h${Math.min(heading.level + 2, 6)}`, inline(heading.text)));
      i += 1;
      continue;
    }
    if (isRule(line)) {
      root.append(document.createElement("hr"));
      i += 1;
      continue;
    }
    if (line.includes("|") && i + 1 < lines.length && isTableSeparator(lines[i + 1])) {
      const rows = [];
      let j = i + 2;
      while (j < lines.length && lines[j].includes("|") && lines[j].trim()) rows.push(lines[j++]);
      root.append(table(line, rows));
      i = j;
      continue;
    }
    if (quotes && QUOTE.test(line)) {
      const quoted = [];
      while (i < lines.length && QUOTE.test(lines[i])) quoted.push(QUOTE.exec(lines[i++])[1]);
      const quote = document.createElement("blockquote");
      quote.append(render(quoted.join("\n"), depth + 1));
      root.append(quote);
      continue;
    }
    const ordered = ORDERED.test(line);
    if (ordered || BULLET.test(line)) {
      const items = [];
      while (i < lines.length && lines[i].trim() && !fenceOf(lines[i])) {
        if (!(ORDERED.test(lines[i]) || BULLET.test(lines[i]) || /^\s+\S/.test(lines[i]))) break;
        items.push(lines[i++]);
      }
      root.append(list(items, ordered));
      continue;
    }
    const para = [];
    while (i < lines.length && lines[i].trim() && !startsBlock(lines[i], quotes, lines, i, closers)) {
      para.push(lines[i++]);
    }
    if (!para.length) para.push(lines[i++]);
    root.append(el("p", withBreaks(para)));
  }
  if (depth === 0 && (maths.length || codes.length)) enhance(maths, codes);
  return root;
}

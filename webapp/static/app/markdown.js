// Markdown of model replies rendered to DOM nodes. Text only ever becomes text nodes; the only
// elements made are the ones below, and links keep only http(s) and mailto addresses. Nothing is
// parsed as HTML, so a reply cannot inject markup whatever it contains.

function el(tag, ...children) {
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

function link(text, href) {
  const a = document.createElement("a");
  a.href = href;
  a.target = "_blank";
  a.rel = "noopener noreferrer nofollow";
  a.append(...(typeof text === "string" ? [text] : text));
  return a;
}

// Inline spans: `code`, **bold**, *italic* / _italic_, ~~strike~~, [text](url), bare URLs.
const INLINE = /(`+)([^`]|[^`][\s\S]*?[^`])\1(?!`)|\*\*(?=\S)([\s\S]*?\S)\*\*|__(?=\S)([\s\S]*?\S)__|~~(?=\S)([\s\S]*?\S)~~|\*(?=[^\s*])([\s\S]*?[^\s*])\*|(?<![\w])_(?=[^\s_])([\s\S]*?[^\s_])_(?![\w])|\[([^\]\n]+)\]\(([^)\s]+)(?:\s+"[^"]*")?\)|(https?:\/\/[^\s<>()]+[^\s<>().,;:!?'"])/g;

export function inline(text) {
  const nodes = [];
  let last = 0;
  // matchAll works on its own copy of the pattern, so the nested calls below cannot disturb it.
  for (const match of text.matchAll(INLINE)) {
    if (match.index > last) nodes.push(text.slice(last, match.index));
    const [whole, , code, bold, bold2, strike, italic, italic2, label, href, bare] = match;
    if (code !== undefined) nodes.push(el("code", code));
    else if (bold !== undefined || bold2 !== undefined) nodes.push(el("strong", ...inline(bold ?? bold2)));
    else if (strike !== undefined) nodes.push(el("del", ...inline(strike)));
    else if (italic !== undefined || italic2 !== undefined) nodes.push(el("em", ...inline(italic ?? italic2)));
    else if (label !== undefined) {
      const safe = safeHref(href);
      nodes.push(safe ? link(inline(label), safe) : whole);
    } else if (bare !== undefined) {
      const safe = safeHref(bare);
      nodes.push(safe ? link(bare, safe) : bare);
    }
    last = match.index + whole.length;
  }
  if (last < text.length) nodes.push(text.slice(last));
  return nodes;
}

function withBreaks(lines) {
  const nodes = [];
  lines.forEach((line, index) => {
    if (index) nodes.push(document.createElement("br"));
    nodes.push(...inline(line));
  });
  return nodes;
}

const FENCE = /^\s*(```+|~~~+)\s*([\w+#.-]*)\s*$/;
const HEADING = /^(#{1,6})\s+(.*?)\s*#*\s*$/;
const BULLET = /^(\s*)[-*+]\s+(.*)$/;
const ORDERED = /^(\s*)(\d{1,9})[.)]\s+(.*)$/;
const QUOTE = /^\s*>\s?(.*)$/;
const RULE = /^\s*([-*_])(\s*\1){2,}\s*$/;
const TABLE_SEP = /^\s*\|?\s*:?-{2,}:?\s*(\|\s*:?-{2,}:?\s*)*\|?\s*$/;

function cells(line) {
  let row = line.trim();
  if (row.startsWith("|")) row = row.slice(1);
  if (row.endsWith("|")) row = row.slice(0, -1);
  return row.split("|").map((cell) => cell.trim());
}

function table(header, rows) {
  const head = el("tr", ...cells(header).map((cell) => el("th", ...inline(cell))));
  const body = rows.map((row) => el("tr", ...cells(row).map((cell) => el("td", ...inline(cell)))));
  const wrap = el("div", el("table", el("thead", head), el("tbody", ...body)));
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
      item = el("li", ...inline(ordered ? match[3] : match[2]));
      node.append(item);
    } else if (item) {
      item.append(document.createElement("br"), ...inline(line.trim()));
    }
  }
  return node;
}

export function render(source) {
  const root = document.createDocumentFragment();
  const lines = String(source || "").replace(/\r\n?/g, "\n").split("\n");
  let i = 0;
  while (i < lines.length) {
    const line = lines[i];
    if (!line.trim()) {
      i += 1;
      continue;
    }
    const fence = FENCE.exec(line);
    if (fence) {
      const body = [];
      i += 1;
      while (i < lines.length && !lines[i].trim().startsWith(fence[1])) body.push(lines[i++]);
      i += 1;
      const code = el("code", body.join("\n"));
      if (fence[2]) code.dataset.lang = fence[2];
      const pre = el("pre", code);
      root.append(pre);
      continue;
    }
    const heading = HEADING.exec(line);
    if (heading) {
      root.append(el(`h${Math.min(heading[1].length + 2, 6)}`, ...inline(heading[2])));
      i += 1;
      continue;
    }
    if (RULE.test(line)) {
      root.append(document.createElement("hr"));
      i += 1;
      continue;
    }
    if (line.includes("|") && i + 1 < lines.length && TABLE_SEP.test(lines[i + 1])) {
      const rows = [];
      let j = i + 2;
      while (j < lines.length && lines[j].includes("|") && lines[j].trim()) rows.push(lines[j++]);
      root.append(table(line, rows));
      i = j;
      continue;
    }
    if (QUOTE.test(line)) {
      const quoted = [];
      while (i < lines.length && QUOTE.test(lines[i])) quoted.push(QUOTE.exec(lines[i++])[1]);
      const quote = document.createElement("blockquote");
      quote.append(render(quoted.join("\n")));
      root.append(quote);
      continue;
    }
    const ordered = ORDERED.test(line);
    if (ordered || BULLET.test(line)) {
      const items = [];
      while (i < lines.length && lines[i].trim() && !FENCE.test(lines[i])) {
        if (!(ORDERED.test(lines[i]) || BULLET.test(lines[i]) || /^\s+\S/.test(lines[i]))) break;
        items.push(lines[i++]);
      }
      root.append(list(items, ordered));
      continue;
    }
    const para = [];
    while (
      i < lines.length &&
      lines[i].trim() &&
      !FENCE.test(lines[i]) &&
      !HEADING.test(lines[i]) &&
      !QUOTE.test(lines[i]) &&
      !BULLET.test(lines[i]) &&
      !ORDERED.test(lines[i]) &&
      !RULE.test(lines[i])
    ) {
      para.push(lines[i++]);
    }
    if (!para.length) para.push(lines[i++]);
    root.append(el("p", ...withBreaks(para)));
  }
  return root;
}

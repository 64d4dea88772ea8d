// Math and code in a rendered reply, made rich once the reply is on the page: KaTeX typesets the
// math, highlight.js colours the code. Both are vendored (webapp/static/vendor/README), served
// from our own origin and loaded the first time a reply needs them; until then, or if loading
// fails, the TeX and the code show exactly as written.
//
// KaTeX renders into DOM nodes (katex.render, never renderToString into innerHTML): its inline
// styles are then set through the CSSOM, which the app's CSP (style-src 'self') allows. It runs
// with trust off (no \href, \url or \html* commands) and bounded macro expansion. highlight.js
// escapes the code it is given; its output is spans with classes only.

const KATEX = "/static/vendor/katex-0.19.1/katex.min.js";
const HIGHLIGHT = "/static/vendor/highlight.js-11.12.0/highlight.min.js";
// However much math or code a reply holds, the page spends bounded time on it; the rest stays as
// written.
const MAX_FORMULAS = 400;
const MAX_CODE = 100_000;
const MAX_GUESSED = 5_000;

let katexLoading = null;
let highlightLoading = null;

function loadKatex() {
  // The UMD build sets window.katex when run as a module (no CommonJS or AMD here).
  if (!katexLoading) {
    katexLoading = import(KATEX).then(() => window.katex);
    // Tried again at the next reply that needs it.
    katexLoading.catch(() => {
      katexLoading = null;
    });
  }
  return katexLoading;
}

function loadHighlight() {
  if (!highlightLoading) {
    highlightLoading = import(HIGHLIGHT).then((module) => module.default);
    highlightLoading.catch(() => {
      highlightLoading = null;
    });
  }
  return highlightLoading;
}

function typeset(katex, node) {
  // A reply still streaming is rendered anew at each piece; earlier copies are gone already.
  if (!node.isConnected || node.dataset.typeset) return;
  try {
    katex.render(node.dataset.tex, node, {
      displayMode: node.classList.contains("math-display"),
      throwOnError: false,
      trust: false,
      strict: "ignore",
      maxExpand: 1000,
      maxSize: 20,
      output: "htmlAndMathml",
    });
    node.dataset.typeset = "yes";
  } catch (_) {
    // Shown as written.
  }
}

function colour(hljs, code) {
  if (!code.isConnected || code.dataset.highlighted) return;
  const text = code.textContent;
  if (text.length > MAX_CODE) return;
  const lang = (code.dataset.lang || "").toLowerCase();
  let result = null;
  try {
    if (lang && hljs.getLanguage(lang)) result = hljs.highlight(text, { language: lang, ignoreIllegals: true });
    else if (!lang && text.length <= MAX_GUESSED) result = hljs.highlightAuto(text);
  } catch (_) {
    result = null;
  }
  if (!result) return;
  code.innerHTML = result.value;
  code.classList.add("hljs");
  code.dataset.highlighted = "yes";
}

export function enhance(maths, codes) {
  if (maths.length) {
    const some = maths.slice(0, MAX_FORMULAS);
    loadKatex().then(
      (katex) => some.forEach((node) => typeset(katex, node)),
      () => {},
    );
  }
  if (codes.length) {
    loadHighlight().then(
      (hljs) => codes.forEach((code) => colour(hljs, code)),
      () => {},
    );
  }
}

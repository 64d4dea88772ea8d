// Small DOM helpers shared by the views: elements, icons, texts, money and dates, toasts and
// dialogs. Every user-provided string goes in through textContent, never as markup.

const config = JSON.parse(document.getElementById("app-config").textContent);

export const lang = config.lang;
export const settings = config;

// A translated text from the page's catalogue, with {placeholders} filled after translation.
export function t(key, params) {
  let text = config.strings[key];
  if (text === undefined) text = key;
  if (params) {
    for (const [name, value] of Object.entries(params)) text = text.split(`{${name}}`).join(String(value));
  }
  return text;
}

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "text") node.textContent = value;
    else if (name === "class") node.className = value;
    else if (name === "testid") node.dataset.testid = value;
    else if (name === "dataset") Object.assign(node.dataset, value);
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else if (value === true) node.setAttribute(name, "");
    else node.setAttribute(name, String(value));
  }
  append(node, children);
  return node;
}

function append(node, children) {
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

const SVG = "http://www.w3.org/2000/svg";

// An icon from the page's sprite (the <symbol>s in the template).
export function icon(name, className = "icon") {
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("class", className);
  svg.setAttribute("aria-hidden", "true");
  const use = document.createElementNS(SVG, "use");
  use.setAttribute("href", `#i-${name}`);
  svg.append(use);
  return svg;
}

export function button(label, attrs = {}, iconName = null) {
  const { variant = "secondary", ...rest } = attrs;
  const cls = ["btn", `btn-${variant}`, rest.class].filter(Boolean).join(" ");
  return el("button", { type: "button", ...rest, class: cls }, iconName ? icon(iconName) : null, label ? el("span", { text: label }) : null);
}

export function iconButton(name, label, attrs = {}) {
  return el("button", { type: "button", "aria-label": label, title: label, ...attrs, class: `icon-btn ${attrs.class || ""}` }, icon(name));
}

export function card(...children) {
  return el("section", { class: "card" }, ...children);
}

export function spinner() {
  return el("div", { class: "spinner", role: "progressbar", "aria-label": t("loading") });
}

export function empty(title, text, iconName = null, ...actions) {
  return el(
    "div",
    { class: "empty", testid: "empty" },
    iconName ? el("div", { class: "empty-icon" }, icon(iconName)) : null,
    el("h3", { text: title }),
    text ? el("p", { text }) : null,
    actions.length ? el("div", { class: "empty-actions" }, ...actions) : null,
  );
}

export function errorBox(message, retry) {
  return el(
    "div",
    { class: "empty error-box", testid: "view-error" },
    el("p", { text: message || t("failed") }),
    retry ? button(t("retry"), { onclick: retry }) : null,
  );
}

const moneyFormat = new Intl.NumberFormat(lang === "ru" ? "ru-RU" : "en-US", {
  style: "currency",
  currency: "RUB",
  currencyDisplay: "narrowSymbol",
});

export function money(kopecks) {
  return moneyFormat.format(kopecks / 100);
}

export function signedMoney(kopecks) {
  const text = money(Math.abs(kopecks));
  return kopecks > 0 ? `+${text}` : kopecks < 0 ? `−${text}` : text;
}

const locale = lang === "ru" ? "ru-RU" : "en-GB";

// Every time on the page is shown in the account's time zone (the browser's until the account
// has one). Formatters are rebuilt when it changes.
export function browserTimeZone() {
  try {
    return Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
  } catch (_) {
    return "UTC";
  }
}

let zone = browserTimeZone();
let formats = makeFormats(zone);

function makeFormats(timeZone) {
  return {
    dateTime: new Intl.DateTimeFormat(locale, { timeZone, day: "numeric", month: "short", hour: "2-digit", minute: "2-digit" }),
    fullDateTime: new Intl.DateTimeFormat(locale, { timeZone, day: "numeric", month: "short", year: "numeric", hour: "2-digit", minute: "2-digit" }),
    dateOnly: new Intl.DateTimeFormat(locale, { timeZone, day: "numeric", month: "short", year: "numeric" }),
    timeOnly: new Intl.DateTimeFormat(locale, { timeZone, hour: "2-digit", minute: "2-digit" }),
    dayKey: new Intl.DateTimeFormat("en-CA", { timeZone, year: "numeric", month: "2-digit", day: "2-digit" }),
  };
}

export function timeZone() {
  return zone;
}

// A zone the browser does not know leaves the current one in place.
export function setTimeZone(name) {
  if (!name || name === zone) return;
  try {
    formats = makeFormats(name);
    zone = name;
  } catch (_) {
    /* kept the previous zone */
  }
}

// The zones offered in the settings: the browser's list, with UTC and the current zone.
export function timeZones() {
  let names = [];
  try {
    names = Intl.supportedValuesOf("timeZone");
  } catch (_) {
    names = [];
  }
  return [...new Set(["UTC", zone, ...names])].sort();
}

export function when(iso) {
  if (!iso) return "";
  return formats.dateTime.format(new Date(iso));
}

// Where the moment matters (a plan's renewal, the next free-tier reset): the year and the zone.
export function zonedWhen(iso) {
  if (!iso) return "";
  return `${formats.fullDateTime.format(new Date(iso))} (${zone})`;
}

export function day(iso) {
  if (!iso) return "";
  return formats.dateOnly.format(new Date(iso));
}

// Today (in the account's zone): the time; otherwise the date.
export function shortWhen(iso) {
  if (!iso) return "";
  const date = new Date(iso);
  const today = formats.dayKey.format(new Date()) === formats.dayKey.format(date);
  return today ? formats.timeOnly.format(date) : formats.dateOnly.format(date);
}

export function number(value) {
  return new Intl.NumberFormat(locale).format(value);
}

// --- toasts and dialogs -------------------------------------------------------------------------

let toastTimer = null;

export function toast(message, kind = "info") {
  const box = document.getElementById("toast");
  box.textContent = message;
  box.className = `toast show ${kind}`;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => {
    box.className = "toast";
  }, 3200);
}

// A modal dialog; resolves with the id of the button pressed, or null when dismissed.
export function dialog({ title, body = [], actions = [], testid = "dialog" }) {
  return new Promise((resolve) => {
    const modal = document.getElementById("dialog");
    const done = (value) => {
      modal.close();
      resolve(value);
    };
    const buttons = actions.map((action) =>
      button(action.label, {
        variant: action.variant || "secondary",
        testid: action.testid,
        onclick: () => done(action.id),
      }),
    );
    modal.replaceChildren(
      el(
        "div",
        { class: "dialog-body", testid },
        title ? el("h2", { text: title }) : null,
        ...(Array.isArray(body) ? body : [body]),
        el("div", { class: "dialog-actions" }, ...buttons),
      ),
    );
    modal.onclose = () => resolve(null);
    modal.onclick = (event) => {
      if (event.target === modal) done(null);
    };
    modal.showModal();
  });
}

export async function confirmAction({ title, text, confirm, danger = false, testid = "confirm" }) {
  const chosen = await dialog({
    title,
    body: text ? [el("p", { text })] : [],
    testid,
    actions: [
      { id: "cancel", label: t("cancel"), testid: "dialog-cancel" },
      { id: "ok", label: confirm, variant: danger ? "danger" : "primary", testid: "dialog-confirm" },
    ],
  });
  return chosen === "ok";
}

export async function copyText(text) {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch (_) {
    // Frames without clipboard permission: the old way still works.
    const area = el("textarea", { class: "offscreen", readonly: true });
    area.value = text;
    document.body.append(area);
    area.select();
    let ok = false;
    try {
      ok = document.execCommand("copy");
    } catch (_) {
      ok = false;
    }
    area.remove();
    return ok;
  }
}

export async function copyWithToast(text) {
  toast((await copyText(text)) ? t("copied") : t("copy_failed"), "info");
}

// A labelled switch bound to one boolean.
export function toggle({ label, hint, checked, testid, onchange }) {
  const input = el("input", { type: "checkbox", role: "switch", testid });
  input.checked = Boolean(checked);
  input.addEventListener("change", () => onchange(input.checked, input));
  return el(
    "label",
    { class: "row switch-row" },
    el("span", { class: "row-text" }, el("span", { class: "row-title", text: label }), hint ? el("span", { class: "row-hint", text: hint }) : null),
    el("span", { class: "switch" }, input, el("span", { class: "switch-track", "aria-hidden": "true" })),
  );
}

// A segmented choice of a few values.
export function segmented({ options, value, name, onchange, testid }) {
  const box = el("div", { class: "segmented", role: "radiogroup", testid });
  for (const option of options) {
    const input = el("input", { type: "radio", name, value: option.value, testid: `${name}-${option.value}` });
    input.checked = option.value === value;
    input.addEventListener("change", () => {
      if (input.checked) onchange(option.value);
    });
    box.append(el("label", { class: "segment" }, input, el("span", { text: option.label })));
  }
  return box;
}

export function field({ label, input, hint, counter }) {
  return el(
    "label",
    { class: "field" },
    el("span", { class: "field-label" }, el("span", { text: label }), counter || null),
    input,
    hint ? el("span", { class: "field-hint", text: hint }) : null,
  );
}

export function sectionTitle(text, ...extra) {
  return el("div", { class: "section-title" }, el("h2", { text }), ...extra);
}

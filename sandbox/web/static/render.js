// DOM builders. Text always goes in as text nodes; the only markup taken from the server is the
// sandbox's display html, and even that is re-built here from an allow-list of tags.

import { displayName, formatSize, formatTime, safeUrl } from "./telegram.js";

export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = String(value);
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key.startsWith("on") && typeof value === "function") node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

// Tags the sandbox emits for entities, and nothing else survives.
const ALLOWED_TAGS = new Set(["B", "STRONG", "I", "EM", "U", "INS", "S", "DEL", "CODE", "PRE", "BLOCKQUOTE", "SPAN", "A", "BR"]);
const DROPPED_TAGS = new Set(["SCRIPT", "STYLE", "TEMPLATE", "IFRAME", "OBJECT", "EMBED", "NOSCRIPT"]);
const LINK_PROTOCOLS = ["http:", "https:", "tg:", "mailto:"];
const URL_OR_COMMAND = /(https?:\/\/[^\s<>"']+[^\s<>"'.,;:!?)\]])|(^|[\s(])(\/[A-Za-z0-9_]{1,32}(?:@[A-Za-z0-9_]{3,32})?)(?=$|[\s.,;:!?)])/g;

function linkify(text, into, options) {
  let last = 0;
  for (const match of text.matchAll(URL_OR_COMMAND)) {
    const [whole, url, lead, command] = match;
    let start = match.index;
    if (url) {
      into.append(document.createTextNode(text.slice(last, start)));
      const href = safeUrl(url);
      into.append(href ? el("a", { href, target: "_blank", rel: "noopener noreferrer", text: url }) : url);
    } else if (command && options.onCommand) {
      start += lead.length;
      into.append(document.createTextNode(text.slice(last, start)));
      into.append(
        el("button", {
          type: "button",
          class: "command-link",
          text: command,
          "aria-label": `Send ${command}`,
          onclick: () => options.onCommand(command),
        }),
      );
    } else {
      continue;
    }
    last = match.index + whole.length;
  }
  into.append(document.createTextNode(text.slice(last)));
}

function copyAllowed(source, into, options, inLink) {
  for (const child of source.childNodes) {
    if (child.nodeType === Node.TEXT_NODE) {
      if (inLink || !options.linkify) into.append(document.createTextNode(child.data));
      else linkify(child.data, into, options);
      continue;
    }
    if (child.nodeType !== Node.ELEMENT_NODE || DROPPED_TAGS.has(child.tagName)) continue;
    if (!ALLOWED_TAGS.has(child.tagName)) {
      copyAllowed(child, into, options, inLink);
      continue;
    }
    const tag = child.tagName.toLowerCase();
    const copy = document.createElement(tag);
    if (tag === "a") {
      const href = safeUrl(child.getAttribute("href") || "", LINK_PROTOCOLS);
      if (href) {
        copy.href = href;
        copy.target = "_blank";
        copy.rel = "noopener noreferrer";
      }
    } else if (tag === "span") {
      if (child.classList.contains("spoiler") || child.classList.contains("tg-spoiler")) {
        copy.className = "spoiler";
        copy.tabIndex = 0;
        copy.title = "Spoiler: click to reveal";
        copy.addEventListener("click", () => copy.classList.add("revealed"));
      }
    } else if (tag === "code") {
      const language = child.getAttribute("data-language");
      if (language) copy.dataset.language = language;
    }
    copyAllowed(child, copy, options, inLink || tag === "a" || tag === "code" || tag === "pre");
    into.append(copy);
  }
}

// DOMParser builds an inert document: nothing in it runs or loads.
export function safeHtml(html, options = {}) {
  const fragment = document.createDocumentFragment();
  if (typeof html !== "string" || !html) return fragment;
  const parsed = new DOMParser().parseFromString(`<!doctype html><body>${html}`, "text/html");
  copyAllowed(parsed.body, fragment, options, false);
  return fragment;
}

function richText(html, text, options) {
  if (typeof html === "string") return safeHtml(html, options);
  const fragment = document.createDocumentFragment();
  if (text) linkify(String(text), fragment, options);
  return fragment;
}

function inlineKeyboard(message, handlers) {
  const rows = message.reply_markup && message.reply_markup.inline_keyboard;
  if (!Array.isArray(rows) || !rows.length) return null;
  const box = el("div", { class: "inline-keyboard", role: "group", "aria-label": "Inline keyboard", "data-testid": "inline-keyboard" });
  for (const row of rows) {
    if (!Array.isArray(row)) continue;
    const line = el("div", { class: "kb-row" });
    for (const button of row) {
      if (!button || typeof button !== "object") continue;
      line.append(inlineButton(button, message, handlers));
    }
    box.append(line);
  }
  return box;
}

function inlineButton(button, message, handlers) {
  const text = String(button.text || "");
  const common = { class: "kb-button", "data-testid": "inline-button" };
  if (typeof button.callback_data === "string") {
    const node = el("button", { ...common, type: "button", text, dataset: { callbackData: button.callback_data, kind: "callback" } });
    node.addEventListener("click", () => handlers.onCallback(button, message, node));
    return node;
  }
  if (button.pay) {
    const node = el("button", { ...common, type: "button", text, dataset: { kind: "pay" } });
    node.addEventListener("click", () => handlers.onPay(button, message, node));
    return node;
  }
  if (button.web_app) {
    const url = safeUrl(button.web_app.url);
    return el("button", {
      ...common,
      type: "button",
      text: `${text} ⧉`,
      disabled: !url,
      title: url ? `Opens the Mini App ${url}` : "The Mini App URL is not an http(s) URL",
      dataset: { kind: "web_app" },
      onclick: () => url && handlers.onWebApp(url, text, "inline"),
    });
  }
  const linkTarget = button.url || (button.login_url && button.login_url.url);
  if (linkTarget) {
    const href = safeUrl(linkTarget, ["http:", "https:", "tg:"]);
    if (!href) return el("button", { ...common, type: "button", text, disabled: true, title: "Not an openable URL" });
    return el("a", { ...common, href, target: "_blank", rel: "noopener noreferrer", title: href, dataset: { kind: "url" } }, `${text} ↗`);
  }
  if (button.copy_text && typeof button.copy_text.text === "string") {
    return el("button", {
      ...common,
      type: "button",
      text,
      dataset: { kind: "copy" },
      onclick: () => handlers.onCopy(button.copy_text.text),
    });
  }
  return el("button", { ...common, type: "button", text, disabled: true, title: "This kind of button is not supported in the sandbox" });
}

function attachment(message) {
  const parts = [];
  if (message.photo) {
    const url = safeUrl(message.photo.url);
    const image = url
      ? el("a", { href: url, target: "_blank", rel: "noopener noreferrer", class: "photo-link" }, el("img", { src: url, alt: "Photo", loading: "lazy", "data-testid": "message-photo" }))
      : el("span", { class: "missing-file", text: "Photo (file no longer stored)" });
    parts.push(el("div", { class: "msg-photo" }, image));
  }
  if (message.video) {
    const url = safeUrl(message.video.url);
    parts.push(
      url
        ? el("div", { class: "msg-photo" }, el("video", { src: url, controls: true, playsinline: true, preload: "metadata", class: "msg-video", "data-testid": "message-video" }))
        : el("span", { class: "missing-file", text: "Video (file no longer stored)" }),
    );
  }
  if (message.document) {
    const doc = message.document;
    const url = safeUrl(doc.url);
    const name = doc.file_name || "file";
    const link = url
      ? el("a", { href: url, download: name, class: "doc-name", "data-testid": "document-link", text: name })
      : el("span", { class: "doc-name", text: name });
    parts.push(
      el("div", { class: "msg-document", "data-testid": "message-document" },
        el("span", { class: "doc-icon", "aria-hidden": "true", text: (name.includes(".") ? name.split(".").pop() : "file").slice(0, 4) }),
        el("span", { class: "doc-body" }, link, el("span", { class: "doc-meta", text: `${formatSize(doc.file_size)} · ${doc.mime_type || "unknown type"}` })),
      ),
    );
  }
  return parts;
}

function payments(message) {
  const parts = [];
  if (message.invoice) {
    const invoice = message.invoice;
    parts.push(
      el("div", { class: "msg-invoice", "data-testid": "message-invoice" },
        el("strong", { text: invoice.title || "Invoice" }),
        el("span", { text: invoice.description || "" }),
        el("span", { class: "invoice-total", text: `${invoice.currency === "XTR" ? "⭐" : invoice.currency || ""} ${invoice.total_amount ?? ""}` })),
    );
  }
  if (message.successful_payment) {
    const paid = message.successful_payment;
    parts.push(el("div", { class: "msg-service", "data-testid": "message-payment", text: `Paid ⭐ ${paid.total_amount} (${paid.invoice_payload || "no payload"})` }));
  }
  if (message.refunded_payment) {
    const refunded = message.refunded_payment;
    parts.push(el("div", { class: "msg-service", "data-testid": "message-refund", text: `Refunded ⭐ ${refunded.total_amount}` }));
  }
  return parts;
}

function editedMark(message) {
  if (!message.edit_date) return null;
  const edits = Array.isArray(message.edits) ? message.edits : [];
  const mark = el("button", {
    type: "button",
    class: "edited",
    "data-testid": "edited-mark",
    "aria-expanded": "false",
    title: `Edited at ${formatTime(message.edit_date)}; ${edits.length} earlier version(s)`,
    text: "edited",
  });
  return mark;
}

function earlierVersions(message, mark) {
  const edits = Array.isArray(message.edits) ? message.edits : [];
  if (!mark || !edits.length) return null;
  const list = el("ol", { class: "edit-history", "aria-label": "Earlier versions", hidden: true });
  for (const edit of edits) {
    list.append(el("li", {}, el("time", { text: formatTime(edit.date) }), " ", edit.text || ""));
  }
  mark.addEventListener("click", () => {
    list.hidden = !list.hidden;
    mark.setAttribute("aria-expanded", String(!list.hidden));
  });
  return list;
}

// One bubble for one transcript message.
export function messageElement(message, context) {
  const fromBot = Boolean(message.is_bot_message);
  const mine = !fromBot && message.from && message.from.id === context.viewerId;
  const side = fromBot ? "bot" : mine ? "me" : "other";
  const item = el("li", {
    class: `msg msg-${side}`,
    "data-testid": "message",
    "data-message-id": message.message_id,
    "data-from": fromBot ? "bot" : "user",
    "aria-label": `${fromBot ? "Bot" : displayName(message.from)} message ${message.message_id}`,
  });
  const bubble = el("div", { class: "bubble" });
  if (context.chatType !== "private" && !mine) {
    bubble.append(el("div", { class: "msg-sender", text: displayName(message.from) }));
  }
  if (message.reply_to_message_id) {
    const original = context.lookup(message.reply_to_message_id);
    const preview = original ? original.text || original.caption || "(media)" : "(deleted message)";
    bubble.append(el("div", { class: "msg-reply", text: `↩ ${preview.slice(0, 80)}` }));
  }
  if (message.via_bot && message.via_bot.username) {
    bubble.append(el("div", { class: "msg-via", "data-testid": "message-via", text: `via @${message.via_bot.username}` }));
  }
  bubble.append(...attachment(message));
  const options = { linkify: true, onCommand: fromBot ? context.onCommand : null };
  const body = message.text !== null && message.text !== undefined
    ? richText(message.html, message.text, options)
    : message.caption
      ? richText(message.caption_html, message.caption, options)
      : null;
  const extras = payments(message);
  bubble.append(...extras);
  if (body) bubble.append(el("div", { class: "msg-text", "data-testid": "message-text" }, body));
  if (!body && !extras.length && !message.photo && !message.document) {
    bubble.append(el("div", { class: "msg-service", text: "(a kind of message this page does not show)" }));
  }
  const mark = editedMark(message);
  bubble.append(
    el("div", { class: "msg-meta" },
      mark,
      el("time", { text: formatTime(message.date), title: new Date(message.date * 1000).toLocaleString("en-GB") }),
      el("span", { class: "msg-id", text: `#${message.message_id}` }),
    ),
  );
  const history = earlierVersions(message, mark);
  if (history) bubble.append(history);
  item.append(bubble);
  const keyboard = inlineKeyboard(message, context);
  if (keyboard) item.append(keyboard);
  return item;
}

export function draftElement(draft) {
  const text = el("div", { class: "msg-text", "data-testid": "draft-text" }, safeHtml(draft.html, { linkify: false }));
  return el("div", {
    class: "msg msg-bot draft",
    "data-testid": "draft-bubble",
    "data-draft-id": draft.draft_id,
    "aria-label": "The bot is writing a reply",
  },
  el("div", { class: "bubble" }, text, el("span", { class: "caret", "aria-hidden": "true" })));
}

export function updateDraftElement(node, draft) {
  const text = node.querySelector('[data-testid="draft-text"]');
  text.replaceChildren(safeHtml(draft.html, { linkify: false }));
}

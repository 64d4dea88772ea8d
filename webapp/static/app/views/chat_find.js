// Finding and naming chats: the search box over the chat list (GET /api/conversations/search,
// titles and messages, both languages), the chat's settings (its name and preset) and its own model
// (PATCH /api/conversations/{id}). The chat view mounts these; every found text is put in as
// text, the matched words wrapped in <mark> by the browser, never as markup from the server.

import { api } from "../api.js";
import { dialog, el, shortWhen, t } from "../ui.js";

const DEBOUNCE_MS = 250;

// The words of a query as lower-case stems: enough of each word to match its other forms
// ("котами" marks "кота", "running" marks "run"). Quotes and a leading "-" are query syntax.
function stems(query) {
  return query
    .toLowerCase()
    .replace(/["«»]/g, " ")
    .split(/\s+/)
    .filter((word) => word && !word.startsWith("-") && word !== "or" && word !== "или")
    .map((word) => (word.length > 4 ? word.slice(0, Math.max(3, word.length - 2)) : word))
    .filter((stem) => stem.length >= 2);
}

// Text with the words that start with a stem marked.
export function marked(text, query) {
  const wanted = stems(query);
  const parts = text.split(/([\p{L}\p{N}]+)/u);
  return parts.map((part) => (wanted.some((stem) => part.toLowerCase().startsWith(stem)) ? el("mark", { text: part }) : part));
}

// The search box: calls onQuery with the trimmed query after typing pauses (an empty one too,
// to go back to the list).
export function searchBox(onQuery) {
  const input = el("input", { type: "search", class: "input chat-search-input", testid: "chat-search", placeholder: t("search_chats"), "aria-label": t("search_chats"), maxlength: 200, enterkeyhint: "search", autocomplete: "off" });
  let timer = 0;
  let last = "";
  const fire = () => {
    const query = input.value.trim();
    if (query === last) return;
    last = query;
    onQuery(query);
  };
  input.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(fire, DEBOUNCE_MS);
  });
  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter") {
      clearTimeout(timer);
      fire();
    } else if (event.key === "Escape" && input.value) {
      input.value = "";
      clearTimeout(timer);
      fire();
    }
  });
  return el("div", { class: "chat-search" }, input);
}

export async function findChats(query) {
  const data = await api(`/api/conversations/search?q=${encodeURIComponent(query)}`);
  return data.results || [];
}

// One found chat, as a link into it, with the fragment that matched.
export function resultNode(hit, query, { active, modelName }) {
  return el(
    "li",
    {},
    el(
      "a",
      { href: `#/chat/${hit.conversation_id}`, class: `conv found${active ? " active" : ""}`, testid: "search-result", dataset: { id: String(hit.conversation_id) } },
      el("span", { class: "conv-title" }, ...marked(hit.title || t("untitled"), query)),
      hit.snippet ? el("span", { class: "conv-snippet", testid: "search-snippet" }, ...marked(hit.snippet, query)) : null,
      el("span", { class: "conv-meta", text: [modelName(hit.model_id, hit.model_name), shortWhen(hit.updated_at)].filter(Boolean).join(" · ") }),
    ),
  );
}

// The chat's settings dialog: its name and, when the user has presets, its instructions.
// Saves what changed; the conversation as saved, or null when nothing changed.
export async function editChat(conversation, presets = []) {
  const input = el("input", { type: "text", class: "input", testid: "rename-input", maxlength: 128, "aria-label": t("chat_name") });
  input.value = conversation.title || "";
  setTimeout(() => {
    input.focus();
    input.select();
  }, 0);
  const preset = presets.length
    ? el(
        "select",
        { class: "input", testid: "chat-preset", "aria-label": t("chat_preset") },
        el("option", { value: "", text: t("no_preset") }),
        ...presets.map((p) => el("option", { value: String(p.id), text: p.title })),
      )
    : null;
  if (preset) preset.value = conversation.preset_id ? String(conversation.preset_id) : "";
  const form = el(
    "form",
    { class: "rename-form" },
    el("label", { class: "field-label", text: t("chat_name") }),
    input,
    preset ? el("label", { class: "field-label", text: t("chat_preset") }) : null,
    preset,
  );
  const closing = dialog({
    title: t("chat_options"),
    body: [form],
    testid: "rename-dialog",
    actions: [
      { id: "cancel", label: t("cancel"), testid: "dialog-cancel" },
      { id: "save", label: t("save"), variant: "primary", testid: "dialog-confirm" },
    ],
  });
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    document.querySelector('#dialog [data-testid="dialog-confirm"]')?.click();
  });
  const chosen = await closing;
  if (chosen !== "save") return null;
  const body = {};
  const title = input.value.trim();
  if (title && title !== conversation.title) body.title = title;
  if (preset) {
    const presetId = preset.value ? Number(preset.value) : null;
    if (presetId !== (conversation.preset_id || null)) body.preset_id = presetId;
  }
  if (!Object.keys(body).length) return null;
  return api(`/api/conversations/${conversation.id}`, { method: "PATCH", body });
}

// Gives a conversation a model of its own; the conversation as saved.
export function setChatModel(conversationId, modelId) {
  return api(`/api/conversations/${conversationId}`, { method: "PATCH", body: { model_id: modelId } });
}

// Chat: the conversation list, the messages of one conversation, the model picker and the
// composer. Replies stream from POST /api/chat (Server-Sent Events read with fetch and a
// ReadableStream); Stop asks the server to end the reply, which then arrives as "stopped".
// Documents attached to a chat (the paperclip, or dropped on it) are uploaded, linked to the
// conversation and read on the server; their passages then answer in that chat. The microphone
// (voice.js) turns a recording into text in the composer.
// The last turn can be asked again (regenerate, with the same model or another; edit the prompt;
// retry one that failed): POST /api/messages/{id}/redo streams like /api/chat, and the turn it
// replaces stays, marked. Replies can be rated 👍/👎 and tell what they cost on request.
// Chats are found, renamed and given a model of their own with chat_find.js: the picker in an
// open chat sets that chat's model; in a new chat it sets the default for new ones.

import { ApiError, api, request } from "../api.js";
import { drawPictures, mediaOptions } from "../create.js";
import { render } from "../markdown.js";
import { showShareLink } from "../share.js";
import { button, confirmAction, copyWithToast, dialog, el, empty, errorBox, icon, iconButton, money, settings, shortWhen, spinner, t, toast } from "../ui.js";
import { renderModelPicker } from "../model_picker.js";
import { microphone } from "../voice.js";
import { editChat, findChats, resultNode, searchBox, setChatModel } from "./chat_find.js";

// Server-Sent Events from a fetch body: {event, data} with data parsed as JSON.
async function* events(body) {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    for (;;) {
      const end = buffer.search(/\r?\n\r?\n/);
      if (end < 0) break;
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end).replace(/^\r?\n\r?\n/, "");
      let name = "message";
      const data = [];
      for (const line of block.split(/\r?\n/)) {
        if (line.startsWith(":")) continue;
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
        if (field === "event") name = value;
        else if (field === "data") data.push(value);
      }
      if (!data.length) continue;
      let parsed;
      try {
        parsed = JSON.parse(data.join("\n"));
      } catch (_) {
        parsed = { text: data.join("\n") };
      }
      yield { event: name, data: parsed };
    }
  }
}

const SUGGESTIONS = ["suggest_explain", "suggest_email", "suggest_plan"];
const READING = new Set(["uploading", "queued", "indexing"]);
const MB = 1024 * 1024;

function fileSize(bytes) {
  if (bytes >= MB) return `${(bytes / MB).toFixed(1)} MB`;
  return `${Math.max(1, Math.round(bytes / 1024))} KB`;
}

export function mount(root, params, app) {
  const state = {
    models: [],
    current: null,
    // The user's default model: what a chat without one of its own answers with.
    defaultModel: null,
    // The search in the chat list ("" shows the list).
    query: "",
    conversations: [],
    conversationId: params.id ? Number(params.id) : null,
    messages: [],
    streaming: null,
    pinnedOnly: false,
    activePreset: null,
    // The user's presets, to pick one for an open chat.
    presets: [],
    files: [],
    // The composer waits for the models and the conversation: a message sent before would be
    // wiped from the page when they arrive.
    ready: false,
    alive: true,
  };
  const uploadLimit = settings.upload_limit_mb;
  const listMode = params.list === true;

  const list = el("ul", { class: "conv-list", testid: "conversations" });
  const listPane = el(
    "aside",
    { class: "chat-list" },
    el("div", { class: "chat-list-head" }, el("h2", { text: t("chats") }), button(t("new_chat"), { variant: "primary", class: "btn-sm", testid: "new-chat", onclick: () => app.go("chat") }, "plus")),
    searchBox((query) => search(query)),
    list,
  );
  const picker = el("select", { class: "model-picker", testid: "model-picker", "aria-label": t("model") });
  const info = el("div", { class: "model-info", testid: "model-info", hidden: true });
  const headActions = el("div", { class: "chat-head-actions" });
  const pinnedBar = el("div", { class: "pinned-bar", hidden: true });
  const thread = el("div", { class: "thread", testid: "thread", "aria-live": "polite" });
  const input = el("textarea", { class: "composer-input", rows: 1, testid: "composer-input", placeholder: t("composer_placeholder"), "aria-label": t("composer_placeholder"), maxlength: 16000, disabled: true });
  const sendButton = el("button", { type: "submit", class: "send-btn", testid: "send", "aria-label": t("send"), title: t("send"), disabled: true }, icon("send"));
  const stopButton = el("button", { type: "button", class: "send-btn stop", testid: "stop", "aria-label": t("stop"), title: t("stop"), hidden: true }, icon("stop"));
  const fileInput = el("input", { type: "file", multiple: true, hidden: true, testid: "attach-input", tabindex: -1 });
  const attachButton = uploadLimit ? iconButton("paperclip", t("attach_document"), { class: "attach-btn", testid: "attach" }) : null;
  const tray = el("div", { class: "attachments", testid: "attachments", hidden: true });
  const note = el("p", { class: "composer-note", testid: "composer-note", text: t("composer_note") });
  // The microphone puts what was said into the composer, to read and send.
  const mic = microphone({
    onText: (text) => {
      input.value = input.value.trim() ? `${input.value.trimEnd()} ${text}` : text;
      autosize();
      input.focus();
    },
  });
  // Image mode (the bot's one switch): messages draw pictures; the bar says so and turns it off.
  const imageModeText = el("span", { testid: "image-mode-text" });
  const imageBar = el(
    "div",
    { class: "image-mode-bar", testid: "image-mode-bar", hidden: true, role: "status" },
    icon("image"),
    imageModeText,
    button(t("image_mode_turn_off"), { variant: "secondary", class: "btn-sm", testid: "image-mode-off", onclick: () => turnOffImageMode() }),
  );
  const composer = el("form", { class: "composer", testid: "composer" }, imageBar, tray, el("div", { class: "composer-box" }, attachButton, input, mic && mic.node, sendButton, stopButton), note, uploadLimit ? fileInput : null);
  const pane = el(
    "section",
    { class: "chat-pane" },
    el("div", { class: "chat-head" }, el("label", { class: "picker-wrap" }, icon("sparkle"), picker, icon("chevron-down", "icon chevron")), headActions),
    info,
    pinnedBar,
    thread,
    composer,
  );
  const layout = el("div", { class: `chat-layout ${listMode ? "mode-list" : "mode-thread"}` }, listPane, pane);
  root.replaceChildren(layout);

  app.setTitle(listMode ? t("chats") : t("chat"));
  app.setActions(
    listMode
      ? [button(t("new_chat"), { variant: "primary", class: "btn-sm phone-only", testid: "new-chat-list", onclick: () => app.go("chat") }, "plus")]
      : [iconButton("history", t("chats"), { class: "phone-only", testid: "open-chats", onclick: () => app.go("chats") }), iconButton("plus", t("new_chat"), { class: "phone-only", testid: "new-chat-top", onclick: () => app.go("chat") })],
  );

  // --- conversation list ------------------------------------------------------------------------

  function renderList() {
    if (state.query) return;
    if (!state.conversations.length) {
      list.replaceChildren(el("li", { class: "conv-empty muted", text: t("no_chats") }));
      return;
    }
    list.replaceChildren(
      ...state.conversations.map((c) =>
        el(
          "li",
          {},
          el(
            "a",
            { href: `#/chat/${c.id}`, class: `conv${c.id === state.conversationId ? " active" : ""}`, testid: "conversation", dataset: { id: String(c.id) } },
            el("span", { class: "conv-title", text: c.title || t("untitled") }),
            el("span", { class: "conv-meta", text: [(c.model_id ? modelName(c.model_id, c.model_name) : modelName(state.defaultModel)), shortWhen(c.updated_at)].filter(Boolean).join(" · ") }),
          ),
        ),
      ),
    );
  }

  async function loadList() {
    try {
      const data = await api("/api/conversations");
      if (!state.alive) return;
      state.conversations = data.conversations || [];
      renderList();
      const current = state.conversations.find((c) => c.id === state.conversationId);
      if (current && !listMode) app.setTitle(current.title || t("chat"));
      syncModel();
    } catch (error) {
      if (!state.alive) return;
      list.replaceChildren(el("li", { class: "conv-empty muted", text: error.message }));
    }
  }

  async function search(query) {
    state.query = query;
    if (!query) {
      renderList();
      return;
    }
    list.replaceChildren(el("li", { class: "conv-empty muted", text: t("loading") }));
    try {
      const hits = await findChats(query);
      if (!state.alive || state.query !== query) return;
      list.replaceChildren(
        ...(hits.length
          ? hits.map((hit) => resultNode(hit, query, { active: hit.conversation_id === state.conversationId, modelName: (id, named) => (id ? modelName(id, named) : modelName(state.defaultModel)) }))
          : [el("li", { class: "conv-empty muted", testid: "search-empty", text: t("search_nothing", { query }) })]),
      );
    } catch (error) {
      if (!state.alive || state.query !== query) return;
      list.replaceChildren(el("li", { class: "conv-empty muted", text: error.message }));
    }
  }

  // --- models -----------------------------------------------------------------------------------

  function openConversation() {
    return state.conversations.find((c) => c.id === state.conversationId) || null;
  }

  // The picker shows what the open chat answers with: its own model, else the default.
  function syncModel() {
    if (!state.models.length || state.streaming) return;
    const open = openConversation();
    const own = open && open.model_id && state.models.some((m) => m.id === open.model_id) ? open.model_id : null;
    const shown = own || state.defaultModel;
    if (shown && shown !== state.current) {
      state.current = shown;
      renderPicker();
    }
  }

  // A model as people read it: as on the menu, else as the server named it (one no longer on
  // the menu), else its id.
  function modelName(id, named = null) {
    const model = state.models.find((m) => m.id === id);
    return (model && (model.name || model.id)) || named || id || "";
  }

  function renderPicker() {
    renderModelPicker(picker, info, state, (id) => {
      if (id === state.current) return;
      picker.value = id;
      picker.dispatchEvent(new Event("change"));
    });
  }

  picker.addEventListener("change", async () => {
    const previous = state.current;
    state.current = picker.value;
    const open = openConversation();
    try {
      renderPicker();
      if (open) {
        // An open chat gets the model as its own; new chats keep the default.
        const saved = await setChatModel(open.id, picker.value);
        open.model_id = saved.model_id;
        renderList();
        toast(t("chat_model_changed", { model: modelName(picker.value) }));
      } else {
        await api("/api/settings/model", { method: "PUT", body: { model_id: picker.value } });
        state.defaultModel = picker.value;
        toast(t("model_changed", { model: modelName(picker.value) }));
      }
    } catch (error) {
      state.current = previous;
      renderPicker();
      toast(error.message, "error");
    }
  });

  // --- messages ---------------------------------------------------------------------------------

  function pinButton(message) {
    const pin = iconButton("pin", message.is_pinned ? t("unpin") : t("pin"), { class: `pin${message.is_pinned ? " on" : ""}`, testid: "pin", "aria-pressed": message.is_pinned ? "true" : "false" });
    pin.disabled = !message.id;
    pin.addEventListener("click", async () => {
      const pinned = !message.is_pinned;
      try {
        await api(`/api/messages/${message.id}/pin`, { method: "POST", body: { pinned } });
        message.is_pinned = pinned;
        renderThread();
        toast(pinned ? t("pinned_done") : t("unpinned_done"));
      } catch (error) {
        toast(error.message, "error");
      }
    });
    return pin;
  }

  function fillBody(body, message) {
    if (message.role === "assistant") body.replaceChildren(render(message.content));
    else body.replaceChildren(el("p", { class: "plain", text: message.content }));
  }

  // Where the passages the reply cites came from: one line, or folded when long.
  function sourcesNode(sources) {
    if (!sources || !sources.length) return null;
    const all = sources.join("; ");
    if (sources.length <= 2 && all.length <= 80) {
      return el("p", { class: "msg-sources", testid: "message-sources" }, icon("paperclip"), el("span", { text: t("sources", { sources: all }) }));
    }
    const summary = t("sources", { sources: t("sources_more", { first: sources[0], count: sources.length - 1 }) });
    return el(
      "details",
      { class: "msg-sources", testid: "message-sources" },
      el("summary", {}, icon("paperclip"), el("span", { text: summary })),
      el("ol", {}, ...sources.map((source) => el("li", { text: source }))),
    );
  }

  function messageNode(message) {
    const body = el("div", { class: "msg-body", testid: "message-body" });
    fillBody(body, message);
    const reasoningText = el("div", { class: "reasoning-text", text: message.reasoning || "" });
    const reasoning = el("details", { class: "reasoning", hidden: !message.reasoning }, el("summary", { text: t("reasoning") }), reasoningText);
    const status = el("span", { class: "msg-status", testid: "message-status" });
    const meta = el("div", { class: "msg-meta" });
    const node = el("article", { class: `msg msg-${message.role}${message.is_pinned ? " is-pinned" : ""}`, testid: "message", dataset: { role: message.role } }, reasoning, el("div", { class: "bubble" }, body), meta);
    if (message.id) node.dataset.id = String(message.id);
    const update = () => {
      fillBody(body, message);
      reasoningText.textContent = message.reasoning || "";
      reasoning.hidden = !message.reasoning;
      status.textContent = { stopped: t("status_stopped"), failed: t("status_failed"), cut: t("status_cut"), undelivered: t("status_undelivered") }[message.status] || "";
      const parts = [];
      if (message.role === "assistant" && message.model_id) parts.push(el("span", { class: "msg-model", text: modelName(message.model_id, message.model_name) }));
      if (message.cost) parts.push(el("span", { class: "msg-cost", testid: "message-cost", text: message.cost }));
      if (status.textContent) parts.push(status);
      if (message.replaced) parts.push(el("span", { class: "msg-replaced", testid: "replaced", text: t("replaced") }));
      const actions = [];
      if (message.status !== "streaming" && message.role === "assistant") {
        actions.push(pinButton(message));
        if (message.role === "assistant" && message.content) actions.push(iconButton("copy", t("copy"), { onclick: () => copyWithToast(message.content) }));
      }
      actions.push(...turnActions(message));
      node.classList.toggle("is-replaced", Boolean(message.replaced));
      meta.replaceChildren(el("div", { class: "msg-info" }, ...parts), el("div", { class: "msg-actions" }, ...actions));
      node.classList.toggle("is-pinned", Boolean(message.is_pinned));
      if (message.id) node.dataset.id = String(message.id);
      const shown = node.querySelector(":scope > .msg-sources");
      const listed = message.role === "assistant" && message.status !== "streaming" ? sourcesNode(message.sources) : null;
      if (shown && (!listed || shown.dataset.sources !== message.sources.join("\n"))) shown.remove();
      if (listed && !node.querySelector(":scope > .msg-sources")) {
        listed.dataset.sources = message.sources.join("\n");
        meta.before(listed);
      }
    };
    update();
    message.update = update;
    message.node = node;
    return node;
  }

  function intro() {
    const chips = SUGGESTIONS.map((key) =>
      el("button", { type: "button", class: "chip", onclick: () => { input.value = t(key); input.dispatchEvent(new Event("input")); input.focus(); } }, t(key)),
    );
    return el(
      "div",
      { class: "intro", testid: "chat-intro" },
      el("div", { class: "intro-mark" }, icon("sparkle")),
      el("h2", { text: t("intro_title") }),
      el("p", { class: "muted", text: t("intro_text") }),
      state.activePreset ? el("p", { class: "preset-chip", testid: "active-preset" }, icon("bookmark"), t("preset_in_use", { title: state.activePreset })) : null,
      el("div", { class: "chips" }, ...chips),
    );
  }

  function nearBottom() {
    return thread.scrollHeight - thread.scrollTop - thread.clientHeight < 120;
  }

  function scrollDown() {
    thread.scrollTop = thread.scrollHeight;
  }

  function renderPinnedBar() {
    const pinned = state.messages.filter((m) => m.is_pinned);
    pinnedBar.hidden = !pinned.length && !state.pinnedOnly;
    pinnedBar.replaceChildren(
      el(
        "button",
        { type: "button", class: `pinned-toggle${state.pinnedOnly ? " on" : ""}`, testid: "pinned-toggle", onclick: () => { state.pinnedOnly = !state.pinnedOnly; renderThread(); } },
        icon("pin"),
        state.pinnedOnly ? t("show_all_messages") : t("pinned_count", { count: pinned.length }),
      ),
    );
  }

  function renderThread() {
    renderPinnedBar();
    const shown = state.pinnedOnly ? state.messages.filter((m) => m.is_pinned) : state.messages;
    if (!shown.length) {
      thread.replaceChildren(state.pinnedOnly ? empty(t("no_pinned"), null, "pin") : intro());
      return;
    }
    thread.replaceChildren(...shown.map(messageNode));
    scrollDown();
  }

  function renderHeadActions() {
    if (!state.conversationId) {
      headActions.replaceChildren();
      return;
    }
    headActions.replaceChildren(
      iconButton("edit", t("chat_options"), { testid: "rename-conversation", onclick: rename }),
      iconButton("share", t("share"), { testid: "share-conversation", onclick: shareConversation }),
      iconButton("trash", t("delete"), { testid: "delete-conversation", onclick: deleteConversation }),
    );
  }

  async function rename() {
    const open = openConversation() || { id: state.conversationId, title: null, preset_id: null };
    try {
      const saved = await editChat(open, state.presets);
      if (!saved || !state.alive) return;
      const renamed = saved.title !== open.title;
      const listed = openConversation();
      if (listed) Object.assign(listed, { title: saved.title, preset_id: saved.preset_id });
      renderList();
      if (!listMode && saved.title) app.setTitle(saved.title);
      toast(renamed ? t("chat_renamed") : t("saved"));
    } catch (error) {
      toast(error.message, "error");
    }
  }

  async function shareConversation() {
    try {
      const link = await api(`/api/conversations/${state.conversationId}/share`, { method: "POST" });
      await showShareLink(link.url, app.tg);
    } catch (error) {
      toast(error.message, "error");
    }
  }

  async function deleteConversation() {
    const ok = await confirmAction({ title: t("delete_chat_title"), text: t("delete_chat_text"), confirm: t("delete"), danger: true });
    if (!ok) return;
    try {
      await api(`/api/conversations/${state.conversationId}`, { method: "DELETE" });
      toast(t("chat_deleted"));
      app.go("chat", { replace: true });
    } catch (error) {
      toast(error.message, "error");
    }
  }

  async function loadMessages() {
    if (!state.conversationId) {
      state.messages = [];
      renderThread();
      return;
    }
    thread.replaceChildren(spinner());
    try {
      const data = await api(`/api/conversations/${state.conversationId}/messages`);
      if (!state.alive) return;
      state.messages = (data.messages || []).map((m) => ({ ...m }));
      renderThread();
    } catch (error) {
      if (!state.alive) return;
      thread.replaceChildren(errorBox(error.status === 404 ? t("chat_not_found") : error.message));
    }
  }

  // --- asking again, rating, cost ------------------------------------------------------------

  // The last turn: from the last prompt not replaced to the end of the thread.
  function lastTurnStart() {
    for (let at = state.messages.length - 1; at >= 0; at -= 1) {
      if (state.messages[at].role === "user" && !state.messages[at].replaced) return at;
    }
    return -1;
  }

  // A stored message of the last turn, which names it to the server.
  function lastTurnId() {
    const start = lastTurnStart();
    const stored = start < 0 ? null : state.messages.slice(start).find((m) => m.id);
    return stored ? stored.id : null;
  }

  function turnActions(message) {
    if (message.replaced || message.status === "streaming") return [];
    const actions = [];
    if (message.role === "assistant" && message.id) {
      actions.push(rateButton(message, 1), rateButton(message, -1));
      actions.push(iconButton("info", t("reply_cost"), { testid: "cost", onclick: () => showCost(message) }));
    }
    const start = lastTurnStart();
    const id = lastTurnId();
    if (state.streaming || start < 0 || !id || state.messages.indexOf(message) < start) return actions;
    const last = state.messages[state.messages.length - 1];
    if (message.role === "user") {
      actions.push(iconButton("edit", t("edit_prompt"), { testid: "edit-prompt", onclick: () => editPrompt(message, id) }));
      // No reply came: the prompt itself can be tried again.
      if (message === last) actions.push(iconButton("refresh", t("retry"), { testid: "retry", onclick: () => redo(id, {}) }));
    } else if (message === last) {
      actions.push(iconButton("refresh", t("regenerate"), { testid: "regenerate", onclick: () => redo(id, {}) }));
      if (state.models.length > 1) actions.push(iconButton("sparkle", t("regenerate_with"), { testid: "regenerate-with", onclick: () => pickModel(id, message.model_id) }));
    }
    return actions;
  }

  function rateButton(message, value) {
    const on = message.rating === value;
    const label = value > 0 ? t("rate_good") : t("rate_bad");
    const rate = iconButton(value > 0 ? "thumb-up" : "thumb-down", label, { class: `rate${on ? " on" : ""}`, testid: value > 0 ? "rate-up" : "rate-down", "aria-pressed": on ? "true" : "false" });
    rate.addEventListener("click", async () => {
      const rating = on ? null : value;
      try {
        await api(`/api/messages/${message.id}/rating`, { method: "POST", body: { rating } });
        message.rating = rating;
        message.update();
        toast(rating === null ? t("rating_removed") : t("rating_thanks"));
      } catch (error) {
        toast(error.message, "error");
      }
    });
    return rate;
  }

  function showCost(message) {
    let text = t("cost_unknown");
    if (message.cost_kopecks === 0) text = t("cost_free", { model: modelName(message.model_id, message.model_name) });
    else if (typeof message.cost_kopecks === "number") text = t("cost_of_reply", { amount: money(message.cost_kopecks), model: modelName(message.model_id, message.model_name) });
    toast(text);
  }

  async function pickModel(id, current) {
    const chosen = await dialog({
      title: t("regenerate_with"),
      testid: "regenerate-dialog",
      actions: [
        ...state.models.map((m) => ({ id: m.id, label: m.id === current ? `${m.name || m.id} ✓` : m.name || m.id, testid: "regenerate-model" })),
        { id: null, label: t("cancel"), testid: "dialog-cancel" },
      ],
    });
    if (chosen) redo(id, { model_id: chosen });
  }

  async function editPrompt(message, id) {
    const area = el("textarea", { class: "input edit-prompt-input", rows: 4, maxlength: 16000, testid: "edit-prompt-input", "aria-label": t("edit_prompt") });
    area.value = message.content;
    setTimeout(() => area.focus(), 0);
    const chosen = await dialog({
      title: t("edit_prompt"),
      body: [area],
      testid: "edit-dialog",
      actions: [
        { id: "cancel", label: t("cancel"), testid: "dialog-cancel" },
        { id: "send", label: t("send"), variant: "primary", testid: "dialog-confirm" },
      ],
    });
    const text = area.value.trim();
    if (chosen === "send" && text && text !== message.content) redo(id, { text });
  }

  function redo(id, options) {
    const start = lastTurnStart();
    const old = state.messages.slice(start);
    const prompt = options.text || (old[0] && old[0].content) || "";
    const answered = old.find((m) => m.role === "assistant");
    send(prompt, { id, ...options, replaces: old, model: options.model_id || (answered && answered.model_id) || state.current });
  }

  // After a turn, the stored ids (and costs) of what the page shows.
  async function syncStored() {
    if (!state.conversationId) return;
    try {
      const data = await api(`/api/conversations/${state.conversationId}/messages`);
      if (!state.alive || state.streaming) return;
      const stored = data.messages || [];
      const shown = state.messages;
      // A turn refused before it began left nothing stored: the page keeps what it shows.
      if (stored.length !== shown.length || stored.some((m, at) => m.role !== shown[at].role)) return;
      stored.forEach((m, at) => Object.assign(shown[at], { id: m.id, replaced: m.replaced, rating: m.rating, cost_kopecks: m.cost_kopecks }));
      for (const m of shown) if (m.update) m.update();
    } catch (_) {
      /* the ids come with the next load */
    }
  }

  // --- documents ------------------------------------------------------------------------------

  function fileLine(file) {
    if (file.status === "uploading") return t("document_uploading");
    if (file.status === "queued" || file.status === "indexing") return t("document_reading");
    if (file.status === "failed") return file.error_message || t("document_failed");
    return file.pages ? t("document_pages", { count: file.pages }) : fileSize(file.size);
  }

  function renderFiles() {
    tray.hidden = !state.files.length;
    tray.replaceChildren(
      ...state.files.map((file) => {
        const remove = iconButton("close", t("detach_document"), { class: "attachment-remove", testid: "detach", disabled: file.status === "uploading", onclick: () => detach(file) });
        return el(
          "div",
          { class: `attachment is-${file.status}`, testid: "attachment", dataset: { status: file.status }, title: file.name },
          el("span", { class: "attachment-icon" }, READING.has(file.status) ? el("span", { class: "mini-spinner" }) : icon(file.status === "failed" ? "alert" : "file")),
          el("span", { class: "attachment-text" }, el("span", { class: "attachment-name", text: file.name }), el("span", { class: "attachment-line", testid: "attachment-line", text: fileLine(file) })),
          remove,
        );
      }),
    );
    const reading = state.files.filter((f) => READING.has(f.status));
    // The answer would miss a document still being read: sending waits for it.
    sendButton.disabled = !state.ready || reading.length > 0;
    note.textContent = reading.length ? t("document_wait", { name: reading[0].name }) : t("composer_note");
    note.classList.toggle("is-waiting", reading.length > 0);
  }

  async function watchFile(file) {
    let pause = 500;
    while (state.alive && READING.has(file.status) && state.files.includes(file)) {
      await new Promise((resolve) => setTimeout(resolve, pause));
      pause = Math.min(pause * 1.5, 4000);
      try {
        Object.assign(file, await api(`/api/files/${file.id}`));
      } catch (error) {
        if (error.status === 404) state.files.splice(state.files.indexOf(file), 1);
        else continue;
      }
      if (state.alive) renderFiles();
    }
    if (state.alive && file.status === "ready") toast(t("document_ready", { name: file.name }));
  }

  async function loadFiles() {
    state.files = [];
    renderFiles();
    if (!state.conversationId || !uploadLimit) return;
    try {
      const data = await api(`/api/conversations/${state.conversationId}/files`);
      if (!state.alive) return;
      state.files = data.files || [];
      renderFiles();
      for (const file of state.files) if (READING.has(file.status)) watchFile(file);
    } catch (_) {
      /* the chat itself says what went wrong */
    }
  }

  // A new chat gets its conversation now, so the documents have somewhere to belong.
  async function ensureConversation(title) {
    if (state.conversationId) return state.conversationId;
    const started = await api("/api/conversations", { method: "POST", body: { title } });
    state.conversationId = started.id;
    app.replaceRoute(`chat/${started.id}`);
    renderHeadActions();
    loadList();
    return started.id;
  }

  async function attach(list) {
    const chosen = [...list];
    if (!chosen.length || !uploadLimit || !state.ready) return;
    const fitting = chosen.filter((file) => {
      if (file.size <= uploadLimit * MB) return true;
      toast(t("document_too_large", { name: file.name, limit: uploadLimit }), "error");
      return false;
    });
    if (!fitting.length) return;
    let conversationId;
    try {
      conversationId = await ensureConversation(fitting[0].name);
    } catch (error) {
      toast(error.message, "error");
      return;
    }
    await Promise.all(
      fitting.map(async (chosenFile) => {
        const pending = { id: null, name: chosenFile.name, size: chosenFile.size, status: "uploading" };
        state.files.unshift(pending);
        renderFiles();
        try {
          const form = new FormData();
          form.append("file", chosenFile, chosenFile.name);
          const stored = await api("/api/files", { method: "POST", body: form });
          await api(`/api/files/${stored.id}/links`, { method: "POST", body: { conversation_id: conversationId } });
          const same = state.files.find((f) => f.id === stored.id);
          state.files.splice(state.files.indexOf(pending), 1);
          if (same) {
            // The same document was attached before: it stays once.
            renderFiles();
            return;
          }
          Object.assign(pending, stored);
          state.files.unshift(pending);
          renderFiles();
          if (READING.has(pending.status)) watchFile(pending);
        } catch (error) {
          const at = state.files.indexOf(pending);
          if (at >= 0) state.files.splice(at, 1);
          renderFiles();
          toast(`${chosenFile.name}: ${error.message}`, "error");
        }
      }),
    );
  }

  async function detach(file) {
    try {
      await api(`/api/files/${file.id}/links`, { method: "DELETE", body: { conversation_id: state.conversationId } });
      state.files.splice(state.files.indexOf(file), 1);
      renderFiles();
      toast(t("document_detached", { name: file.name }));
    } catch (error) {
      toast(error.message, "error");
    }
  }

  if (attachButton) {
    attachButton.addEventListener("click", () => fileInput.click());
    fileInput.addEventListener("change", () => {
      const list = fileInput.files;
      attach(list).finally(() => {
        fileInput.value = "";
      });
    });
    // Dropping documents anywhere on the chat attaches them.
    let depth = 0;
    const carriesFiles = (event) => event.dataTransfer && [...event.dataTransfer.types].includes("Files");
    pane.addEventListener("dragenter", (event) => {
      if (!carriesFiles(event)) return;
      event.preventDefault();
      depth += 1;
      pane.classList.add("is-dropping");
    });
    pane.addEventListener("dragover", (event) => {
      if (carriesFiles(event)) event.preventDefault();
    });
    pane.addEventListener("dragleave", () => {
      depth = Math.max(0, depth - 1);
      if (!depth) pane.classList.remove("is-dropping");
    });
    pane.addEventListener("drop", (event) => {
      if (!carriesFiles(event)) return;
      event.preventDefault();
      depth = 0;
      pane.classList.remove("is-dropping");
      attach(event.dataTransfer.files);
    });
  }

  // --- sending and streaming --------------------------------------------------------------------

  function setStreaming(on) {
    sendButton.hidden = on;
    stopButton.hidden = !on;
    stopButton.disabled = false;
    composer.classList.toggle("is-streaming", on);
  }

  function autosize() {
    input.style.height = "auto";
    input.style.height = `${Math.min(input.scrollHeight, 200)}px`;
  }

  // --- image mode -------------------------------------------------------------------------------

  function imageMode() {
    return Boolean(settings.images && app.settings && app.settings.image_mode);
  }

  async function syncImageMode() {
    const on = imageMode();
    imageBar.hidden = !on;
    input.placeholder = on ? t("composer_image_placeholder") : t("composer_placeholder");
    input.setAttribute("aria-label", input.placeholder);
    if (!on) return;
    imageModeText.textContent = t("image_mode_on");
    try {
      const options = await mediaOptions();
      if (options.images.length) imageModeText.textContent = t("image_mode_on_price", { price: money(options.images[0].price_kopecks) });
    } catch (_) {
      /* the bar still says what the mode does */
    }
  }

  async function turnOffImageMode() {
    try {
      app.settings = await api("/api/settings", { method: "PATCH", body: { image_mode: false } });
      toast(t("image_mode_off_done"));
    } catch (error) {
      toast(error.message, "error");
    }
    syncImageMode();
    input.focus();
  }

  function viewPicture(item) {
    dialog({
      testid: "media-viewer",
      body: [el("img", { src: item.url, alt: item.prompt, class: "viewer-media", testid: "viewer-image" }), el("p", { class: "viewer-prompt", text: item.prompt })],
      actions: [
        { id: "gallery", label: t("open_gallery") },
        { id: "close", label: t("done"), variant: "primary" },
      ],
    }).then((chosen) => {
      if (chosen === "gallery") app.go("gallery");
    });
  }

  // A message in image mode: its picture drawn into the thread (and kept in the gallery).
  async function draw(text) {
    if (state.drawing || !text.trim()) return;
    state.drawing = true;
    sendButton.disabled = true;
    if (!state.messages.length) thread.replaceChildren();
    const prompt = messageNode({ id: null, role: "user", content: text, is_pinned: false, status: "complete" });
    const figure = el("figure", { class: "msg-picture", testid: "chat-picture" }, el("div", { class: "drawing" }, el("div", { class: "mini-spinner" }), el("span", { text: t("drawing_picture") })));
    const reply = el("article", { class: "msg msg-assistant", testid: "message", dataset: { role: "assistant" } }, el("div", { class: "bubble" }, figure));
    thread.append(prompt, reply);
    input.value = "";
    autosize();
    scrollDown();
    try {
      const made = await drawPictures({ prompt: text });
      if (!state.alive) return;
      const [item] = made.media;
      const options = await mediaOptions().catch(() => null);
      const model = options && options.images.find((m) => m.id === item.model_id);
      const image = el("img", { src: item.url, alt: item.prompt, testid: "chat-picture-image" });
      image.addEventListener("click", () => viewPicture(item));
      figure.replaceChildren(
        image,
        el(
          "figcaption",
          { testid: "chat-picture-caption" },
          `${model ? model.name : item.model_id} · ${made.charged_kopecks ? money(made.charged_kopecks) : t("free_request")} · `,
          el("a", { href: "#/gallery", testid: "chat-picture-gallery", text: t("open_gallery") }),
        ),
      );
      app.setBalance(made.balance_kopecks);
      image.addEventListener("load", () => scrollDown(), { once: true });
    } catch (error) {
      if (state.alive) reply.replaceWith(errorNode({ code: error.code, message: error.message }));
    } finally {
      state.drawing = false;
      if (state.alive) renderFiles();
    }
  }

  async function send(text, again = null) {
    if (!again && imageMode()) {
      draw(text);
      return;
    }
    if (state.streaming || !text.trim() || sendButton.disabled) return;
    if (state.pinnedOnly) state.pinnedOnly = false;
    const prompt = { id: null, role: "user", content: text, is_pinned: false, status: "complete" };
    const reply = { id: null, role: "assistant", content: "", reasoning: "", model_id: again ? again.model : state.current, is_pinned: false, status: "streaming" };
    if (!state.messages.length) thread.replaceChildren();
    state.messages.push(prompt, reply);
    thread.append(messageNode(prompt), messageNode(reply));
    reply.node.classList.add("streaming");
    reply.node.dataset.testid = "message";
    const typing = el("div", { class: "typing", testid: "typing" }, el("span"), el("span"), el("span"));
    reply.node.querySelector(".bubble").append(typing);
    scrollDown();
    if (!again) {
      input.value = "";
      autosize();
    }
    const controller = new AbortController();
    state.streaming = { turnId: null, controller };
    setStreaming(true);
    for (const m of state.messages) if (m.update) m.update();
    let frame = 0;
    const paint = () => {
      frame = 0;
      const stick = nearBottom();
      reply.update();
      if (reply.content || reply.reasoning) typing.remove();
      else reply.node.querySelector(".bubble").append(typing);
      if (stick) scrollDown();
    };
    const schedule = () => {
      if (!frame) frame = requestAnimationFrame(paint);
    };
    try {
      const againBody = again ? { ...(again.text ? { text: again.text } : {}), ...(again.model_id ? { model_id: again.model_id } : {}) } : null;
      const response = await request(again ? `/api/messages/${again.id}/redo` : "/api/chat", {
        method: "POST",
        body: againBody || { text, conversation_id: state.conversationId, model_id: state.current },
        headers: { Accept: "text/event-stream" },
        signal: controller.signal,
      });
      if (!response.ok) {
        let data = {};
        try {
          data = await response.json();
        } catch (_) {
          data = {};
        }
        throw new ApiError(response.status, data.error, data.message);
      }
      for await (const { event, data } of events(response.body)) {
        if (event === "start") {
          state.streaming.turnId = data.turn_id;
          // The turn asked again is replaced now: it stays, marked.
          if (again) for (const m of again.replaces) m.replaced = true;
          if (data.conversation_id && data.conversation_id !== state.conversationId) {
            state.conversationId = data.conversation_id;
            app.replaceRoute(`chat/${data.conversation_id}`);
            renderHeadActions();
          }
        } else if (event === "delta") {
          reply.content += data.text || "";
          schedule();
        } else if (event === "reasoning") {
          reply.reasoning += data.text || "";
          schedule();
        } else if (event === "done") {
          reply.id = data.message_id || null;
          reply.status = data.status || "complete";
          if (data.free) reply.cost = t("free_request");
          else if (data.charged_kopecks) reply.cost = money(data.charged_kopecks);
          if (typeof data.balance_kopecks === "number") app.setBalance(data.balance_kopecks);
          reply.sources = data.sources || [];
        } else if (event === "error") {
          reply.status = "failed";
          reply.error = { code: data.code, message: data.message };
        }
      }
      if (reply.status === "streaming") reply.status = reply.content ? "complete" : "failed";
    } catch (error) {
      if (error.name === "AbortError") {
        reply.status = "stopped";
      } else {
        reply.status = "failed";
        reply.error = { code: error.code, message: error.message };
      }
    } finally {
      if (frame) cancelAnimationFrame(frame);
      typing.remove();
      reply.node.classList.remove("streaming");
      state.streaming = null;
      if (state.alive) {
        setStreaming(false);
        if (!reply.content && reply.status === "failed") {
          // Nothing arrived: the reply is the error itself.
          state.messages.splice(state.messages.indexOf(reply), 1);
          reply.node.replaceWith(errorNode(reply.error));
        } else {
          reply.update();
          if (reply.error) reply.node.after(errorNode(reply.error));
        }
        renderPinnedBar();
        for (const m of state.messages) if (m.update) m.update();
        if (nearBottom()) scrollDown();
        loadList();
        syncStored();
      }
    }
  }

  function errorNode(problem) {
    const message = (problem && problem.message) || t("failed");
    const node = el("div", { class: "msg-error", testid: "chat-error", role: "alert" }, icon("alert"), el("span", { text: message }));
    if (problem && problem.code === "insufficient_funds") node.append(el("a", { class: "btn btn-primary btn-sm", href: "#/balance", text: t("top_up") }));
    return node;
  }

  async function stop() {
    const streaming = state.streaming;
    if (!streaming) return;
    stopButton.disabled = true;
    if (!streaming.turnId) {
      streaming.controller.abort();
      return;
    }
    try {
      await api(`/api/chat/${encodeURIComponent(streaming.turnId)}/stop`, { method: "POST" });
    } catch (_) {
      streaming.controller.abort();
    }
    // The reply ends with a "done" event; if the server never sends it, stop waiting.
    setTimeout(() => {
      if (state.streaming === streaming) streaming.controller.abort();
    }, 8000);
  }

  composer.addEventListener("submit", (event) => {
    event.preventDefault();
    send(input.value);
  });
  stopButton.addEventListener("click", stop);
  input.addEventListener("input", autosize);
  input.addEventListener("keydown", (event) => {
    const desktop = window.matchMedia("(pointer: fine)").matches;
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing && desktop) {
      event.preventDefault();
      send(input.value);
    }
  });

  // --- start ------------------------------------------------------------------------------------

  async function start() {
    thread.replaceChildren(spinner());
    renderHeadActions();
    loadList();
    try {
      const [models, presets] = await Promise.all([api("/api/models"), api("/api/presets").catch(() => null)]);
      if (!state.alive) return;
      state.models = models.models || [];
      state.freeClasses = models.free_classes || [];
      state.current = models.current || models.default || (state.models[0] && state.models[0].id) || null;
      state.defaultModel = state.current;
      state.presets = (presets && presets.presets) || [];
      if (presets && presets.active_id) {
        const active = presets.presets.find((p) => p.id === presets.active_id);
        state.activePreset = active ? active.title : null;
      }
      renderPicker();
      renderList();
      syncModel();
      if (!state.models.length) {
        composer.hidden = true;
        thread.replaceChildren(empty(t("no_models"), null, "sparkle"));
        return;
      }
      await Promise.all([loadMessages(), loadFiles()]);
      if (!state.alive) return;
      state.ready = true;
      input.disabled = false;
      syncImageMode();
      renderFiles();
      if (!listMode && window.matchMedia("(pointer: fine)").matches) input.focus();
    } catch (error) {
      if (!state.alive) return;
      picker.disabled = true;
      composer.hidden = true;
      thread.replaceChildren(errorBox(error.message, start));
    }
  }

  start();

  return () => {
    state.alive = false;
    if (state.streaming) state.streaming.controller.abort();
    if (mic) mic.cancel();
  };
}

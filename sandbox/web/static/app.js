// The sandbox page: a person plays a Telegram user chatting with the bot. Everything it shows
// comes from the control API; live changes arrive through the /events long-poll.

import { ApiError, sandbox, Unreachable } from "./api.js";
import { alertBox, ask } from "./dialog.js";
import { MiniAppPanel } from "./miniapp.js";
import { draftElement, el, messageElement, updateDraftElement } from "./render.js";
import {
  CHAT_ACTION_TEXT,
  commandsFor,
  displayName,
  menuButtonFor,
  replyKeyboardFrom,
  safeUrl,
} from "./telegram.js";

const POLL_SECONDS = 20;
const TYPING_MS = 5000;
const STORE = {
  user: "sandbox.userId",
  chat: "sandbox.chatId",
  bot: "sandbox.botId",
  groups: "sandbox.groups",
};

const $ = (id) => document.getElementById(id);
const ui = {
  layout: $("layout"),
  connection: $("connection-status"),
  refresh: $("refresh-button"),
  userList: $("user-list"),
  usersEmpty: $("users-empty"),
  userForm: $("user-form"),
  userFormBox: $("user-form-box"),
  groupList: $("group-list"),
  groupsEmpty: $("groups-empty"),
  groupForm: $("group-form"),
  groupFormBox: $("group-form-box"),
  groupMembers: $("group-members"),
  botSelectLabel: $("bot-select-label"),
  botSelect: $("bot-select"),
  botSummary: $("bot-summary"),
  chatTitle: $("chat-title"),
  chatSubtitle: $("chat-subtitle"),
  notice: $("notice"),
  scroller: $("scroller"),
  placeholder: $("chat-placeholder"),
  messages: $("messages"),
  drafts: $("drafts"),
  typing: $("typing-indicator"),
  typingText: $("typing-text"),
  composerArea: $("composer-area"),
  hints: $("command-hints"),
  replyKeyboard: $("reply-keyboard"),
  composer: $("composer"),
  menuButton: $("menu-button"),
  fileInput: $("file-input"),
  input: $("composer-input"),
  keyboardToggle: $("keyboard-toggle"),
  send: $("send-button"),
  imagesAsPhotos: $("images-as-photos"),
  toasts: $("toasts"),
};

function readNumber(key) {
  const value = Number(localStorage.getItem(key));
  return Number.isSafeInteger(value) && value !== 0 ? value : null;
}

function readGroups() {
  try {
    const groups = JSON.parse(localStorage.getItem(STORE.groups) || "[]");
    return Array.isArray(groups) ? groups.filter((g) => g && Number.isSafeInteger(g.id)) : [];
  } catch {
    return [];
  }
}

const state = {
  users: [],
  groups: readGroups(),
  bots: [],
  botId: readNumber(STORE.bot),
  userId: readNumber(STORE.user),
  chatId: readNumber(STORE.chat),
  transcript: null,
  after: 0,
  connected: false,
  unread: new Map(),
  typing: null,
  commands: [],
  hintIndex: -1,
  keyboardShownFor: null,
  keyboardHidden: false,
  usedOneTimeKeyboard: null,
  pendingCallbacks: new Map(),
  answeredCallbacks: new Set(),
};
const messageNodes = new Map();
const draftNodes = new Map();
let typingTimer = null;
let draftTimer = null;

// --- small helpers -------------------------------------------------------------------------

function save(key, value) {
  if (value === null || value === undefined) localStorage.removeItem(key);
  else localStorage.setItem(key, typeof value === "string" ? value : JSON.stringify(value));
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function currentUser() {
  return state.users.find((u) => u.id === state.userId) || null;
}

function currentBot() {
  return state.bots.find((b) => b.id === state.botId) || state.bots[0] || null;
}

function botTitle() {
  const bot = currentBot();
  return bot ? bot.first_name || `@${bot.username}` : "Bot";
}

function currentGroup() {
  return state.groups.find((g) => g.id === state.chatId) || null;
}

function chatType() {
  if (state.chatId === null) return null;
  return state.chatId > 0 ? "private" : "group";
}

function toast(text, kind = "info", link = null) {
  const node = el("div", {
    class: `toast toast-${kind}`,
    "data-testid": "toast",
    "data-kind": kind,
    role: kind === "error" ? "alert" : "status",
  }, el("span", { text }));
  const href = link && safeUrl(link.url);
  if (href) node.append(" ", el("a", { href, target: "_blank", rel: "noopener noreferrer", text: link.text }));
  const close = () => node.remove();
  node.append(el("button", { type: "button", class: "toast-close", "aria-label": "Dismiss", text: "✕", onclick: close }));
  ui.toasts.append(node);
  setTimeout(close, kind === "error" ? 9000 : 5000);
}

function setConnection(status) {
  const labels = { online: "Online", connecting: "Connecting…", offline: "Reconnecting…" };
  ui.connection.dataset.state = status;
  ui.connection.textContent = labels[status];
}

function setNotice(text) {
  ui.notice.hidden = !text;
  ui.notice.textContent = text || "";
}

// --- loading -------------------------------------------------------------------------------

async function loadUsers() {
  state.users = (await sandbox.users()).users || [];
}

async function loadBots() {
  state.bots = (await sandbox.bots()).bots || [];
  if (state.botId !== null && !state.bots.some((b) => b.id === state.botId)) state.botId = null;
}

// Groups have no listing in the control API: the page keeps the ones it made, and forgets those
// the sandbox no longer knows (it keeps everything in memory, so a restart empties it).
async function validateGroups() {
  const kept = [];
  for (const group of state.groups) {
    try {
      const transcript = await sandbox.transcript(group.id);
      kept.push({ ...group, title: transcript.chat.title || group.title });
    } catch (error) {
      if (!(error instanceof ApiError && error.status === 400)) kept.push(group);
    }
  }
  state.groups = kept;
  save(STORE.groups, kept);
}

async function loadAll() {
  await Promise.all([loadUsers(), loadBots()]);
  await validateGroups();
  if (state.userId !== null && !currentUser()) state.userId = null;
  const knownChat =
    state.chatId !== null &&
    ((state.chatId > 0 && state.chatId === state.userId) || state.groups.some((g) => g.id === state.chatId));
  save(STORE.user, state.userId);
  await openChat(knownChat ? state.chatId : state.userId, { keepView: true });
}

// --- sidebar -------------------------------------------------------------------------------

function badge(chatId) {
  const count = state.unread.get(chatId) || 0;
  return count ? el("span", { class: "badge", "data-testid": "unread-badge", "aria-label": `${count} new`, text: String(count) }) : null;
}

function renderSidebar() {
  ui.userList.replaceChildren(
    ...state.users.map((user) => {
      const details = [user.username ? `@${user.username}` : null, user.language_code || "no language", user.is_premium ? "Premium" : null, `id ${user.id}`];
      return el("li", {},
        el("button", {
          type: "button",
          class: "entity",
          "data-testid": "user-item",
          "data-user-id": user.id,
          "aria-pressed": String(user.id === state.userId),
          "aria-label": `Act as ${displayName(user)}`,
          onclick: () => pickUser(user.id),
        },
        el("span", { class: "avatar", "aria-hidden": "true", text: (displayName(user)[0] || "?").toUpperCase() }),
        el("span", { class: "entity-body" },
          el("span", { class: "entity-name", text: displayName(user) }),
          el("span", { class: "entity-meta", text: details.filter(Boolean).join(" · ") })),
        badge(user.id)),
      );
    }),
  );
  ui.usersEmpty.hidden = state.users.length > 0;

  ui.groupList.replaceChildren(
    ...state.groups.map((group) =>
      el("li", {},
        el("button", {
          type: "button",
          class: "entity",
          "data-testid": "group-item",
          "data-chat-id": group.id,
          "aria-pressed": String(group.id === state.chatId),
          "aria-label": `Open group ${group.title}`,
          onclick: () => pickGroup(group.id),
        },
        el("span", { class: "avatar group", "aria-hidden": "true", text: "#" }),
        el("span", { class: "entity-body" },
          el("span", { class: "entity-name", text: group.title }),
          el("span", { class: "entity-meta", text: `${(group.member_ids || []).length} members · id ${group.id}` })),
        badge(group.id)),
      ),
    ),
  );
  ui.groupsEmpty.hidden = state.groups.length > 0;

  const checked = new Set([...ui.groupMembers.querySelectorAll("input:checked")].map((i) => Number(i.value)));
  if (!checked.size && state.userId !== null) checked.add(state.userId);
  ui.groupMembers.replaceChildren(
    ...state.users.map((user) =>
      el("label", { class: "check" },
        el("input", { type: "checkbox", name: "member", value: user.id, checked: checked.has(user.id), "data-testid": "group-member" }),
        ` ${displayName(user)}`),
    ),
  );
  renderBotInfo();
}

function renderBotInfo() {
  ui.botSelectLabel.hidden = state.bots.length < 2;
  ui.botSelect.replaceChildren(
    ...state.bots.map((bot) => el("option", { value: bot.id, selected: bot.id === (currentBot() || {}).id, text: `@${bot.username}` })),
  );
  const bot = currentBot();
  if (!bot) {
    ui.botSummary.replaceChildren(
      el("p", { text: "No bot has connected yet." }),
      el("p", { class: "hint", text: `Point the bot at this sandbox (Bot API base URL ${window.location.origin}) and start it.` }),
    );
    return;
  }
  const hook = bot.webhook || {};
  const lines = [
    el("p", {}, el("strong", { text: bot.first_name || "Bot" }), ` @${bot.username} · id ${bot.id}`),
    el("p", { text: hook.url ? `Webhook: ${hook.url}` : "Long polling (getUpdates)" }),
    el("p", { text: `Pending updates: ${hook.pending_update_count ?? 0}` }),
  ];
  if (hook.last_error_message) lines.push(el("p", { class: "error-text", text: `Last webhook error: ${hook.last_error_message}` }));
  ui.botSummary.replaceChildren(...lines);
}

function pickUser(userId) {
  state.userId = userId;
  save(STORE.user, userId);
  openChat(userId);
}

function pickGroup(chatId) {
  openChat(chatId);
}

// --- the chat ------------------------------------------------------------------------------

function resetChatView() {
  messageNodes.clear();
  draftNodes.clear();
  ui.messages.replaceChildren();
  ui.drafts.replaceChildren();
  state.transcript = null;
  state.typing = null;
  state.keyboardShownFor = null;
  state.keyboardHidden = false;
  state.usedOneTimeKeyboard = null;
  state.pendingCallbacks.clear();
  renderTyping();
  hideHints();
}

async function openChat(chatId, { keepView = false } = {}) {
  const changed = chatId !== state.chatId || !keepView;
  state.chatId = chatId;
  save(STORE.chat, chatId);
  if (chatId !== null) state.unread.delete(chatId);
  if (changed) resetChatView();
  // A Mini App runs as the user who opened it; another chat closes it, as in Telegram.
  if (changed && miniApp.isOpen) miniApp.close();
  renderSidebar();
  renderChatChrome();
  if (chatId !== null) await refreshQuietly({ toBottom: true });
}

function renderChatChrome() {
  const open = state.chatId !== null;
  ui.placeholder.hidden = open;
  ui.composerArea.hidden = !open;
  const user = currentUser();
  const bot = currentBot();
  const botName = bot ? `@${bot.username}` : "the bot";
  if (!open) {
    ui.chatTitle.textContent = "No chat open";
    ui.chatSubtitle.textContent = "";
  } else if (chatType() === "private") {
    ui.chatTitle.textContent = `${displayName(user)} ↔ ${botName}`;
    ui.chatSubtitle.textContent = `Private chat ${state.chatId} · you are ${displayName(user)}${user && user.language_code ? ` (${user.language_code})` : ""}`;
  } else {
    const group = currentGroup();
    ui.chatTitle.textContent = group ? group.title : `Group ${state.chatId}`;
    ui.chatSubtitle.textContent = `Group ${state.chatId} · you are ${displayName(user)}`;
  }
  let notice = "";
  let canSend = open && user !== null;
  if (open && !state.bots.length) notice = `No bot has connected to the sandbox yet. Start the bot with the Bot API base URL ${window.location.origin}.`;
  if (open && chatType() === "group") {
    const group = currentGroup();
    if (!user) {
      notice = "Pick a user to act as in this group.";
      canSend = false;
    } else if (group && !(group.member_ids || []).includes(user.id)) {
      notice = `${displayName(user)} is not a member of this group: pick a member to write here.`;
      canSend = false;
    }
  }
  setNotice(notice);
  ui.input.disabled = !canSend;
  ui.send.disabled = !canSend;
  ui.fileInput.disabled = !canSend;
  renderComposerChrome();
}

function renderComposerChrome() {
  const bot = currentBot();
  const user = currentUser();
  state.commands = state.chatId === null
    ? []
    : commandsFor(bot, { chatId: state.chatId, chatType: chatType(), userId: state.userId, language: user && user.language_code });
  const menu = state.chatId === null ? null : menuButtonFor(bot, state.chatId, chatType());
  const webAppUrl = menu && menu.type === "web_app" && menu.web_app ? safeUrl(menu.web_app.url) : null;
  if (webAppUrl) {
    const text = String(menu.text || "Open");
    ui.menuButton.hidden = false;
    ui.menuButton.textContent = text;
    ui.menuButton.dataset.kind = "web_app";
    ui.menuButton.dataset.url = webAppUrl;
    ui.menuButton.setAttribute("aria-label", `Open the Mini App: ${text}`);
    ui.menuButton.title = webAppUrl;
  } else if (state.commands.length) {
    ui.menuButton.hidden = false;
    ui.menuButton.textContent = "☰ Menu";
    ui.menuButton.dataset.kind = "commands";
    delete ui.menuButton.dataset.url;
    ui.menuButton.setAttribute("aria-label", "Show the bot's commands");
    ui.menuButton.title = "Commands";
  } else {
    ui.menuButton.hidden = true;
    ui.menuButton.dataset.kind = "none";
  }
  updateHints();
}

let refreshing = null;
let refreshAgain = false;

// Coalesced: while one fetch runs, further requests collapse into one more fetch after it.
// For what the person does (sending, opening a chat): a lost connection is shown by the
// events loop, which reconnects and reloads; it is no error of the action itself.
async function refreshQuietly(options = {}) {
  try {
    await refreshChat(options);
  } catch (error) {
    // The events loop shows the lost connection and reloads once it is back.
    if (!(error instanceof Unreachable)) throw error;
  }
}

async function refreshChat(options = {}) {
  if (refreshing) {
    refreshAgain = true;
    if (options.toBottom) refreshing.toBottom = true;
    return refreshing.promise;
  }
  const job = { toBottom: Boolean(options.toBottom) };
  refreshing = job;
  job.promise = (async () => {
    try {
      do {
        refreshAgain = false;
        const chatId = state.chatId;
        if (chatId === null) return;
        let transcript;
        try {
          transcript = await sandbox.transcript(chatId);
        } catch (error) {
          if (chatId === state.chatId) setNotice(`Could not load the chat: ${error.message}`);
          if (!(error instanceof ApiError)) throw error;
          return;
        }
        if (chatId !== state.chatId) {
          refreshAgain = true;
          continue;
        }
        renderTranscript(transcript, job.toBottom);
        job.toBottom = false;
      } while (refreshAgain);
    } finally {
      refreshing = null;
    }
  })();
  return job.promise;
}

function nearBottom() {
  const s = ui.scroller;
  return s.scrollHeight - s.scrollTop - s.clientHeight < 120;
}

function renderTranscript(transcript, toBottom) {
  const stick = toBottom || nearBottom();
  if (transcript.chat && transcript.chat.type !== "private") {
    const group = currentGroup();
    if (group && transcript.chat.title && group.title !== transcript.chat.title) group.title = transcript.chat.title;
  }
  if (!ui.notice.hidden && ui.notice.textContent.startsWith("Could not load")) setNotice("");
  const all = transcript.messages || [];
  const byId = new Map(all.map((m) => [m.message_id, m]));
  const context = {
    viewerId: state.userId,
    chatType: chatType(),
    lookup: (id) => byId.get(id),
    onCallback: tapCallback,
    onWebApp: (url, text) => miniApp.open(url, text),
    onCopy: copyText,
    onPay: payInvoice,
    onCommand: (command) => sendText(command),
  };
  const seen = new Set();
  let previous = null;
  for (const message of all) {
    if (message.deleted) continue;
    const key = `${state.userId}|${JSON.stringify(message)}|${message.reply_to_message_id ? JSON.stringify(byId.get(message.reply_to_message_id) || null) : ""}`;
    let entry = messageNodes.get(message.message_id);
    if (!entry || entry.key !== key) {
      const node = messageElement(message, context);
      if (entry) entry.node.replaceWith(node);
      entry = { key, node };
      messageNodes.set(message.message_id, entry);
    }
    const expected = previous ? previous.nextSibling : ui.messages.firstChild;
    if (entry.node !== expected) ui.messages.insertBefore(entry.node, expected);
    previous = entry.node;
    seen.add(message.message_id);
  }
  for (const [id, entry] of messageNodes) {
    if (!seen.has(id)) {
      entry.node.remove();
      messageNodes.delete(id);
    }
  }
  const firstLoad = state.transcript === null;
  renderDrafts(transcript.drafts || []);
  if (firstLoad) typingFromTranscript(transcript, all);
  state.transcript = transcript;
  renderReplyKeyboard(all);
  renderTyping();
  if (stick) ui.scroller.scrollTop = ui.scroller.scrollHeight;
}

function renderDrafts(drafts) {
  const active = drafts.filter((d) => d.active);
  const seen = new Set();
  for (const draft of active) {
    seen.add(draft.draft_id);
    const existing = draftNodes.get(draft.draft_id);
    if (existing) {
      if (existing.html !== draft.html) updateDraftElement(existing.node, draft);
      existing.html = draft.html;
    } else {
      const node = draftElement(draft);
      draftNodes.set(draft.draft_id, { node, html: draft.html });
      ui.drafts.append(node);
    }
  }
  for (const [id, entry] of draftNodes) {
    if (!seen.has(id)) {
      entry.node.remove();
      draftNodes.delete(id);
    }
  }
  // A draft ends on its own when the bot stops updating it: look again later.
  clearTimeout(draftTimer);
  if (active.length) draftTimer = setTimeout(() => refreshQuietly(), 3000);
}

// On opening a chat: an action shown a moment ago and not yet followed by a bot message.
function typingFromTranscript(transcript, messages) {
  const actions = transcript.chat_actions || [];
  const last = actions[actions.length - 1];
  if (!last || typeof last.at !== "number") return;
  const lastBotMessage = messages.filter((m) => m.is_bot_message).reduce((at, m) => Math.max(at, m.date), 0);
  const ageMs = Date.now() - last.at * 1000;
  if (ageMs < TYPING_MS && last.at >= lastBotMessage) setTyping(String(last.action), TYPING_MS - ageMs);
}

function setTyping(action, forMs = TYPING_MS) {
  state.typing = { action, until: Date.now() + forMs };
  clearTimeout(typingTimer);
  typingTimer = setTimeout(renderTyping, forMs + 50);
  renderTyping();
}

function clearTyping() {
  state.typing = null;
  renderTyping();
}

function renderTyping() {
  const typing = state.typing;
  const visible = typing !== null && typing.until > Date.now() && draftNodes.size === 0;
  ui.typing.hidden = !visible;
  if (visible) {
    const bot = currentBot();
    ui.typing.dataset.action = typing.action;
    ui.typingText.textContent = `${bot ? bot.first_name || "Bot" : "Bot"} is ${CHAT_ACTION_TEXT[typing.action] || typing.action}`;
  }
}

// --- reply keyboard ------------------------------------------------------------------------

function renderReplyKeyboard(messages) {
  const keyboard = replyKeyboardFrom(messages);
  let placeholder = "Message";
  if (!keyboard || (keyboard.kind === "keyboard" && state.usedOneTimeKeyboard === keyboard.messageId)) {
    ui.replyKeyboard.hidden = true;
    ui.replyKeyboard.replaceChildren();
    ui.keyboardToggle.hidden = true;
    ui.input.placeholder = placeholder;
    return;
  }
  const { markup } = keyboard;
  if (typeof markup.input_field_placeholder === "string" && markup.input_field_placeholder) placeholder = markup.input_field_placeholder;
  if (keyboard.kind === "force_reply") {
    ui.replyKeyboard.hidden = true;
    ui.keyboardToggle.hidden = true;
    ui.input.placeholder = placeholder === "Message" ? "Reply to the bot" : placeholder;
    return;
  }
  ui.input.placeholder = placeholder;
  if (state.keyboardShownFor !== keyboard.messageId) {
    state.keyboardShownFor = keyboard.messageId;
    state.keyboardHidden = false;
  }
  ui.replyKeyboard.replaceChildren(
    ...markup.keyboard.filter(Array.isArray).map((row) =>
      el("div", { class: "kb-row" }, ...row.map((raw) => replyButton(typeof raw === "string" ? { text: raw } : raw || {}, keyboard))),
    ),
  );
  ui.replyKeyboard.hidden = state.keyboardHidden;
  ui.keyboardToggle.hidden = false;
  ui.keyboardToggle.setAttribute("aria-pressed", String(!state.keyboardHidden));
  ui.keyboardToggle.setAttribute("aria-label", state.keyboardHidden ? "Show the reply keyboard" : "Hide the reply keyboard");
}

function replyButton(button, keyboard) {
  const text = String(button.text || "");
  const common = { type: "button", class: "kb-button", "data-testid": "reply-button" };
  if (button.web_app) {
    const url = safeUrl(button.web_app.url);
    return el("button", { ...common, text: `${text} ⧉`, disabled: !url, title: url || "Not an http(s) URL", onclick: () => url && miniApp.open(url, text) });
  }
  const unsupported = ["request_contact", "request_location", "request_poll", "request_users", "request_chat", "request_managed_bot"].find((k) => button[k]);
  if (unsupported) {
    return el("button", { ...common, text, disabled: true, title: `${unsupported} is not supported in the sandbox` });
  }
  return el("button", {
    ...common,
    text,
    onclick: async () => {
      const sent = await sendText(text);
      if (sent && keyboard.markup.one_time_keyboard) {
        state.usedOneTimeKeyboard = keyboard.messageId;
        if (state.transcript) renderReplyKeyboard(state.transcript.messages || []);
      }
    },
  });
}

// --- acting as the user --------------------------------------------------------------------

function actingBody(extra) {
  const body = { from_user_id: state.userId, ...extra };
  const bot = currentBot();
  if (bot) body.bot_id = bot.id;
  return body;
}

async function sendText(text) {
  if (state.chatId === null || state.userId === null) {
    toast("Pick a user first.", "error");
    return false;
  }
  try {
    await sandbox.sendText(state.chatId, actingBody({ text }));
  } catch (error) {
    toast(`Not sent: ${error.message}`, "error");
    if (!state.bots.length) loadBots().then(renderSidebar, () => {});
    return false;
  }
  await refreshQuietly({ toBottom: true });
  return true;
}

let sending = false;

async function submitComposer() {
  const text = ui.input.value;
  // One send at a time: a second Enter before the first returns would send the text twice.
  if (!text.trim() || ui.input.disabled || sending) return;
  sending = true;
  ui.send.disabled = true;
  try {
    if (await sendText(text)) {
      ui.input.value = "";
      autosize();
      hideHints();
    }
  } finally {
    sending = false;
    ui.send.disabled = ui.input.disabled;
    ui.input.focus();
  }
}

function readBase64(file) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(String(reader.result).split(",", 2)[1] || "");
    reader.onerror = () => reject(reader.error || new Error("could not read the file"));
    reader.readAsDataURL(file);
  });
}

async function sendFile(file) {
  if (state.chatId === null || state.userId === null) return;
  const asPhoto = ui.imagesAsPhotos.checked && /^image\/(jpeg|png|webp|gif)$/.test(file.type);
  const caption = ui.input.value.trim();
  try {
    const body = actingBody({ content_base64: await readBase64(file) });
    if (caption) body.caption = caption;
    if (asPhoto) {
      await sandbox.sendPhoto(state.chatId, body);
    } else {
      body.file_name = file.name || "file";
      body.mime_type = file.type || "application/octet-stream";
      await sandbox.sendDocument(state.chatId, body);
    }
  } catch (error) {
    toast(`File not sent: ${error.message}`, "error");
    return;
  }
  ui.input.value = "";
  autosize();
  await refreshQuietly({ toBottom: true });
}

async function tapCallback(button, message, node) {
  node.classList.add("busy");
  node.setAttribute("aria-busy", "true");
  const done = () => {
    node.classList.remove("busy");
    node.removeAttribute("aria-busy");
  };
  let result;
  try {
    result = await sandbox.tap(state.chatId, actingBody({ message_id: message.message_id, data: button.callback_data }));
  } catch (error) {
    done();
    toast(`Button not pressed: ${error.message}`, "error");
    return;
  }
  const id = result.callback_query_id;
  if (state.answeredCallbacks.has(id)) {
    done();
    return;
  }
  state.pendingCallbacks.set(id, done);
  // Telegram stops waiting for an answer after a while; so does the button.
  setTimeout(() => {
    if (state.pendingCallbacks.get(id) === done) {
      state.pendingCallbacks.delete(id);
      done();
    }
  }, 15000);
}

function showCallbackAnswer(event) {
  const id = event.callback_query_id;
  state.answeredCallbacks.add(id);
  const done = state.pendingCallbacks.get(id);
  if (done) {
    state.pendingCallbacks.delete(id);
    done();
  }
  const text = typeof event.text === "string" ? event.text : "";
  const url = typeof event.url === "string" ? event.url : "";
  if (text && event.show_alert) alertBox(botTitle(), text);
  else if (text) toast(text, "answer", url ? { url, text: "Open" } : null);
  else if (url) toast("The bot answered with a URL.", "answer", { url, text: "Open" });
}

// --- payments (Telegram Stars) -------------------------------------------------------------

function stars(amount) {
  return `⭐ ${Number(amount) || 0}`;
}

// The pay button of an invoice message: a checkout form, then the pre-checkout round trip with the
// bot; the outcome arrives as a payment event.
async function payInvoice(button, message, node) {
  const invoice = message.invoice || {};
  const what = invoice.title ? `${invoice.title}: ${stars(invoice.total_amount)}` : button.text;
  const choice = await ask("Checkout", `Pay ${what} to ${botTitle()}?`, [
    { id: "cancel", text: "Cancel", secondary: true, testid: "checkout-cancel" },
    { id: "pay", text: "Pay", testid: "checkout-pay" },
  ]);
  if (choice !== "pay") return;
  node.classList.add("busy");
  try {
    await sandbox.pay(state.chatId, actingBody({ message_id: message.message_id }));
    toast("Waiting for the bot to confirm the payment…");
  } catch (error) {
    toast(`Payment not started: ${error.message}`, "error");
  } finally {
    node.classList.remove("busy");
  }
}

// An invoice link opened by a Mini App (openInvoice): paid in the user's chat with the bot.
async function payInvoiceLink(slug) {
  const choice = await ask("Checkout", `Pay the invoice ${slug} to ${botTitle()}?`, [
    { id: "cancel", text: "Cancel", secondary: true, testid: "checkout-cancel" },
    { id: "pay", text: "Pay", testid: "checkout-pay" },
  ]);
  if (choice !== "pay") return "cancelled";
  try {
    await sandbox.pay(state.userId, actingBody({ invoice_link: slug }));
  } catch (error) {
    toast(`Payment not started: ${error.message}`, "error");
    return "failed";
  }
  return "pending";
}

function paymentEvent(event) {
  if (event.type === "payment_succeeded") {
    toast(`Payment succeeded: ${stars(event.amount)}`, "answer");
    miniApp.invoiceSettled(event.chat_id, "paid");
  } else if (event.type === "payment_failed") {
    toast(`Payment failed: ${event.reason || "unknown reason"}`, "error");
    miniApp.invoiceSettled(event.chat_id, "failed");
  } else if (event.type === "payment_refunded") {
    toast(`Payment refunded: ${stars(event.amount)}`, "answer");
  }
}

async function copyText(text) {
  try {
    await navigator.clipboard.writeText(text);
    toast("Copied to the clipboard.");
  } catch {
    toast(`Copy this: ${text}`);
  }
}

// --- command hints -------------------------------------------------------------------------

function hintsQuery() {
  const text = ui.input.value;
  if (!text.startsWith("/") || /\s/.test(text)) return null;
  return text.slice(1).toLowerCase();
}

function updateHints(forceAll = false) {
  const query = forceAll ? "" : hintsQuery();
  if (query === null || !state.commands.length || state.chatId === null) {
    hideHints();
    return;
  }
  const matches = state.commands.filter((c) => String(c.command).toLowerCase().startsWith(query.split("@")[0]));
  if (!matches.length) {
    hideHints();
    return;
  }
  state.hintIndex = Math.min(state.hintIndex, matches.length - 1);
  ui.hints.replaceChildren(
    ...matches.map((command, index) =>
      el("li", {
        role: "option",
        id: `command-hint-${index}`,
        class: "command-hint",
        "data-testid": "command-hint",
        "data-command": command.command,
        "aria-selected": String(index === state.hintIndex),
        onmousedown: (event) => event.preventDefault(),
        onclick: () => pickHint(command.command),
      },
      el("span", { class: "command-name", text: `/${command.command}` }),
      el("span", { class: "command-description", text: command.description || "" })),
    ),
  );
  ui.hints.hidden = false;
  ui.input.setAttribute("aria-controls", "command-hints");
  ui.input.setAttribute("aria-expanded", "true");
}

// --- inline mode: "@bot question" offers the bot's results; picking one sends it here -----------

let inlineTimer = null;
let inlineSeq = 0;

function inlineText() {
  const bot = currentBot();
  const match = /^@(\w+)\s+([\s\S]*)$/.exec(ui.input.value);
  if (!bot || !match || match[1].toLowerCase() !== String(bot.username).toLowerCase()) return null;
  return match[2];
}

function updateInline() {
  clearTimeout(inlineTimer);
  const query = inlineText();
  if (query === null || state.userId === null) return;
  inlineTimer = setTimeout(() => askInline(query), 400);
}

async function askInline(query) {
  const seq = ++inlineSeq;
  let sent;
  try {
    sent = await sandbox.inlineQuery(actingBody({ query, chat_type: chatType() === "private" ? "sender" : chatType() }));
  } catch (error) {
    toast(`Inline query not sent: ${error.message}`, "error");
    return;
  }
  // Telegram gives the bot a few seconds to answer.
  for (let waited = 0; waited < 10_000 && seq === inlineSeq; waited += 250) {
    const found = await sandbox.inlineAnswer(sent.inline_query_id);
    if (found.answer) {
      if (seq === inlineSeq && inlineText() !== null) showInline(sent.inline_query_id, found.answer);
      return;
    }
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

function showInline(queryId, answer) {
  const items = [];
  if (answer.button && answer.button.start_parameter) {
    const start = answer.button.start_parameter;
    items.push(
      el("li", { class: "command-hint", "data-testid": "inline-button", onmousedown: (event) => event.preventDefault(), onclick: () => startFromInline(start) },
        el("span", { class: "command-name", text: answer.button.text || "Start" })),
    );
  }
  for (const result of answer.results || []) {
    items.push(
      el("li", { class: "command-hint", "data-testid": "inline-result", "data-result-id": result.id, onmousedown: (event) => event.preventDefault(), onclick: () => chooseInline(queryId, result.id) },
        el("span", { class: "command-name", text: result.title || result.id }),
        el("span", { class: "command-description", text: result.description || "" })),
    );
  }
  if (!items.length) {
    hideHints();
    return;
  }
  ui.hints.replaceChildren(...items);
  ui.hints.hidden = false;
}

async function chooseInline(queryId, resultId) {
  hideHints();
  inlineSeq += 1;
  try {
    await sandbox.chooseInline(queryId, { result_id: resultId, chat_id: state.chatId });
  } catch (error) {
    toast(`Not sent: ${error.message}`, "error");
    return;
  }
  ui.input.value = "";
  autosize();
  await refreshQuietly({ toBottom: true });
}

// The button above the results opens the private chat with the bot, started with its parameter.
async function startFromInline(start) {
  hideHints();
  inlineSeq += 1;
  ui.input.value = "";
  autosize();
  try {
    await sandbox.sendText(state.userId, actingBody({ text: `/start ${start}` }));
  } catch (error) {
    toast(`Not sent: ${error.message}`, "error");
  }
}

function hideHints() {
  ui.hints.hidden = true;
  ui.hints.replaceChildren();
  state.hintIndex = -1;
  ui.input.setAttribute("aria-expanded", "false");
}

// Tapping a command sends it, as Telegram does; in groups it is addressed to the bot.
async function pickHint(command) {
  const bot = currentBot();
  const text = chatType() === "group" && bot ? `/${command}@${bot.username}` : `/${command}`;
  hideHints();
  if (await sendText(text)) {
    ui.input.value = "";
    autosize();
  }
  ui.input.focus();
}

function moveHint(step) {
  const items = ui.hints.querySelectorAll('[data-testid="command-hint"]');
  if (!items.length) return;
  state.hintIndex = (state.hintIndex + step + items.length) % items.length;
  items.forEach((item, index) => item.setAttribute("aria-selected", String(index === state.hintIndex)));
  ui.input.setAttribute("aria-activedescendant", items[state.hintIndex].id);
  items[state.hintIndex].scrollIntoView({ block: "nearest" });
}

// --- events --------------------------------------------------------------------------------

function bumpUnread(chatId) {
  state.unread.set(chatId, (state.unread.get(chatId) || 0) + 1);
}

async function applyEvents(events) {
  let chatDirty = false;
  let botsDirty = false;
  let usersDirty = false;
  let unreadChanged = false;
  for (const event of events) {
    const here = state.chatId !== null && event.chat_id === state.chatId;
    if (here) chatDirty = true;
    switch (event.type) {
      case "chat_action":
        if (here) setTyping(String(event.action || "typing"));
        break;
      case "bot_message": {
        if (here) clearTyping();
        else if (typeof event.chat_id === "number") {
          bumpUnread(event.chat_id);
          unreadChanged = true;
        }
        const from = event.message && event.message.from;
        if (from && !state.bots.some((b) => b.id === from.id)) botsDirty = true;
        break;
      }
      case "callback_answered":
        if (here) showCallbackAnswer(event);
        break;
      case "payment_succeeded":
      case "payment_failed":
      case "payment_refunded":
        if (event.chat_id === state.chatId || event.chat_id === state.userId) paymentEvent(event);
        break;
      case "commands_set":
      case "menu_button_set":
        botsDirty = true;
        break;
      default:
        break;
    }
    if (typeof event.chat_id === "number" && event.chat_id > 0 && !state.users.some((u) => u.id === event.chat_id)) usersDirty = true;
  }
  await Promise.all([botsDirty ? loadBots() : null, usersDirty ? loadUsers() : null]);
  if (botsDirty || usersDirty || unreadChanged) renderSidebar();
  if (botsDirty) renderChatChrome();
  if (chatDirty) await refreshChat();
}

async function connect() {
  setConnection(state.after ? "offline" : "connecting");
  // Start from the newest event: what came before is in the transcripts loaded next.
  const probe = await sandbox.events(Number.MAX_SAFE_INTEGER, 0);
  state.after = probe.last_seq;
  await loadAll();
  state.connected = true;
  setConnection("online");
}

async function eventsLoop() {
  let delay = 0;
  for (;;) {
    try {
      if (!state.connected) await connect();
      const controller = new AbortController();
      const timer = setTimeout(() => controller.abort(), (POLL_SECONDS + 15) * 1000);
      let data;
      try {
        data = await sandbox.events(state.after, POLL_SECONDS, { signal: controller.signal });
      } finally {
        clearTimeout(timer);
      }
      delay = 0;
      if (data.last_seq < state.after) {
        // Fewer events than we have seen: the sandbox restarted with a fresh world.
        state.connected = false;
        continue;
      }
      const events = Array.isArray(data.events) ? data.events : [];
      if (events.length) {
        state.after = Math.max(state.after, ...events.map((e) => Number(e.seq) || 0));
        await applyEvents(events);
      }
    } catch (error) {
      state.connected = false;
      setConnection("offline");
      delay = Math.min(delay ? delay * 2 : 500, 8000);
      console.warn("sandbox events:", error);
      await sleep(delay * (0.75 + Math.random() * 0.5));
    }
  }
}

// A bot that has not connected yet makes no event when it does: ask until it shows up.
setInterval(async () => {
  if (!state.connected || state.bots.length) return;
  try {
    await loadBots();
    if (state.bots.length) {
      renderSidebar();
      renderChatChrome();
    }
  } catch {
    // The events loop reports connection problems.
  }
}, 2000);

// --- wiring --------------------------------------------------------------------------------

function autosize() {
  ui.input.style.height = "auto";
  ui.input.style.height = `${Math.min(ui.input.scrollHeight, 200)}px`;
}

// --- t.me links: followed here, as the Telegram app follows them -----------------------------

// What a t.me link asks for: an invoice (t.me/$slug or t.me/invoice/slug), a bot started with
// a payload (t.me/<bot>?start=...), a bot's chat (t.me/<bot>) or the share sheet
// (t.me/share/url?url=...&text=...). A path alone ("/bot?start=x", from a Mini App's
// openTelegramLink) is one on t.me. null: not a t.me link this page can follow.
function telegramLink(href) {
  let url;
  try {
    url = new URL(href, window.location.origin);
  } catch {
    return null;
  }
  const onTelegram = ["t.me", "telegram.me"].includes(url.hostname) && ["https:", "http:"].includes(url.protocol);
  if (!href.startsWith("/") && !onTelegram) return null;
  const path = decodeURIComponent(url.pathname.replace(/^\//, ""));
  if (path.startsWith("$")) return { kind: "invoice", slug: path.slice(1) };
  if (path.startsWith("invoice/")) return { kind: "invoice", slug: path.slice("invoice/".length) };
  if (path === "share/url" || path === "share") {
    return { kind: "share", url: url.searchParams.get("url") || "", text: url.searchParams.get("text") || "" };
  }
  const username = path.split("/")[0];
  if (!/^[A-Za-z0-9_]{4,32}$/.test(username)) return null;
  return { kind: "bot", username, start: url.searchParams.get("start") };
}

// True when the link is Telegram's and is being followed here (synchronously decided, so a
// caller can still open any other link in a new tab within the user's gesture).
function followTelegramLink(href) {
  const link = telegramLink(href);
  if (!link) return false;
  follow(link).catch((error) => toast(`Link not followed: ${error.message}`, "error"));
  return true;
}

async function follow(link) {
  if (link.kind === "invoice") {
    await payInvoiceLink(link.slug);
    return;
  }
  if (link.kind === "share") {
    const text = [link.text, link.url].filter(Boolean).join("\n");
    const choice = await ask("Share", text || "(nothing to share)", [
      { id: "close", text: "Close", secondary: true, testid: "share-close" },
      { id: "copy", text: "Copy", testid: "share-copy" },
    ]);
    if (choice === "copy") await copyText(text);
    return;
  }
  const bot = state.bots.find((b) => (b.username || "").toLowerCase() === link.username.toLowerCase());
  if (!bot) {
    toast(`@${link.username} is not a bot of this sandbox.`, "error");
    return;
  }
  if (state.userId === null) {
    toast("Pick a user first.", "error");
    return;
  }
  if (miniApp.isOpen) miniApp.close();
  state.botId = bot.id;
  save(STORE.bot, state.botId);
  renderBotInfo();
  await openChat(state.userId);
  // As in Telegram: the Start button sends /start with the link's payload.
  if (link.start !== null) await sendText(link.start ? `/start ${link.start}` : "/start");
}

document.addEventListener("click", (event) => {
  const anchor = event.target instanceof Element ? event.target.closest("a[href]") : null;
  if (anchor && telegramLink(anchor.href)) {
    event.preventDefault();
    followTelegramLink(anchor.href);
  }
});

const miniApp = new MiniAppPanel({
  launchContext: () => ({ userId: state.userId, botId: currentBot() ? currentBot().id : null }),
  toast,
  layout: ui.layout,
  payInvoiceLink,
  followTelegramLink,
});

ui.composer.addEventListener("submit", (event) => {
  event.preventDefault();
  submitComposer();
});

ui.input.addEventListener("keydown", (event) => {
  if (event.isComposing) return;
  const hintsOpen = !ui.hints.hidden;
  if (hintsOpen && (event.key === "ArrowDown" || event.key === "ArrowUp")) {
    event.preventDefault();
    moveHint(event.key === "ArrowDown" ? 1 : -1);
  } else if (hintsOpen && event.key === "Tab") {
    event.preventDefault();
    const items = ui.hints.querySelectorAll('[data-testid="command-hint"]');
    const item = items[Math.max(state.hintIndex, 0)];
    if (item) {
      ui.input.value = `/${item.dataset.command} `;
      hideHints();
    }
  } else if (hintsOpen && event.key === "Escape") {
    event.preventDefault();
    hideHints();
  } else if (event.key === "Enter" && !event.shiftKey) {
    event.preventDefault();
    const items = ui.hints.querySelectorAll('[data-testid="command-hint"]');
    if (hintsOpen && state.hintIndex >= 0 && items[state.hintIndex]) pickHint(items[state.hintIndex].dataset.command);
    else submitComposer();
  }
});

ui.input.addEventListener("input", () => {
  autosize();
  updateHints();
  updateInline();
});

ui.menuButton.addEventListener("click", () => {
  if (ui.menuButton.dataset.kind === "web_app") {
    miniApp.open(ui.menuButton.dataset.url, ui.menuButton.textContent);
  } else if (!ui.hints.hidden) {
    hideHints();
  } else {
    updateHints(true);
  }
});

ui.keyboardToggle.addEventListener("click", () => {
  state.keyboardHidden = !state.keyboardHidden;
  if (state.transcript) renderReplyKeyboard(state.transcript.messages || []);
});

ui.fileInput.addEventListener("change", () => {
  const file = ui.fileInput.files && ui.fileInput.files[0];
  ui.fileInput.value = "";
  if (file) sendFile(file);
});

ui.userForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = new FormData(ui.userForm);
  const firstName = String(form.get("first_name") || "").trim();
  const nameInput = $("user-first-name");
  if (!firstName) {
    nameInput.setAttribute("aria-invalid", "true");
    toast("A user needs a first name.", "error");
    nameInput.focus();
    return;
  }
  nameInput.removeAttribute("aria-invalid");
  const body = { first_name: firstName, is_premium: form.get("is_premium") === "on" };
  const lastName = String(form.get("last_name") || "").trim();
  const username = String(form.get("username") || "").trim().replace(/^@/, "");
  const language = String(form.get("language_code") || "");
  if (lastName) body.last_name = lastName;
  if (username) body.username = username;
  if (language) body.language_code = language;
  try {
    const { user } = await sandbox.createUser(body);
    state.users.push(user);
    ui.userForm.reset();
    ui.userFormBox.open = false;
    pickUser(user.id);
  } catch (error) {
    toast(`User not created: ${error.message}`, "error");
  }
});

ui.groupForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  const titleInput = $("group-title");
  const title = titleInput.value.trim();
  const members = [...ui.groupMembers.querySelectorAll("input:checked")].map((i) => Number(i.value));
  if (!title || !members.length) {
    toast("A group needs a title and at least one member.", "error");
    return;
  }
  try {
    const { chat } = await sandbox.createGroup(title, members);
    state.groups.push({ id: chat.id, title: chat.title || title, member_ids: members });
    save(STORE.groups, state.groups);
    ui.groupForm.reset();
    ui.groupFormBox.open = false;
    if (state.userId === null || !members.includes(state.userId)) {
      state.userId = members[0];
      save(STORE.user, state.userId);
    }
    openChat(chat.id);
  } catch (error) {
    toast(`Group not created: ${error.message}`, "error");
  }
});

ui.botSelect.addEventListener("change", () => {
  state.botId = Number(ui.botSelect.value);
  save(STORE.bot, state.botId);
  renderBotInfo();
  renderChatChrome();
});

ui.refresh.addEventListener("click", async () => {
  try {
    await loadAll();
  } catch (error) {
    toast(`Refresh failed: ${error.message}`, "error");
  }
});

window.addEventListener("focus", async () => {
  if (!state.connected) return;
  try {
    await Promise.all([loadUsers(), loadBots()]);
    renderSidebar();
    renderChatChrome();
  } catch {
    // The events loop reports connection problems.
  }
});

eventsLoop();

// What a Telegram client decides on its own: which commands and menu button apply to a chat,
// which reply keyboard is showing, which URLs may be opened. Pure functions, no DOM.

function parseScope(raw) {
  if (raw && typeof raw === "object") return raw;
  try {
    const scope = JSON.parse(String(raw));
    return scope && typeof scope === "object" ? scope : null;
  } catch {
    return null;
  }
}

function sameId(a, b) {
  return a !== undefined && a !== null && String(a) === String(b);
}

// Telegram's order: the narrowest scope first, and within a scope the user's language before
// the language-less list. An empty list counts as not set.
export function commandsFor(bot, { chatId, chatType, userId, language }) {
  if (!bot || !Array.isArray(bot.commands)) return [];
  const entries = bot.commands
    .map((entry) => ({ ...entry, scopeObject: parseScope(entry.scope) }))
    .filter((entry) => entry.scopeObject && Array.isArray(entry.commands) && entry.commands.length);
  const lang = (language || "").slice(0, 2).toLowerCase();
  const languages = lang ? [lang, ""] : [""];
  const scopes =
    chatType === "private"
      ? [
          (s) => s.type === "chat" && sameId(s.chat_id, chatId),
          (s) => s.type === "all_private_chats",
          (s) => s.type === "default",
        ]
      : [
          (s) => s.type === "chat_member" && sameId(s.chat_id, chatId) && sameId(s.user_id, userId),
          (s) => s.type === "chat" && sameId(s.chat_id, chatId),
          (s) => s.type === "all_group_chats",
          (s) => s.type === "default",
        ];
  for (const matches of scopes) {
    for (const code of languages) {
      const found = entries.find((e) => matches(e.scopeObject) && (e.language_code || "") === code);
      if (found) return found.commands;
    }
  }
  return [];
}

// Menu buttons exist in private chats only; elsewhere the client shows the commands menu.
export function menuButtonFor(bot, chatId, chatType) {
  if (!bot) return null;
  if (chatType !== "private") return { type: "commands" };
  const perChat = bot.menu_buttons ? bot.menu_buttons[String(chatId)] : null;
  const button = perChat || bot.default_menu_button || { type: "commands" };
  return button.type === "default" ? bot.default_menu_button || { type: "commands" } : button;
}

// The last reply markup a bot sent that is not an inline keyboard decides what shows above the
// composer: a keyboard, a forced reply, or nothing.
export function replyKeyboardFrom(messages) {
  let current = null;
  for (const message of messages) {
    if (message.is_bot_message && message.reply_keyboard) {
      current = { markup: message.reply_keyboard, messageId: message.message_id };
    }
  }
  if (!current) return null;
  const { markup } = current;
  if (Array.isArray(markup.keyboard) && markup.keyboard.length) return { kind: "keyboard", ...current };
  if (markup.force_reply) return { kind: "force_reply", ...current };
  return null;
}

export function safeUrl(value, protocols = ["http:", "https:"]) {
  if (typeof value !== "string" || !value) return null;
  try {
    const url = new URL(value, window.location.href);
    return protocols.includes(url.protocol) ? url.href : null;
  } catch {
    return null;
  }
}

export function displayName(person) {
  if (!person) return "Unknown";
  const name = [person.first_name, person.last_name].filter(Boolean).join(" ");
  return name || (person.username ? `@${person.username}` : `#${person.id}`);
}

export function formatSize(bytes) {
  const size = Number(bytes) || 0;
  if (size < 1024) return `${size} B`;
  if (size < 1024 * 1024) return `${(size / 1024).toFixed(1)} KB`;
  return `${(size / 1024 / 1024).toFixed(1)} MB`;
}

export function formatTime(unixSeconds) {
  const date = new Date(Number(unixSeconds) * 1000);
  if (Number.isNaN(date.getTime())) return "";
  return date.toLocaleTimeString("en-GB", { hour: "2-digit", minute: "2-digit" });
}

export const CHAT_ACTION_TEXT = {
  typing: "typing",
  upload_photo: "sending a photo",
  record_video: "recording a video",
  upload_video: "sending a video",
  record_voice: "recording a voice message",
  upload_voice: "sending a voice message",
  upload_document: "sending a file",
  choose_sticker: "choosing a sticker",
  find_location: "finding a location",
  record_video_note: "recording a video message",
  upload_video_note: "sending a video message",
};

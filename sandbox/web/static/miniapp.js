// The Mini App panel: launch data signed by the sandbox, the app in a frame, and the part of
// Telegram's web-client bridge (postMessage events) a developer needs to see an app work.

import { sandbox } from "./api.js";
import { ask } from "./dialog.js";
import { el } from "./render.js";
import { safeUrl } from "./telegram.js";

const THEME = {
  bg_color: "#ffffff",
  text_color: "#000000",
  hint_color: "#707579",
  link_color: "#3390ec",
  button_color: "#3390ec",
  button_text_color: "#ffffff",
  secondary_bg_color: "#f4f4f5",
  header_bg_color: "#ffffff",
  accent_text_color: "#3390ec",
  section_bg_color: "#ffffff",
  section_header_text_color: "#3390ec",
  subtitle_text_color: "#707579",
  destructive_text_color: "#e53935",
};
const QUIET_EVENTS = new Set(["web_app_trigger_haptic_feedback", "iframe_ready", "web_app_set_header_color", "web_app_set_background_color", "web_app_set_bottom_bar_color"]);

// Telegram clients pass the theme in the fragment next to the signed data.
function withTheme(url) {
  const parsed = new URL(url);
  const fragment = parsed.hash.replace(/^#/, "");
  const theme = `tgWebAppThemeParams=${encodeURIComponent(JSON.stringify(THEME))}`;
  parsed.hash = fragment ? `${fragment}&${theme}` : theme;
  return parsed.href;
}

export class MiniAppPanel {
  constructor({ launchContext, toast, layout, payInvoiceLink, followTelegramLink }) {
    this.launchContext = launchContext;
    this.payInvoiceLink = payInvoiceLink;
    this.followTelegramLink = followTelegramLink;
    this.pendingInvoice = null;
    this.toast = toast;
    this.layout = layout;
    this.url = null;
    this.panel = document.getElementById("miniapp-panel");
    this.frame = document.getElementById("miniapp-frame");
    this.title = document.getElementById("miniapp-title");
    this.startParam = document.getElementById("miniapp-start-param");
    this.openTab = document.getElementById("miniapp-open-tab");
    this.urlBox = document.getElementById("miniapp-url");
    this.mainButton = document.getElementById("miniapp-main-button");
    this.backButton = document.getElementById("miniapp-back");
    this.log = document.getElementById("miniapp-log");
    document.getElementById("miniapp-close").addEventListener("click", () => this.close());
    document.getElementById("miniapp-relaunch").addEventListener("click", () => this.launch());
    this.startParam.addEventListener("keydown", (event) => {
      if (event.key === "Enter") {
        event.preventDefault();
        this.launch();
      }
    });
    this.mainButton.addEventListener("click", () => this.post("main_button_pressed"));
    this.backButton.addEventListener("click", () => this.post("back_button_pressed"));
    window.addEventListener("message", (event) => this.onMessage(event));
  }

  get isOpen() {
    return !this.panel.hidden;
  }

  async open(url, title) {
    const safe = safeUrl(url);
    if (!safe) {
      this.toast("The Mini App URL is not an http(s) URL.", "error");
      return;
    }
    this.url = safe;
    this.title.textContent = title || "Mini App";
    this.panel.hidden = false;
    this.layout.classList.add("with-miniapp");
    await this.launch();
  }

  async launch() {
    if (!this.url) return;
    const context = this.launchContext();
    if (!context.userId) {
      this.toast("Pick a user first: the Mini App is launched as that user.", "error");
      return;
    }
    const body = { user_id: context.userId, url: this.url };
    const startParam = this.startParam.value.trim();
    if (startParam) body.start_param = startParam;
    if (context.botId) body.bot_id = context.botId;
    this.resetBridge();
    this.urlBox.textContent = this.url;
    let launchUrl;
    try {
      const data = await sandbox.initData(body);
      launchUrl = safeUrl(withTheme(data.url || this.url));
    } catch (error) {
      this.toast(`Could not sign the launch data: ${error.message}`, "error");
      return;
    }
    if (!launchUrl) {
      this.toast("The sandbox returned a launch URL that is not http(s).", "error");
      return;
    }
    this.openTab.href = launchUrl;
    this.frame.src = launchUrl;
    this.addLog(`launched as user ${context.userId}${startParam ? ` with start_param ${startParam}` : ""}`);
  }

  close() {
    this.panel.hidden = true;
    this.layout.classList.remove("with-miniapp");
    this.frame.src = "about:blank";
    this.openTab.removeAttribute("href");
    this.resetBridge();
  }

  resetBridge() {
    this.mainButton.hidden = true;
    this.backButton.hidden = true;
  }

  addLog(text) {
    const time = new Date().toLocaleTimeString("en-GB");
    this.log.append(el("li", {}, el("time", { text: time }), " ", text));
    while (this.log.children.length > 100) this.log.firstElementChild.remove();
  }

  post(eventType, eventData = {}) {
    if (!this.frame.contentWindow) return;
    this.frame.contentWindow.postMessage(JSON.stringify({ eventType, eventData }), "*");
  }

  onMessage(event) {
    if (!this.frame.contentWindow || event.source !== this.frame.contentWindow) return;
    let message = event.data;
    if (typeof message === "string") {
      try {
        message = JSON.parse(message);
      } catch {
        return;
      }
    }
    if (!message || typeof message.eventType !== "string") return;
    let data = message.eventData;
    if (typeof data === "string") {
      try {
        data = JSON.parse(data);
      } catch {
        data = {};
      }
    }
    this.handle(message.eventType, data && typeof data === "object" ? data : {});
  }

  handle(type, data) {
    if (!QUIET_EVENTS.has(type)) this.addLog(type);
    switch (type) {
      case "web_app_request_theme":
        this.post("theme_changed", { theme_params: THEME });
        break;
      case "web_app_request_viewport":
      case "web_app_expand": {
        const height = this.frame.clientHeight;
        this.post("viewport_changed", { height, is_state_stable: true, is_expanded: true });
        break;
      }
      case "web_app_close":
        this.close();
        break;
      case "web_app_open_link": {
        const url = safeUrl(data.url);
        if (!url) break;
        // A t.me link (an invoice, a bot's start link) is Telegram's own: followed here.
        if (!this.followTelegramLink(url)) window.open(url, "_blank", "noopener,noreferrer");
        break;
      }
      case "web_app_open_tg_link": {
        const path = String(data.path_full || "");
        if (path.startsWith("/")) this.followTelegramLink(path);
        break;
      }
      case "web_app_setup_main_button":
        this.mainButton.hidden = !data.is_visible;
        this.mainButton.disabled = data.is_active === false;
        this.mainButton.textContent = String(data.text || "Continue");
        break;
      case "web_app_setup_back_button":
        this.backButton.hidden = !data.is_visible;
        break;
      case "web_app_data_send":
        this.toast("The Mini App sent data (sendData); the sandbox does not deliver web_app_data messages.", "error");
        break;
      case "web_app_open_popup":
        this.popup(data);
        break;
      case "web_app_open_invoice":
        this.openInvoice(String(data.slug || ""));
        break;
      default:
        break;
    }
  }

  async popup(data) {
    const buttons = Array.isArray(data.buttons) && data.buttons.length ? data.buttons : [{ id: "", type: "close" }];
    const labels = { ok: "OK", close: "Close", cancel: "Cancel" };
    const chosen = await ask(
      String(data.title || "Mini App"),
      String(data.message || ""),
      buttons.map((button) => ({
        id: String(button.id || ""),
        text: String(button.text || labels[button.type] || "OK"),
        secondary: button.type === "cancel",
      })),
    );
    this.post("popup_closed", chosen === null ? {} : { button_id: chosen });
  }

  async openInvoice(slug) {
    if (!slug) return;
    const status = await this.payInvoiceLink(slug);
    if (status === "pending") this.pendingInvoice = { slug, userId: this.launchContext().userId };
    else this.post("invoice_closed", { slug, status });
  }

  // A payment in the user's private chat settles the invoice the Mini App opened.
  invoiceSettled(chatId, status) {
    const pending = this.pendingInvoice;
    if (!pending || pending.userId !== chatId) return;
    this.pendingInvoice = null;
    this.addLog(`invoice ${pending.slug} ${status}`);
    this.post("invoice_closed", { slug: pending.slug, status });
  }
}

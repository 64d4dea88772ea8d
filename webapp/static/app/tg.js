// The Telegram Mini App bridge. When Telegram's own telegram-web-app.js is on the page it is
// used; otherwise the page speaks the client protocol itself: launch data from the URL fragment,
// events to the client through TelegramWebviewProxy (mobile and desktop apps) or postMessage to
// the parent frame (web clients), events from it through Telegram.WebView.receiveEvent or
// message events. Opened in a normal browser, nothing here does anything.

const STORE = "netroom.launch";
const handlers = new Map();

function sdk() {
  const app = window.Telegram && window.Telegram.WebApp;
  return app && typeof app.initData === "string" && app.initData ? app : null;
}

function readLaunch() {
  const params = new URLSearchParams(window.location.hash.slice(1));
  const query = new URLSearchParams(window.location.search);
  const fresh = params.get("tgWebAppData");
  if (fresh) {
    let theme = {};
    try {
      theme = JSON.parse(params.get("tgWebAppThemeParams") || "{}");
    } catch (_) {
      theme = {};
    }
    const launch = {
      initData: fresh,
      theme,
      platform: params.get("tgWebAppPlatform") || "unknown",
      startParam: params.get("tgWebAppStartParam") || query.get("tgWebAppStartParam") || "",
    };
    try {
      sessionStorage.setItem(STORE, JSON.stringify(launch));
    } catch (_) {
      /* storage off: this load still works */
    }
    return launch;
  }
  const app = sdk();
  if (app) {
    return { initData: app.initData, theme: app.themeParams || {}, platform: app.platform || "unknown", startParam: (app.initDataUnsafe || {}).start_param || "" };
  }
  try {
    return JSON.parse(sessionStorage.getItem(STORE) || "null");
  } catch (_) {
    return null;
  }
}

const launch = readLaunch();

// Whether a Telegram client is there to show buttons (not a page opened on its own).
function hostPresent() {
  if (sdk()) return true;
  if (window.TelegramWebviewProxy && typeof window.TelegramWebviewProxy.postEvent === "function") return true;
  return window.parent !== window;
}

function postEvent(eventType, eventData = {}) {
  if (!launch) return;
  if (window.TelegramWebviewProxy && typeof window.TelegramWebviewProxy.postEvent === "function") {
    window.TelegramWebviewProxy.postEvent(eventType, JSON.stringify(eventData));
  } else if (window.external && typeof window.external.notify === "function") {
    window.external.notify(JSON.stringify({ eventType, eventData }));
  } else if (window.parent !== window) {
    window.parent.postMessage(JSON.stringify({ eventType, eventData }), "*");
  }
}

function receive(eventType, eventData) {
  for (const handler of handlers.get(eventType) || []) {
    try {
      handler(eventData || {});
    } catch (error) {
      console.warn(error);
    }
  }
}

function on(eventType, handler) {
  if (!handlers.has(eventType)) handlers.set(eventType, new Set());
  handlers.get(eventType).add(handler);
}

if (launch && !sdk()) {
  window.Telegram = window.Telegram || {};
  const previous = window.Telegram.WebView && window.Telegram.WebView.receiveEvent;
  window.Telegram.WebView = {
    ...(window.Telegram.WebView || {}),
    receiveEvent(eventType, eventData) {
      if (previous) previous(eventType, eventData);
      receive(eventType, eventData);
    },
  };
  window.addEventListener("message", (event) => {
    if (event.source !== window.parent) return;
    let message = event.data;
    try {
      if (typeof message === "string") message = JSON.parse(message);
    } catch (_) {
      return;
    }
    if (message && typeof message.eventType === "string") receive(message.eventType, message.eventData);
  });
}

let backHandler = null;
let mainHandler = null;
let mainParams = { text: "", is_visible: false, is_active: true, is_progress_visible: false };

function backPressed() {
  if (backHandler) backHandler();
}

function mainPressed() {
  if (mainHandler && mainParams.is_active) mainHandler();
}

on("back_button_pressed", backPressed);
on("main_button_pressed", mainPressed);

export const tg = {
  launch,
  inTelegram: Boolean(launch && launch.initData),
  get hasHost() {
    return Boolean(launch && launch.initData) && hostPresent();
  },
  on,

  ready() {
    const app = sdk();
    if (app) {
      app.ready();
      app.expand();
      app.BackButton.onClick(backPressed);
      app.MainButton.onClick(mainPressed);
      app.onEvent("themeChanged", () => receive("theme_changed", { theme_params: app.themeParams }));
      app.onEvent("invoiceClosed", (event) => receive("invoice_closed", event));
      return;
    }
    postEvent("web_app_ready");
    postEvent("web_app_expand");
    postEvent("web_app_request_theme");
  },

  setBackButton(visible, handler = null) {
    backHandler = visible ? handler : null;
    const app = sdk();
    if (app) {
      if (visible) app.BackButton.show();
      else app.BackButton.hide();
    } else {
      postEvent("web_app_setup_back_button", { is_visible: Boolean(visible) });
    }
  },

  // Telegram's big button at the bottom; hidden again with { visible: false }.
  setMainButton({ text = mainParams.text, visible = true, active = true, progress = false, onClick = mainHandler } = {}) {
    mainHandler = visible ? onClick : null;
    mainParams = { text, is_visible: visible, is_active: active, is_progress_visible: progress };
    const app = sdk();
    if (app) {
      app.MainButton.setParams({ text, is_visible: visible, is_active: active });
      if (progress) app.MainButton.showProgress();
      else app.MainButton.hideProgress();
      return;
    }
    const theme = (launch && launch.theme) || {};
    const params = { ...mainParams };
    if (theme.button_color) params.color = theme.button_color;
    if (theme.button_text_color) params.text_color = theme.button_text_color;
    postEvent("web_app_setup_main_button", params);
  },

  // Pays a Stars invoice link inside Telegram; the callback gets paid, cancelled, failed or pending.
  openInvoice(url, callback) {
    const app = sdk();
    if (app) {
      app.openInvoice(url, callback);
      return;
    }
    const match = /^https:\/\/t\.me\/(?:\$|invoice\/)([A-Za-z0-9_-]+)$/.exec(url);
    if (!match) throw new Error("not an invoice link");
    const slug = match[1];
    const once = (event) => {
      if (event.slug !== slug) return;
      handlers.get("invoice_closed").delete(once);
      callback(event.status);
    };
    on("invoice_closed", once);
    postEvent("web_app_open_invoice", { slug });
  },

  openLink(url) {
    const app = sdk();
    if (app) app.openLink(url);
    else if (this.hasHost) postEvent("web_app_open_link", { url });
    else window.open(url, "_blank", "noopener");
  },

  openTelegramLink(url) {
    const app = sdk();
    if (app) {
      app.openTelegramLink(url);
      return;
    }
    const parsed = new URL(url);
    if (this.hasHost) postEvent("web_app_open_tg_link", { path_full: parsed.pathname + parsed.search });
    else window.open(url, "_blank", "noopener");
  },
};

// NetRoom's app shell, for the Telegram Mini App and a normal browser alike: signing in, the
// theme, the routes (#/chat, #/presets, …) and the parts of the frame every view shares.

import { api, ApiError, forget, hasBrowserSession, onSignedOut, refresh, signedIn, useTokens } from "./app/api.js";
import { confirmEmail, hideSignIn, showSignIn, signInWithLink, startOAuth } from "./app/signin.js";
import { tg } from "./app/tg.js";
import { browserTimeZone, lang, money, setTimeZone, settings, t, toast } from "./app/ui.js";
import * as balanceView from "./app/views/balance.js";
import * as chatView from "./app/views/chat.js";
import * as galleryView from "./app/views/gallery.js";
import * as moreView from "./app/views/more.js";
import { copyShared, mountEditor, mountList } from "./app/views/presets.js";
import * as privacyView from "./app/views/privacy.js";
import * as referralsView from "./app/views/referrals.js";
import * as securityView from "./app/views/security.js";
import * as settingsView from "./app/views/settings.js";

const SIGNED_FOR = "netroom.signedFor";
const AUTH_ERRORS = new Set(["oauth_rejected", "oauth_unavailable", "oauth_state_invalid", "identity_taken", "consent_required"]);
const PENDING_COPY = "netroom.copyPreset";
const THEME = "netroom.theme";
const LANG_RELOAD = "netroom.langReload";

const boot = document.getElementById("boot");
const bootStatus = document.getElementById("boot-status");
const shell = document.getElementById("shell");
const view = document.getElementById("view");
const title = document.getElementById("appbar-title");
const actions = document.getElementById("appbar-actions");
const backButton = document.getElementById("appbar-back");

// name → [mount, parent route or null for the tab bar's own pages, nav item to highlight]
const ROUTES = {
  chat: [chatView.mount, null, "chat"],
  chats: [(root, params, app) => chatView.mount(root, { ...params, list: true }, app), "chat", "chat"],
  "chat/:id": [chatView.mount, null, "chat"],
  presets: [mountList, null, "presets"],
  "presets/new": [mountEditor, "presets", "presets"],
  "presets/:id": [mountEditor, "presets", "presets"],
  gallery: [galleryView.mount, null, "gallery"],
  balance: [balanceView.mount, null, "balance"],
  more: [moreView.mount, null, "more"],
  referrals: [referralsView.mount, "more", "referrals"],
  settings: [settingsView.mount, "more", "settings"],
  security: [securityView.mount, "more", "security"],
  privacy: [privacyView.mount, "more", "privacy"],
};

// --- theme ------------------------------------------------------------------------------------

const TG_COLORS = {
  bg: ["secondary_bg_color", "bg_color"],
  surface: ["section_bg_color", "bg_color"],
  fg: ["text_color"],
  muted: ["hint_color", "subtitle_text_color"],
  accent: ["button_color", "accent_text_color"],
  "accent-fg": ["button_text_color"],
  link: ["link_color"],
  danger: ["destructive_text_color"],
};
let telegramTheme = (tg.launch && tg.launch.theme) || {};
let themeChoice = readTheme();

function readTheme() {
  try {
    return localStorage.getItem(THEME) || "auto";
  } catch (_) {
    return "auto";
  }
}

function isDark(hex) {
  const value = hex.replace("#", "");
  const full = value.length === 3 ? value.split("").map((c) => c + c).join("") : value.slice(0, 6);
  const [r, g, b] = [0, 2, 4].map((i) => parseInt(full.slice(i, i + 2), 16) / 255);
  return 0.2126 * r + 0.7152 * g + 0.0722 * b < 0.5;
}

function applyTheme(choice) {
  themeChoice = ["auto", "light", "dark"].includes(choice) ? choice : "auto";
  try {
    localStorage.setItem(THEME, themeChoice);
  } catch (_) {
    /* not kept: the account's setting applies on the next sign-in */
  }
  const root = document.documentElement;
  for (const name of Object.keys(TG_COLORS)) root.style.removeProperty(`--${name}`);
  const colours = tg.inTelegram && themeChoice === "auto" ? telegramTheme : null;
  if (colours && /^#[0-9a-f]{3,8}$/i.test(colours.bg_color || "")) {
    root.dataset.theme = isDark(colours.bg_color) ? "dark" : "light";
    root.dataset.telegram = "true";
    for (const [name, keys] of Object.entries(TG_COLORS)) {
      const value = keys.map((k) => colours[k]).find((v) => /^#[0-9a-f]{3,8}$/i.test(v || ""));
      if (value) root.style.setProperty(`--${name}`, value);
    }
  } else {
    root.dataset.theme = themeChoice;
    delete root.dataset.telegram;
  }
}

tg.on("theme_changed", (event) => {
  if (event && event.theme_params) telegramTheme = event.theme_params;
  applyTheme(themeChoice);
});

// --- routes -----------------------------------------------------------------------------------

let current = { name: null, unmount: null, path: null };
const visited = [];

function parse(hash) {
  const path = hash.replace(/^#\/?/, "").replace(/\/$/, "") || "chat";
  const parts = path.split("/");
  if (ROUTES[path]) return { name: path, params: {}, path };
  if (parts.length === 2 && /^\d+$/.test(parts[1]) && ROUTES[`${parts[0]}/:id`]) return { name: `${parts[0]}/:id`, params: { id: parts[1] }, path };
  return { name: "chat", params: {}, path: "chat" };
}

function show(route) {
  if (current.unmount) {
    try {
      current.unmount();
    } catch (error) {
      console.warn(error);
    }
  }
  const [mount, parent, nav] = ROUTES[route.name];
  current = { name: route.name, path: route.path, unmount: null };
  document.body.dataset.route = route.name.split("/")[0];
  document.body.classList.toggle("is-sub", Boolean(parent));
  document.body.dataset.parent = parent || "";
  for (const link of document.querySelectorAll("[data-nav]")) {
    const active = link.dataset.nav === nav || (link.closest(".tabbar") && ROUTES[route.name][1] === "more" && link.dataset.nav === "more");
    link.classList.toggle("active", active);
    if (active) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  backButton.hidden = !parent || tg.hasHost;
  tg.setBackButton(Boolean(parent), () => app.back());
  view.scrollTop = 0;
  window.scrollTo(0, 0);
  view.replaceChildren();
  current.unmount = mount(view, route.params, app) || null;
}

function onHashChange() {
  if (/^#(confirm|signin|signed_in|linked|copy-preset)=/.test(window.location.hash)) {
    // A link into the app (from a mail, say) opened in this tab: start over with it.
    window.location.reload();
    return;
  }
  if (shell.hidden) return;
  const route = parse(window.location.hash);
  if (visited.length > 1 && visited[visited.length - 2] === route.path) visited.pop();
  else visited.push(route.path);
  show(route);
}

const app = {
  tg,
  me: null,
  settings: null,

  go(path, { replace = false } = {}) {
    if (replace) {
      window.history.replaceState(null, "", `#/${path}`);
      if (visited.length) visited[visited.length - 1] = path;
      show(parse(`#/${path}`));
    } else if (window.location.hash === `#/${path}`) {
      show(parse(`#/${path}`));
    } else {
      window.location.hash = `#/${path}`;
    }
  },

  // The address changes, the page stays (a new conversation got its id).
  replaceRoute(path) {
    window.history.replaceState(null, "", `#/${path}`);
    if (visited.length) visited[visited.length - 1] = path;
    current.path = path;
  },

  back() {
    if (visited.length > 1) {
      window.history.back();
      return;
    }
    const parent = ROUTES[current.name] && ROUTES[current.name][1];
    app.go(parent || "chat", { replace: true });
  },

  setTitle(text) {
    title.textContent = text;
    document.title = `${text} · NetRoom`;
  },

  setActions(nodes) {
    actions.replaceChildren(...nodes);
  },

  setBalance(kopecks) {
    if (app.me) app.me.balance_kopecks = kopecks;
    document.getElementById("side-balance").textContent = money(kopecks);
  },

  applyTheme,

  // The page again in another language, on the view it shows (Settings, where the language
  // is chosen, unless another `hash` is given).
  reloadInLanguage(language, hash = window.location.hash || "#/settings") {
    window.location.replace(`/app?lang=${encodeURIComponent(language)}${hash}`);
  },

  async signOut(everywhere) {
    try {
      await api(everywhere ? "/api/auth/sign-out-everywhere" : "/api/auth/sign-out", { method: "POST" });
    } catch (error) {
      if (!(error instanceof ApiError) || error.status !== 401) {
        toast(error.message, "error");
        return;
      }
    }
    forget();
    signedOutScreen(t("signed_out"));
  },

  accountDeleted() {
    forget();
    signedOutScreen(t("account_deleted"));
  },

  // This web account was merged into the Telegram account (linking): it is gone, and signing in
  // again the same way finds the Telegram one.
  mergedAway(message) {
    forget();
    signedOutScreen(message);
  },
};

backButton.addEventListener("click", () => app.back());

// --- signing in -------------------------------------------------------------------------------

function bootMessage(text, isError = false) {
  boot.hidden = false;
  boot.classList.toggle("is-error", isError);
  bootStatus.textContent = text;
}

function signedOutScreen(message) {
  if (current.unmount) current.unmount();
  current = { name: null, unmount: null, path: null };
  shell.hidden = true;
  tg.setBackButton(false);
  tg.setMainButton({ visible: false });
  if (tg.inTelegram) {
    bootMessage(message);
    return;
  }
  boot.hidden = true;
  showSignIn(start, { message });
}

onSignedOut(() => {
  if (!shell.hidden) signedOutScreen(tg.inTelegram ? t("session_ended_telegram") : t("session_ended"));
});

function askConsent() {
  const card = document.getElementById("consent");
  const accept = document.getElementById("consent-accept");
  bootStatus.hidden = true;
  card.hidden = false;
  return new Promise((resolve) => {
    accept.addEventListener("click", async () => {
      accept.disabled = true;
      try {
        await signInTelegram(true);
        card.hidden = true;
        bootStatus.hidden = false;
        resolve();
      } catch (error) {
        accept.disabled = false;
        toast(error.message || t("failed"));
      }
    });
  });
}

// A newcomer who pressed "Continue with Google" (or Yandex) on the Sign in tab: nothing was
// created, since the policy was not accepted. Accepting here goes to the same provider again.
function askOAuthConsent(provider) {
  const card = document.getElementById("consent");
  const accept = document.getElementById("consent-accept");
  bootStatus.hidden = true;
  boot.hidden = false;
  card.hidden = false;
  accept.textContent = t(provider === "google" ? "accept_continue_google" : "accept_continue_yandex");
  accept.addEventListener("click", async () => {
    accept.disabled = true;
    try {
      await startOAuth(provider, true);
    } catch (error) {
      accept.disabled = false;
      toast(error.message || t("failed"), "error");
    }
  });
}

function initDataHash(initData) {
  return new URLSearchParams(initData).get("hash") || "";
}

async function signInTelegram(acceptPolicy = false) {
  const signature = initDataHash(tg.launch.initData);
  const signedFor = remembered(SIGNED_FOR) || "";
  // Launched again (as someone else, perhaps): the launch data decides who is signed in.
  if (signedIn() && signedFor === signature) return;
  forget();
  const headers = { Authorization: `tma ${tg.launch.initData}` };
  const init = { method: "POST", headers };
  if (acceptPolicy) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify({ accept_policy: true });
  }
  const response = await fetch("/api/auth/telegram", init);
  let body = {};
  try {
    body = await response.json();
  } catch (_) {
    body = {};
  }
  if (!response.ok) throw new ApiError(response.status, body.error, body.message);
  useTokens(body, { keepRefresh: true });
  remember(SIGNED_FOR, signature);
}

// Fragments the page is opened with: Telegram's launch data, the emailed confirmation link, the
// emailed sign-in link, the end of a Google or Yandex sign-in, a shared preset to copy. Each is taken and removed.
function takeFragment() {
  const raw = window.location.hash.replace(/^#/, "");
  const found = {};
  if (raw && !raw.startsWith("/")) {
    const params = new URLSearchParams(raw);
    for (const key of ["confirm", "signin", "signed_in", "linked", "auth_error", "provider", "copy-preset"]) if (params.get(key)) found[key] = params.get(key);
    // Back from linking Google or Yandex (done or not): to the page the link was started from.
    window.history.replaceState(null, "", `${window.location.pathname}#/${found.linked || found.auth_error ? "security" : "chat"}`);
  }
  const query = new URLSearchParams(window.location.search);
  if (query.has("lang")) {
    query.delete("lang");
    const rest = query.toString();
    window.history.replaceState(null, "", `${window.location.pathname}${rest ? `?${rest}` : ""}${window.location.hash}`);
  }
  if (found["copy-preset"]) remember(PENDING_COPY, found["copy-preset"]);
  return found;
}

// This tab's small memory; a page whose storage is off goes without it.
function remembered(key) {
  try {
    return sessionStorage.getItem(key);
  } catch (_) {
    return null;
  }
}

function remember(key, value) {
  try {
    if (value === null) sessionStorage.removeItem(key);
    else sessionStorage.setItem(key, value);
  } catch (_) {
    /* nothing kept */
  }
}

function pendingCopy() {
  const token = remembered(PENDING_COPY);
  remember(PENDING_COPY, null);
  return token;
}

// Times are shown in the account's zone. An account without one takes the browser's, once: the
// bot shows times in it too from then on.
function useAccountTimeZone() {
  if (app.settings.timezone) {
    setTimeZone(app.settings.timezone);
    return;
  }
  const zone = browserTimeZone();
  setTimeZone(zone);
  api("/api/settings/timezone", { method: "PUT", body: { timezone: zone } })
    .then((saved) => {
      app.settings = { ...app.settings, timezone: saved.timezone };
    })
    .catch(() => {
      /* a zone the server does not know: times still follow the browser here */
    });
}

async function start() {
  hideSignIn();
  bootMessage(t("signing_in"));
  let me;
  try {
    [me, app.settings] = await Promise.all([api("/api/me"), api("/api/settings")]);
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) {
      signedOutScreen(tg.inTelegram ? t("session_ended_telegram") : t("session_ended"));
      return;
    }
    bootMessage(error.message || t("failed"), true);
    return;
  }
  app.me = me;
  if (app.settings.language !== lang && !remembered(LANG_RELOAD)) {
    // The page speaks the account's language: load it again in that one, on the view asked
    // for (the chat when none was), as if it had opened in that language.
    remember(LANG_RELOAD, "1");
    app.reloadInLanguage(app.settings.language, window.location.hash);
    return;
  }
  remember(LANG_RELOAD, null);
  applyTheme(app.settings.theme);
  useAccountTimeZone();
  // Accounts made with email alone have no name: the address's first part stands in.
  const name = me.name || me.username || (me.email || "").split("@")[0];
  document.getElementById("hello").textContent = name ? t("hello", { name }) : t("hello_anon");
  document.getElementById("avatar").textContent = (name || "N").charAt(0).toUpperCase();
  app.setBalance(me.balance_kopecks);
  document.body.classList.toggle("in-telegram", tg.inTelegram);
  document.body.classList.toggle("tg-host", tg.hasHost);
  boot.hidden = true;
  shell.hidden = false;
  const token = pendingCopy();
  if (token) {
    await copyShared(token, app);
    window.history.replaceState(null, "", "#/presets");
  }
  if (!current.name) {
    visited.length = 0;
    onHashChange();
  }
}

async function main() {
  applyTheme(themeChoice);
  const fragment = takeFragment();
  window.addEventListener("hashchange", onHashChange);
  if (tg.inTelegram) {
    tg.ready();
    bootMessage(t("signing_in"));
    try {
      await signInTelegram();
    } catch (error) {
      if (error.code !== "consent_required") {
        bootMessage(error.message || t("failed"), true);
        return;
      }
      // A new user (or a new policy version): the policy is accepted here, then the account
      // is made exactly as the bot's /start makes it.
      await askConsent();
    }
    await start();
    return;
  }
  if (fragment.confirm) {
    const result = await confirmEmail(fragment.confirm);
    boot.hidden = true;
    showSignIn(start, result.ok ? { message: result.message } : { problem: result.message });
    return;
  }
  if (fragment.signin) {
    const result = await signInWithLink(fragment.signin);
    if (result.ok) {
      await start();
      return;
    }
    boot.hidden = true;
    showSignIn(start, { problem: result.message });
    return;
  }
  if (fragment.linked) toast(t("account_linked"));
  // Only the page's own texts are shown: the code in the address picks one.
  const authProblem = fragment.auth_error ? (AUTH_ERRORS.has(fragment.auth_error) ? t(`auth_error_${fragment.auth_error}`) : t("auth_error_oauth_rejected")) : "";
  if (!signedIn() && (fragment.signed_in || hasBrowserSession())) await refresh();
  if (signedIn()) {
    await start();
    if (authProblem) toast(authProblem, "error");
    return;
  }
  if (authProblem) window.history.replaceState(null, "", `${window.location.pathname}#/chat`);
  if (fragment.auth_error === "consent_required" && (settings.oauth || []).includes(fragment.provider)) {
    askOAuthConsent(fragment.provider);
    return;
  }
  boot.hidden = true;
  showSignIn(start, authProblem ? { problem: authProblem } : fragment["copy-preset"] ? { message: t("sign_in_to_copy") } : {});
}

main().catch((error) => {
  console.error(error);
  bootMessage(t("failed"), true);
});


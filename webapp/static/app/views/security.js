// Sign-in and security: how the account signs in (email, Google, Yandex, Telegram), linking a
// provider or Telegram (a one-time deep link the bot confirms), adding email and password to an
// account made in Telegram, changing the password, the sessions signed in now, and signing out
// everywhere.

import { api } from "../api.js";
import { button, card, confirmAction, el, errorBox, field, icon, sectionTitle, spinner, t, toast, when } from "../ui.js";

const PROVIDERS = ["google", "yandex"];
// The server's rules (core.security.passwords): 8 to 128 characters, not only spaces.
const MIN_LENGTH = 8;
const MAX_LENGTH = 128;

function providerMark(provider) {
  return el("span", { class: "row-icon method-icon" }, el("span", { class: `oauth-mark oauth-${provider}`, text: provider === "google" ? "G" : "Я" }));
}

function glyph(name) {
  return el("span", { class: "row-icon method-icon" }, icon(name));
}

// An address (hint) too long for a phone ends in an ellipsis; hovering shows it whole.
function methodRow({ id, mark, title, hint, linked, action = null, address = false }) {
  return el(
    "div",
    { class: "row method-row", testid: `method-${id}`, dataset: { linked: linked ? "true" : "false" } },
    mark,
    el("span", { class: "row-text" }, el("span", { class: "row-title", text: title }), hint ? el("span", { class: address ? "row-hint method-address" : "row-hint", title: address ? hint : null, text: hint }) : null),
    linked ? el("span", { class: "badge badge-success method-badge" }, icon("check"), t("method_linked")) : action,
  );
}

// "Chrome on Linux", "Telegram on Android", or whatever is known of the device.
function deviceName(session) {
  const name = session.platform === "telegram" ? t("method_telegram") : session.browser;
  if (name && session.os) return t("device_on_os", { browser: name, os: session.os });
  return name || session.os || t("web_browser");
}

export function mount(root, params, app) {
  let alive = true;
  app.setTitle(t("security"));
  app.setActions([]);
  root.replaceChildren(spinner());
  const sessionList = el("ul", { class: "session-list", testid: "sessions" }, spinner());

  async function link(provider, node) {
    node.disabled = true;
    try {
      // A script cannot follow the cross-site redirect: the server names the URL instead.
      const data = await api(`/api/auth/${provider}/start?link=1`, { headers: { Accept: "application/json" } });
      window.location.assign(data.authorize_url);
    } catch (error) {
      node.disabled = false;
      toast(error.message, "error");
    }
  }

  function methodsCard(methods) {
    const rows = [];
    if (methods.email) {
      rows.push(methodRow({ id: "email", mark: glyph("mail"), title: methods.password ? t("method_email") : t("method_email_only"), hint: methods.email, linked: true, address: true }));
    }
    for (const provider of PROVIDERS) {
      const title = t(`method_${provider}`);
      if (methods[provider]) {
        rows.push(methodRow({ id: provider, mark: providerMark(provider), title, hint: methods[`${provider}_email`], linked: true, address: true }));
      } else if ((methods.oauth_offered || []).includes(provider)) {
        // Inside Telegram the provider's page opens in the phone's browser, so the flow is
        // handed over to it by a one-time URL; the page looks again when the user comes back.
        const action = button(t("link_method"), { class: "btn-sm", testid: `link-${provider}` });
        action.addEventListener("click", () => (app.tg.inTelegram ? handOff(provider, action) : link(provider, action)));
        rows.push(methodRow({ id: provider, mark: providerMark(provider), title, hint: t("method_not_linked"), linked: false, action }));
      }
    }
    let telegramPanel = null;
    if (methods.telegram) {
      const username = app.me && app.me.username ? `@${app.me.username}` : null;
      rows.push(methodRow({ id: "telegram", mark: glyph("telegram"), title: t("method_telegram"), hint: username || t("method_telegram_hint"), linked: true }));
    } else if (!app.tg.inTelegram) {
      // A web account links Telegram through a one-time deep link that the bot confirms.
      telegramPanel = el("div", { class: "link-telegram", testid: "link-telegram-panel", hidden: true });
      const action = button(t("link_telegram"), { class: "btn-sm", testid: "link-telegram" });
      action.addEventListener("click", () => linkTelegram(action, telegramPanel));
      rows.push(methodRow({ id: "telegram", mark: glyph("telegram"), title: t("method_telegram"), hint: t("method_not_linked"), linked: false, action }));
    }
    return card(sectionTitle(t("sign_in_methods")), el("p", { class: "muted small", text: t("sign_in_methods_lead") }), el("div", { class: "method-list", testid: "sign-in-methods" }, ...rows), telegramPanel);
  }

  async function handOff(provider, node) {
    node.disabled = true;
    try {
      const data = await api(`/api/auth/${provider}/link-handoff`, { method: "POST" });
      app.tg.openLink(data.url);
      toast(t("link_in_browser"));
    } catch (error) {
      toast(error.message, "error");
    }
    node.disabled = false;
  }

  // Back from the phone's browser: a provider linked there shows at once.
  function onVisible() {
    if (document.visibilityState === "visible" && alive) load();
  }
  if (app.tg.inTelegram) document.addEventListener("visibilitychange", onVisible);

  async function linkTelegram(node, panel) {
    node.disabled = true;
    let data;
    try {
      data = await api("/api/link/telegram", { method: "POST" });
    } catch (error) {
      node.disabled = false;
      toast(error.message, "error");
      return;
    }
    const done = button(t("link_telegram_done"), { variant: "ghost", class: "btn-sm", testid: "link-telegram-done" });
    done.addEventListener("click", async () => {
      done.disabled = true;
      try {
        // What the bot's confirmation did: this web account may have been merged into the
        // Telegram account and signed out, so the code, not the session, is asked.
        const status = await api(`/api/link/telegram/${encodeURIComponent(data.code)}`);
        if (status.web_signed_out) {
          app.mergedAway(t(status.history_moved ? "link_merged_away_history" : "link_merged_away"));
          return;
        }
        if (status.linked) {
          toast(t(status.history_moved ? "link_merged_here" : "method_linked"));
          load();
          return;
        }
        toast(t("link_telegram_waiting"), "error");
      } catch (error) {
        toast(error.message, "error");
      }
      done.disabled = false;
    });
    const open = data.deep_link
      ? el("a", { class: "btn btn-primary btn-sm", href: data.deep_link, target: "_blank", rel: "noopener", testid: "link-telegram-open", text: t("link_telegram_open") })
      : el("code", { testid: "link-telegram-code", text: `/start link-${data.code}` });
    panel.replaceChildren(el("p", { class: "muted small", text: t("link_telegram_lead", { minutes: Math.round(data.expires_in / 60) }) }), el("div", { class: "button-row" }, open, done));
    panel.hidden = false;
  }

  function addEmailCard() {
    const email = el("input", { class: "input", type: "email", name: "email", autocomplete: "username", required: true, testid: "add-email-address" });
    const input = (name) => el("input", { class: "input", type: "password", name, autocomplete: "new-password", required: true, testid: `add-email-${name}` });
    const password = input("password");
    const repeat = input("repeat");
    const problem = el("p", { class: "notice error", role: "alert", testid: "add-email-error", hidden: true });
    const sent = el("p", { class: "notice", role: "status", testid: "add-email-sent", hidden: true });
    const submit = button(t("add_email_submit"), { variant: "primary", type: "submit", testid: "add-email-submit" });
    const form = el(
      "form",
      { class: "form add-email-form", novalidate: true, autocomplete: "on" },
      field({ label: t("email_address"), input: email }),
      field({ label: t("password_field"), input: password, hint: t("password_rules") }),
      field({ label: t("repeat_password_field"), input: repeat }),
      problem,
      el("div", { class: "button-row" }, submit),
    );

    function say(text, node = null) {
      problem.textContent = text || "";
      problem.hidden = !text;
      for (const each of [email, password, repeat]) each.removeAttribute("aria-invalid");
      if (node) {
        node.setAttribute("aria-invalid", "true");
        node.focus();
      }
    }

    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      say("");
      const address = email.value.trim();
      const length = [...password.value.normalize("NFC")].length;
      if (!/^[^@\s]+@[^@\s]+\.[^@\s.]+$/.test(address)) return say(t("enter_email"), email);
      if (length < MIN_LENGTH || length > MAX_LENGTH || !password.value.trim()) return say(t("password_length"), password);
      if (password.value !== repeat.value) return say(t("passwords_differ"), repeat);
      submit.disabled = true;
      try {
        await api("/api/auth/email/add", { method: "POST", body: { email: address, password: password.value } });
        password.value = "";
        repeat.value = "";
        sent.textContent = t("add_email_sent", { email: address });
        sent.hidden = false;
        form.hidden = true;
      } catch (error) {
        say(error.message, email);
      } finally {
        submit.disabled = false;
      }
      return undefined;
    });
    return card(sectionTitle(t("add_email_title")), el("p", { class: "muted small", text: t("add_email_lead") }), form, sent);
  }

  function passwordCard(methods) {
    const input = (name, autocomplete) => el("input", { class: "input", type: "password", name, autocomplete, required: true, testid: `password-${name}` });
    const current = input("current", "current-password");
    const fresh = input("new", "new-password");
    const repeat = input("repeat", "new-password");
    const problem = el("p", { class: "notice error", role: "alert", testid: "password-error", hidden: true });
    const submit = button(t("change_password"), { variant: "primary", type: "submit", testid: "password-submit" });
    const form = el(
      "form",
      { class: "form password-form", novalidate: true, autocomplete: "on" },
      // For password managers: whose password this is.
      el("input", { type: "email", name: "username", autocomplete: "username", value: methods.email, readonly: true, hidden: true }),
      field({ label: t("current_password"), input: current }),
      field({ label: t("new_password"), input: fresh, hint: t("password_rules") }),
      field({ label: t("repeat_password"), input: repeat }),
      problem,
      el("div", { class: "button-row" }, submit),
    );

    function say(text, input = null) {
      problem.textContent = text || "";
      problem.hidden = !text;
      for (const node of [current, fresh, repeat]) node.removeAttribute("aria-invalid");
      if (input) {
        input.setAttribute("aria-invalid", "true");
        input.focus();
      }
    }

    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      say("");
      const length = [...fresh.value.normalize("NFC")].length;
      if (!current.value) return say(t("enter_current_password"), current);
      if (length < MIN_LENGTH || length > MAX_LENGTH || !fresh.value.trim()) return say(t("password_length"), fresh);
      if (fresh.value !== repeat.value) return say(t("passwords_differ"), repeat);
      submit.disabled = true;
      try {
        const result = await api("/api/auth/password", { method: "POST", body: { current: current.value, new: fresh.value } });
        for (const node of [current, fresh, repeat]) node.value = "";
        toast(result.ended_sessions ? t("password_changed_others") : t("password_changed"));
        loadSessions();
      } catch (error) {
        say(error.message, error.code === "wrong_password" ? current : fresh);
      } finally {
        submit.disabled = false;
      }
      return undefined;
    });
    return card(sectionTitle(t("change_password")), el("p", { class: "muted small", text: t("change_password_lead") }), form);
  }

  async function end(session, node) {
    const ok = await confirmAction({ title: t("end_session_title"), text: t("end_session_text", { device: session.ip ? `${deviceName(session)} (${session.ip})` : deviceName(session) }), confirm: t("end_session_confirm"), danger: true, testid: "end-session-confirm" });
    if (!ok) return;
    node.disabled = true;
    try {
      await api(`/api/sessions/${encodeURIComponent(session.id)}`, { method: "DELETE" });
      toast(t("session_ended_done"));
    } catch (error) {
      // Already ended elsewhere: the fresh list shows it gone.
      if (error.status !== 404) toast(error.message, "error");
    }
    loadSessions();
  }

  function sessionRow(session) {
    const seen = session.current ? t("active_now") : t("last_active", { when: when(session.last_used_at) });
    let action = null;
    if (!session.current) {
      action = button(t("end_session"), { variant: "ghost", class: "btn-sm", testid: "end-session" });
      action.addEventListener("click", () => end(session, action));
    }
    return el(
      "li",
      { class: `session-row${session.current ? " current" : ""}`, testid: "session", dataset: { current: session.current ? "true" : "false" } },
      el("span", { class: "row-icon session-icon" }, icon(session.device === "mobile" ? "phone" : "monitor")),
      el(
        "span",
        { class: "row-text" },
        el("span", { class: "session-title" }, el("span", { class: "row-title", text: deviceName(session) }), session.current ? el("span", { class: "badge badge-accent", testid: "this-device", text: t("this_device") }) : null),
        el("span", { class: "row-hint", testid: "session-detail", text: [session.ip, seen].filter(Boolean).join(" · ") }),
      ),
      action,
    );
  }

  async function loadSessions() {
    try {
      const data = await api("/api/sessions");
      if (!alive) return;
      // This device first, then the most recently used.
      const items = [...(data.sessions || [])].sort((a, b) => Number(b.current) - Number(a.current));
      sessionList.replaceChildren(...items.map(sessionRow));
    } catch (error) {
      if (alive) sessionList.replaceChildren(el("li", { class: "muted small", text: error.message }));
    }
  }

  function sessionsCard() {
    const everywhere = button(t("sign_out_everywhere"), { variant: "danger", testid: "security-sign-out-everywhere" }, "logout");
    everywhere.addEventListener("click", async () => {
      const ok = await confirmAction({ title: t("sign_out_everywhere_title"), text: t("sign_out_everywhere_text"), confirm: t("sign_out_everywhere"), danger: true, testid: "sign-out-everywhere-confirm" });
      if (ok) app.signOut(true);
    });
    return card(sectionTitle(t("sessions")), el("p", { class: "muted small", text: t("sessions_lead") }), sessionList, el("div", { class: "session-actions" }, everywhere));
  }

  async function load() {
    let methods;
    try {
      methods = await api("/api/auth/methods");
    } catch (error) {
      if (alive) root.replaceChildren(errorBox(error.message, load));
      return;
    }
    if (!alive) return;
    root.replaceChildren(methodsCard(methods), ...(methods.email ? [] : [addEmailCard()]), ...(methods.password ? [passwordCard(methods)] : []), sessionsCard());
    loadSessions();
  }

  load();
  return () => {
    alive = false;
    document.removeEventListener("visibilitychange", onVisible);
  };
}

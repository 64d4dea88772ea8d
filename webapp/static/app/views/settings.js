// Settings: language, time zone, theme, chat features, history storage, news.

import { api } from "../api.js";
import { browserTimeZone, button, card, confirmAction, el, errorBox, field, icon, sectionTitle, segmented, setTimeZone, settings, spinner, t, timeZone, timeZones, toast, toggle } from "../ui.js";

// The time zone every time is shown in, here and in the bot; the browser's is the first guess.
function timeZoneCard(app, prefs) {
  const select = el("select", { class: "input", testid: "timezone" });
  const current = prefs.timezone || timeZone();
  for (const name of timeZones()) {
    const option = el("option", { value: name, text: name.replaceAll("_", " ") });
    option.selected = name === current;
    select.append(option);
  }
  select.addEventListener("change", async () => {
    const chosen = select.value;
    select.disabled = true;
    try {
      const saved = await api("/api/settings/timezone", { method: "PUT", body: { timezone: chosen } });
      app.settings = { ...app.settings, timezone: saved.timezone };
      setTimeZone(saved.timezone);
      toast(t("saved"));
    } catch (error) {
      select.value = app.settings.timezone || timeZone();
      toast(error.message, "error");
    } finally {
      select.disabled = false;
    }
  });
  return card(sectionTitle(t("time_zone")), field({ label: t("time_zone_label"), input: select, hint: t("time_zone_hint", { zone: browserTimeZone() }) }));
}

export function mount(root, params, app) {
  let alive = true;
  app.setTitle(t("settings"));
  app.setActions([]);
  root.replaceChildren(spinner());

  async function patch(changes) {
    const updated = await api("/api/settings", { method: "PATCH", body: changes });
    app.settings = updated;
    return updated;
  }

  async function change(changes, input, done = t("saved")) {
    try {
      await patch(changes);
      toast(done);
      return true;
    } catch (error) {
      toast(error.message, "error");
      if (input) input.checked = !input.checked;
      return false;
    }
  }

  function render(current) {
    const language = segmented({
      name: "language",
      value: current.language,
      testid: "language",
      options: [
        { value: "en", label: "English" },
        { value: "ru", label: "Русский" },
      ],
      onchange: async (value) => {
        try {
          await patch({ language: value });
          app.reloadInLanguage(value);
        } catch (error) {
          toast(error.message, "error");
        }
      },
    });
    const theme = segmented({
      name: "theme",
      value: current.theme,
      testid: "theme",
      options: [
        { value: "auto", label: t("theme_auto") },
        { value: "light", label: t("theme_light") },
        { value: "dark", label: t("theme_dark") },
      ],
      onchange: async (value) => {
        app.applyTheme(value);
        await change({ theme: value });
      },
    });
    const history = toggle({
      label: t("keep_history"),
      hint: t("keep_history_hint"),
      checked: current.history_enabled,
      testid: "history-toggle",
      onchange: async (on, input) => {
        if (!on) {
          const ok = await confirmAction({ title: t("history_off_title"), text: t("history_off_text"), confirm: t("history_off_confirm"), danger: true, testid: "history-confirm" });
          if (!ok) {
            input.checked = true;
            return;
          }
        }
        await change({ history_enabled: on }, input, on ? t("history_on_done") : t("history_off_done"));
      },
    });
    const security = el(
      "a",
      { class: "row link-row", href: "#/security", testid: "settings-security" },
      el("span", { class: "row-icon" }, icon("lock")),
      el("span", { class: "row-text" }, el("span", { class: "row-title", text: t("security") }), el("span", { class: "row-hint", text: t("security_hint") })),
      icon("chevron-right", "icon chevron"),
    );
    // Inside Telegram the app signs in from the bot: there is nothing to sign out of here.
    const signOut = app.tg.inTelegram
      ? null
      : el(
          "div",
          { class: "button-row" },
          button(t("sign_out"), { testid: "sign-out", onclick: () => app.signOut(false) }, "logout"),
          button(t("sign_out_everywhere"), { variant: "ghost", testid: "sign-out-everywhere", onclick: () => app.signOut(true) }),
        );
    const account = [card(sectionTitle(t("account")), security, signOut)];
    root.replaceChildren(
      card(sectionTitle(t("interface_language")), language),
      timeZoneCard(app, current),
      card(sectionTitle(t("appearance")), theme, el("p", { class: "muted small", text: app.tg.inTelegram ? t("theme_hint_telegram") : t("theme_hint") })),
      card(
        sectionTitle(t("chat_settings")),
        toggle({ label: t("show_reasoning"), hint: t("show_reasoning_hint"), checked: current.reasoning, testid: "reasoning-toggle", onchange: (on, input) => change({ reasoning: on }, input) }),
        toggle({ label: t("web_search"), hint: t("web_search_hint"), checked: current.web_search, testid: "web-search-toggle", onchange: (on, input) => change({ web_search: on }, input) }),
        settings.images && toggle({ label: t("image_mode"), hint: t("image_mode_hint"), checked: current.image_mode, testid: "image-mode-toggle", onchange: (on, input) => change({ image_mode: on }, input, on ? t("image_mode_on_done") : t("image_mode_off_done")) }),
        settings.read_aloud && toggle({ label: t("read_aloud"), hint: t("read_aloud_hint"), checked: current.read_aloud, testid: "read-aloud-toggle", onchange: (on, input) => change({ read_aloud: on }, input) }),
      ),
      card(sectionTitle(t("privacy_settings")), history, toggle({ label: t("news"), hint: t("news_hint"), checked: current.marketing_opt_in, testid: "news-toggle", onchange: (on, input) => change({ marketing_opt_in: on }, input) })),
      ...account,
    );
  }

  async function load() {
    try {
      const current = await api("/api/settings");
      if (alive) render(current);
    } catch (error) {
      if (alive) root.replaceChildren(errorBox(error.message, load));
    }
  }

  load();
  return () => {
    alive = false;
  };
}

// Referrals: the invitation links, how many friends came, what they brought.

import { api } from "../api.js";
import { button, card, copyWithToast, el, errorBox, icon, iconButton, money, number, sectionTitle, spinner, t } from "../ui.js";

export function mount(root, params, app) {
  let alive = true;
  app.setTitle(t("referrals"));
  app.setActions([]);
  root.replaceChildren(spinner());

  function linkRow(label, url, testid) {
    const input = el("input", { class: "input mono", readonly: true, value: url, testid: `${testid}-url`, "aria-label": label });
    input.addEventListener("focus", () => input.select());
    return el(
      "div",
      { class: "link-block" },
      el("span", { class: "field-label", text: label }),
      el("div", { class: "copy-row" }, input, button(t("copy"), { variant: "primary", testid: `copy-${testid}`, onclick: () => copyWithToast(url) }, "copy")),
    );
  }

  function share(url) {
    const text = t("invite_message");
    if (app.tg.inTelegram) {
      app.tg.openTelegramLink(`https://t.me/share/url?url=${encodeURIComponent(url)}&text=${encodeURIComponent(text)}`);
    } else if (navigator.share) {
      navigator.share({ url, text }).catch(() => {});
    } else {
      copyWithToast(url);
    }
  }

  function stat(label, value, testid) {
    return el("div", { class: "stat" }, el("span", { class: "stat-value", testid, text: value }), el("span", { class: "stat-label", text: label }));
  }

  async function load() {
    try {
      const data = await api("/api/referrals");
      if (!alive) return;
      const how = data.percents ? t("referral_how", { level1: data.percents.level1, level2: data.percents.level2 }) : t("referral_how_plain");
      const links = [];
      if (data.bot_link) links.push(linkRow(t("bot_link"), data.bot_link, "bot-link"));
      if (data.app_link) links.push(linkRow(t("app_link"), data.app_link, "app-link"));
      if (!links.length) links.push(linkRow(t("your_code"), data.code, "code"));
      root.replaceChildren(
        el(
          "section",
          { class: "hero-card hero-invite" },
          el("span", { class: "hero-icon" }, icon("gift")),
          el("h2", { class: "hero-title", text: t("invite_friends") }),
          el("p", { class: "hero-text", text: how }),
          data.bot_link ? el("div", { class: "hero-actions" }, button(t("share_link"), { variant: "inverse", testid: "share-invite", onclick: () => share(data.bot_link) }, "share")) : null,
        ),
        el(
          "div",
          { class: "stats", testid: "referral-stats" },
          stat(t("friends_invited"), number(data.level1), "ref-level1"),
          stat(t("their_friends"), number(data.level2), "ref-level2"),
          stat(t("earned"), money(data.earned_kopecks), "ref-earned"),
        ),
        card(sectionTitle(t("your_links")), ...links, el("p", { class: "muted small" }, t("code_is", { code: data.code }), " ", iconButton("copy", t("copy"), { class: "inline", onclick: () => copyWithToast(data.code) }))),
      );
    } catch (error) {
      if (alive) root.replaceChildren(errorBox(error.message, load));
    }
  }

  load();
  return () => {
    alive = false;
  };
}

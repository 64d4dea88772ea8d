// The phone's "more" tab: the account and the pages that do not fit in the tab bar.

import { el, icon, money, t } from "../ui.js";

export function mount(root, params, app) {
  app.setTitle(t("more"));
  app.setActions([]);
  const me = app.me;
  const name = me.name || me.username || (me.email || "").split("@")[0];
  const item = (route, iconName, title, hint, testid) =>
    el(
      "a",
      { class: "row link-row", href: `#/${route}`, testid },
      el("span", { class: "row-icon" }, icon(iconName)),
      el("span", { class: "row-text" }, el("span", { class: "row-title", text: title }), hint ? el("span", { class: "row-hint", text: hint }) : null),
      icon("chevron-right", "icon chevron"),
    );
  const rows = [
    item("referrals", "gift", t("referrals"), t("referrals_hint"), "more-referrals"),
    item("settings", "sliders", t("settings"), t("settings_hint"), "more-settings"),
    item("security", "lock", t("security"), t("security_hint"), "more-security"),
    item("privacy", "shield", t("privacy"), t("privacy_hint"), "more-privacy"),
  ];
  const account = el(
    "section",
    { class: "card account-card" },
    el("span", { class: "avatar avatar-lg", text: (name || "N").charAt(0).toUpperCase() }),
    el(
      "span",
      { class: "account-text" },
      el("span", { class: "account-name", testid: "more-hello", text: name ? t("hello", { name }) : t("hello_anon") }),
      el("span", { class: "account-balance" }, t("balance"), ": ", el("strong", { testid: "more-balance", text: money(me.balance_kopecks) })),
    ),
    el("a", { class: "btn btn-primary btn-sm", href: "#/balance", text: t("top_up") }),
  );
  const footer = [];
  if (!app.tg.inTelegram) {
    const out = el("button", { type: "button", class: "row link-row danger-text", testid: "more-sign-out" }, el("span", { class: "row-icon" }, icon("logout")), el("span", { class: "row-text" }, el("span", { class: "row-title", text: t("sign_out") })));
    out.addEventListener("click", () => app.signOut(false));
    footer.push(out);
  }
  root.replaceChildren(account, el("nav", { class: "card list-card" }, ...rows), ...(footer.length ? [el("div", { class: "card list-card" }, ...footer)] : []));
  return () => {};
}

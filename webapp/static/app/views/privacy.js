// Privacy: a copy of one's data, the links one has shared, and deleting the account.

import { api, request } from "../api.js";
import { button, card, confirmAction, day, el, errorBox, icon, number, sectionTitle, spinner, t, toast } from "../ui.js";

export function mount(root, params, app) {
  let alive = true;
  app.setTitle(t("privacy"));
  app.setActions([]);
  const links = el("ul", { class: "share-list", testid: "shares" }, spinner());

  async function download(format, node) {
    node.disabled = true;
    try {
      const response = await request(`/api/privacy/export?format=${format}`);
      if (!response.ok) {
        let data = {};
        try {
          data = await response.json();
        } catch (_) {
          data = {};
        }
        throw new Error(data.message || t("failed"));
      }
      const disposition = response.headers.get("Content-Disposition") || "";
      const named = /filename="([^"]+)"/.exec(disposition);
      const blob = await response.blob();
      const url = URL.createObjectURL(blob);
      const a = el("a", { href: url, download: named ? named[1] : `netroom-export.${format}` });
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10_000);
      toast(t("export_ready"));
    } catch (error) {
      toast(error.message, "error");
    } finally {
      node.disabled = false;
    }
  }

  async function deleteAccount() {
    let started;
    try {
      started = await api("/api/privacy/delete", { method: "POST" });
    } catch (error) {
      toast(error.message, "error");
      return;
    }
    const ok = await confirmAction({ title: t("delete_account_title"), text: t("delete_account_text"), confirm: t("delete_account_confirm"), danger: true, testid: "delete-account-confirm" });
    if (!ok) return;
    try {
      await api("/api/privacy/delete/confirm", { method: "POST", body: { confirm_token: started.confirm_token } });
      app.accountDeleted();
    } catch (error) {
      toast(error.message, "error");
    }
  }

  function shareRow(link) {
    const revoke = button(t("revoke"), { variant: "ghost", class: "btn-sm", testid: "revoke-share", onclick: async () => {
      const ok = await confirmAction({ title: t("revoke_title"), text: t("revoke_text"), confirm: t("revoke"), danger: true });
      if (!ok) return;
      try {
        await api(`/api/shares/${link.id}`, { method: "DELETE" });
        toast(t("revoked"));
        loadShares();
      } catch (error) {
        toast(error.message, "error");
      }
    } });
    const status = link.active ? t("share_active") : link.disabled_at ? t("share_disabled") : t("share_revoked");
    return el(
      "li",
      { class: `share-row${link.active ? "" : " inactive"}`, testid: "share", dataset: { id: String(link.id), kind: link.kind } },
      el("span", { class: "share-icon" }, icon(link.kind === "preset" ? "bookmark" : "chat")),
      el(
        "span",
        { class: "share-text" },
        el("span", { class: "share-title", text: link.title || (link.kind === "preset" ? t("preset") : t("chat")) }),
        el("span", { class: "share-detail", text: `${status} · ${t("views", { count: number(link.views) })} · ${day(link.created_at)}` }),
      ),
      link.active ? revoke : null,
    );
  }

  async function loadShares() {
    try {
      const data = await api("/api/shares");
      if (!alive) return;
      const items = data.links || [];
      links.replaceChildren(...(items.length ? items.map(shareRow) : [el("li", { class: "muted small", text: t("no_shares") })]));
    } catch (error) {
      if (alive) links.replaceChildren(el("li", { class: "muted small", text: error.message }));
    }
  }

  const json = button(t("export_json"), { testid: "export-json" }, "download");
  const zip = button(t("export_zip"), { testid: "export-zip" }, "download");
  const transcript = button(t("export_html"), { testid: "export-html" }, "download");
  json.addEventListener("click", () => download("json", json));
  zip.addEventListener("click", () => download("zip", zip));
  transcript.addEventListener("click", () => download("html", transcript));
  const policy = el("a", { class: "row link-row", href: "/privacy/", target: "_blank", rel: "noopener", testid: "policy-link" }, el("span", { class: "row-text" }, el("span", { class: "row-title", text: t("privacy_policy") }), el("span", { class: "row-hint", text: t("policy_hint") })), icon("external"));
  policy.addEventListener("click", (event) => {
    if (app.tg.inTelegram) {
      event.preventDefault();
      app.tg.openLink(new URL("/privacy/", window.location.href).href);
    }
  });
  root.replaceChildren(
    card(sectionTitle(t("your_data")), el("p", { class: "muted", text: t("export_text") }), el("div", { class: "button-row" }, json, zip, transcript)),
    card(sectionTitle(t("shared_links")), el("p", { class: "muted small", text: t("shared_links_text") }), links),
    el("section", { class: "card list-card" }, policy),
    el(
      "section",
      { class: "card danger-zone" },
      sectionTitle(t("delete_account")),
      el("p", { class: "muted", text: t("delete_account_lead") }),
      button(t("delete_account"), { variant: "danger", testid: "delete-account", onclick: deleteAccount }, "trash"),
    ),
  );
  loadShares();
  return () => {
    alive = false;
  };
}

// Balance: the money, the free requests and when they come back, the plan, top-ups (Telegram
// Stars inside Telegram, a bank card through YooKassa) and the transaction history, paged.

import { api } from "../api.js";
import { button, card, day, el, errorBox, icon, money, number, sectionTitle, signedMoney, spinner, t, toast, when } from "../ui.js";

const CATEGORY_ICONS = { text: "chat", image: "image", video: "video", topup: "plus", referral: "gift", bonus: "gift", subscription: "star", other: "dot" };

function capital(text) {
  return text ? text.charAt(0).toUpperCase() + text.slice(1) : text;
}

function tierName(tier) {
  return capital(tier);
}

export function mount(root, params, app) {
  let alive = true;
  let before = null;
  app.setTitle(t("balance"));
  app.setActions([]);
  root.replaceChildren(spinner());

  const history = el("ul", { class: "tx-list", testid: "transactions" });
  const more = button(t("load_more"), { class: "btn-block", testid: "more-transactions", hidden: true, onclick: () => loadHistory() });

  function hero(data) {
    const notes = [];
    if (data.reserved_kopecks) notes.push(el("p", { class: "hero-note", testid: "reserved", text: t("held", { amount: money(data.reserved_kopecks) }) }));
    if (data.bonus_percent) notes.push(el("p", { class: "hero-note", text: t("bonus_next", { percent: data.bonus_percent }) }));
    if (data.discount_percent) notes.push(el("p", { class: "hero-note", text: capital(t("discount", { percent: data.discount_percent })) }));
    return el(
      "section",
      { class: "hero-card" },
      el("span", { class: "hero-label", text: t("balance") }),
      el("span", { class: "hero-amount", testid: "balance-amount", text: money(data.balance_kopecks) }),
      ...notes,
      el("div", { class: "hero-actions" }, button(t("top_up"), { variant: "inverse", testid: "goto-topup", onclick: () => document.getElementById("topup").scrollIntoView({ behavior: "smooth" }) }, "plus")),
    );
  }

  function freeTier(free) {
    if (!free || !free.allowances.length) return null;
    const rows = free.allowances.map((a) => {
      const bar = el("span", { class: "meter-fill" });
      bar.style.width = `${a.limit ? Math.round((a.left / a.limit) * 100) : 0}%`;
      return el(
        "div",
        { class: "meter-row", testid: "allowance", dataset: { tier: a.tier } },
        el("div", { class: "meter-head" }, el("span", { class: "meter-name", text: tierName(a.tier) }), el("span", { class: "meter-value", text: t("free_left", { left: number(a.left), limit: number(a.limit) }) })),
        el("span", { class: "meter" }, bar),
      );
    });
    return card(sectionTitle(t("free_requests")), el("p", { class: "muted small", text: t(`free_period_${free.period}`) }), ...rows, el("p", { class: "muted small", testid: "next-reset", text: t("next_reset", { when: when(free.next_reset) }) }));
  }

  function planPerks(plan) {
    const perks = Object.entries(plan.free_tier || {}).map(([tier, count]) => t("plan_free", { count, tier: tierName(tier) }));
    if (plan.discount_percent) perks.push(t("discount", { percent: plan.discount_percent }));
    return perks.join(" · ");
  }

  function planCard(data) {
    if (data.plan) {
      return card(
        sectionTitle(t("your_plan")),
        el(
          "div",
          { class: "plan current", testid: "plan" },
          el("div", { class: "plan-head" }, el("span", { class: "plan-name", text: capital(data.plan.id) }), el("span", { class: `badge ${data.plan.renews ? "badge-success" : ""}`, text: data.plan.renews ? t("renews") : t("renewal_off") })),
          el("p", { class: "muted small", text: t("plan_until", { date: day(data.plan.until) }) }),
        ),
      );
    }
    if (!data.plans.length) return null;
    return card(
      sectionTitle(t("plans")),
      ...data.plans.map((plan) =>
        el(
          "div",
          { class: "plan", testid: "plan-offer" },
          el("div", { class: "plan-head" }, el("span", { class: "plan-name", text: capital(plan.id) }), el("span", { class: "plan-price" }, icon("star"), t("stars_per_month", { stars: number(plan.stars) }))),
          el("p", { class: "muted small", text: planPerks(plan) }),
        ),
      ),
      el("p", { class: "muted small", text: t("plans_in_bot") }),
    );
  }

  async function payStars(stars, node) {
    node.disabled = true;
    try {
      const { invoice_link: link } = await api("/api/payments/stars", { method: "POST", body: { stars } });
      app.tg.openInvoice(link, (status) => {
        if (status === "paid") {
          toast(t("payment_received"));
          setTimeout(() => alive && reload(), 1500);
        } else if (status === "failed") toast(t("payment_failed"), "error");
      });
    } catch (error) {
      toast(error.message, "error");
    } finally {
      node.disabled = false;
    }
  }

  async function payCard(rub, node) {
    node.disabled = true;
    try {
      const { confirmation_url: url } = await api("/api/payments/yookassa", { method: "POST", body: { rub } });
      if (app.tg.inTelegram) app.tg.openLink(url);
      else window.location.assign(url);
    } catch (error) {
      toast(error.message, "error");
    } finally {
      node.disabled = false;
    }
  }

  function topUp(data) {
    const parts = [];
    const stars = data.stars && data.stars.purchasable && app.tg.inTelegram ? data.stars.packages : [];
    if (stars.length) {
      parts.push(el("h3", { class: "subhead", text: t("pay_with_stars") }));
      parts.push(
        el(
          "div",
          { class: "packages" },
          ...stars.map((p) => {
            const node = el("button", { type: "button", class: "package", testid: `stars-${p.stars}` }, el("span", { class: "package-main" }, icon("star"), number(p.stars)), el("span", { class: "package-sub", text: money(p.kopecks) }));
            node.addEventListener("click", () => payStars(p.stars, node));
            return node;
          }),
        ),
      );
    }
    if (data.card && data.card.packages.length) {
      parts.push(el("h3", { class: "subhead", text: t("pay_by_card") }));
      parts.push(
        el(
          "div",
          { class: "packages" },
          ...data.card.packages.map((p) => {
            const node = el("button", { type: "button", class: "package", testid: `card-${p.rub}` }, el("span", { class: "package-main", text: money(p.kopecks) }), el("span", { class: "package-sub", text: t("by_card") }));
            node.addEventListener("click", () => payCard(p.rub, node));
            return node;
          }),
        ),
      );
    }
    if (!parts.length) parts.push(el("p", { class: "muted", testid: "topup-unavailable", text: data.stars && data.stars.packages.length ? t("stars_in_telegram") : t("topup_unavailable") }));
    else if (data.stars && data.stars.packages.length && !stars.length) parts.push(el("p", { class: "muted small", text: t("stars_in_telegram") }));
    return el("section", { class: "card", id: "topup", testid: "topup" }, sectionTitle(t("top_up")), ...parts);
  }

  function txRow(tx) {
    const label = capital(t(`cat_${tx.category}`));
    const detail = [tx.model_id, when(tx.created_at)].filter(Boolean).join(" · ");
    return el(
      "li",
      { class: "tx", testid: "transaction", dataset: { id: String(tx.id), category: tx.category } },
      el("span", { class: `tx-icon cat-${tx.category}` }, icon(CATEGORY_ICONS[tx.category] || "dot")),
      el("span", { class: "tx-text" }, el("span", { class: "tx-title", text: label }), el("span", { class: "tx-detail", text: detail })),
      el("span", { class: `tx-amount ${tx.amount_kopecks > 0 ? "plus" : "minus"}`, testid: "transaction-amount", text: signedMoney(tx.amount_kopecks) }),
    );
  }

  async function loadHistory() {
    more.disabled = true;
    try {
      const data = await api(`/api/transactions${before ? `?before=${before}` : ""}`);
      if (!alive) return;
      if (!before && !data.transactions.length) history.replaceChildren(el("li", { class: "tx-empty muted", text: t("no_transactions") }));
      else history.append(...data.transactions.map(txRow));
      before = data.next_before;
      more.hidden = !before;
    } catch (error) {
      if (alive) history.append(el("li", { class: "tx-empty", text: error.message }));
    } finally {
      more.disabled = false;
    }
  }

  async function reload() {
    try {
      const data = await api("/api/balance");
      if (!alive) return;
      app.setBalance(data.balance_kopecks);
      before = null;
      history.replaceChildren();
      root.replaceChildren(
        hero(data),
        el("div", { class: "grid-2" }, freeTier(data.free_tier), planCard(data)),
        topUp(data),
        el("section", { class: "card" }, sectionTitle(t("transactions")), history, more),
      );
      loadHistory();
    } catch (error) {
      if (alive) root.replaceChildren(errorBox(error.message, reload));
    }
  }

  reload();
  return () => {
    alive = false;
  };
}


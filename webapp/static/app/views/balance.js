// Balance: the money, the free requests and when they come back, the plan (bought with Stars as a
// subscription Telegram renews every 30 days; its renewal cancelled and resumed here), top-ups
// (Telegram Stars inside Telegram, a bank card through YooKassa) and the transaction history, paged.

import { api } from "../api.js";
import { button, card, day, dialog, el, errorBox, icon, money, number, sectionTitle, signedMoney, spinner, t, toast, when, zonedWhen } from "../ui.js";

const CATEGORY_ICONS = { text: "chat", image: "image", video: "video", topup: "plus", referral: "gift", bonus: "gift", subscription: "star", other: "dot" };

function capital(text) {
  return text ? text.charAt(0).toUpperCase() + text.slice(1) : text;
}

// A free-tier class in the page's language; an id without a name is shown as it is.
function tierName(tier) {
  const key = `tier_${tier}`;
  const name = t(key);
  return name === key ? tier : name;
}

// What a free-tier class holds ("light, fast models"); empty for a class without a hint.
function tierHint(tier) {
  const key = `tier_hint_${tier}`;
  const hint = t(key);
  return hint === key ? "" : hint;
}

// A plan bought with Stars is two entries: the Stars coming in, the plan's charge going out.
function txLabel(tx) {
  if (tx.category === "subscription" && tx.plan) {
    return capital(t(tx.amount_kopecks > 0 ? "tx_plan_paid" : "tx_plan_charge", { plan: capital(tx.plan) }));
  }
  return capital(t(`cat_${tx.category}`));
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

// A button waiting for the server: disabled, and marked busy for the spinner and screen readers.
function busy(node, on) {
  node.disabled = on;
  if (on) node.setAttribute("aria-busy", "true");
  else node.removeAttribute("aria-busy");
}

export function mount(root, params, app) {
  let alive = true;
  let before = null;
  let shown = null;
  let planNode = null;
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
        el("div", { class: "meter-head" }, el("span", { class: "meter-name" }, capital(tierName(a.tier)), tierHint(a.tier) ? el("span", { class: "meter-hint", testid: "tier-hint", text: ` · ${tierHint(a.tier)}` }) : null), el("span", { class: "meter-value", text: t("free_left", { left: number(a.left), limit: number(a.limit) }) })),
        el("span", { class: "meter" }, bar),
      );
    });
    return card(sectionTitle(t("free_requests")), el("p", { class: "muted small", text: t(`free_period_${free.period}`) }), ...rows, el("p", { class: "muted small", testid: "next-reset", text: t("free_renew", { when: zonedWhen(free.next_reset) }) }));
  }

  // The classes the plans name, each with what it holds.
  function tierHints(tiers) {
    const told = [...new Set(tiers)].filter((tier) => tierHint(tier)).map((tier) => `${tierName(tier)}: ${tierHint(tier)}`);
    return told.length ? el("p", { class: "muted small", testid: "tier-hints", text: t("tier_classes", { classes: told.join("; ") }) }) : null;
  }

  function planPerks(plan, period) {
    const perks = Object.entries(plan.free_tier || {}).map(([tier, count]) => t(`plan_free_${period}`, { count: number(count), tier: tierName(tier) }));
    if (plan.discount_percent) perks.push(t("discount", { percent: plan.discount_percent }));
    return perks.join(" · ");
  }

  function planCard(data) {
    if (data.plan) {
      const plan = data.plan;
      const action = !data.plans_purchasable
        ? null
        : plan.renews
          ? button(t("plan_cancel_renewal"), { variant: "ghost", class: "btn-sm", testid: "plan-cancel-renewal", onclick: (event) => changeRenewal(false, event.currentTarget) })
          : button(t("plan_resume_renewal"), { variant: "primary", class: "btn-sm", testid: "plan-resume-renewal", onclick: (event) => changeRenewal(true, event.currentTarget) });
      return card(
        sectionTitle(t("your_plan")),
        el(
          "div",
          { class: "plan current", testid: "plan" },
          el("div", { class: "plan-head" }, el("span", { class: "plan-name", text: capital(plan.id) }), el("span", { class: `badge ${plan.renews ? "badge-success" : ""}`, testid: "plan-renewal", text: plan.renews ? t("renews") : t("renewal_off") })),
          el("p", { class: "muted small", testid: "plan-until", text: t(plan.renews ? "plan_renews_on" : "plan_until", { date: zonedWhen(plan.until) }) }),
          action ? el("div", { class: "plan-actions" }, action) : null,
        ),
        !action && plan.renews ? el("p", { class: "muted small", text: t("plan_manage_in_bot") }) : null,
      );
    }
    if (!data.plans.length) return null;
    return card(
      sectionTitle(t("plans")),
      ...data.plans.map((plan) => {
        const note = el("div", { class: "plan-note", testid: "plan-pay-note", hidden: true });
        let buy = null;
        if (data.plans_purchasable) {
          buy = button(t("plan_subscribe"), { variant: "primary", class: "btn-sm", testid: "plan-subscribe", onclick: (event) => subscribe(plan, event.currentTarget, note) });
          buy.append(el("span", { class: "btn-price" }, icon("star"), number(plan.stars)));
        }
        return el(
          "div",
          { class: "plan", testid: "plan-offer", dataset: { plan: plan.id } },
          el("div", { class: "plan-head" }, el("span", { class: "plan-name", text: capital(plan.id) }), el("span", { class: "plan-price" }, icon("star"), t("stars_per_month", { stars: number(plan.stars) }))),
          el("p", { class: "muted small", testid: "plan-perks", text: planPerks(plan, (data.free_tier && data.free_tier.period) || "day") }),
          buy ? el("div", { class: "plan-actions" }, buy) : null,
          note,
        );
      }),
      tierHints(data.plans.flatMap((plan) => Object.keys(plan.free_tier || {}))),
      data.plans_purchasable ? null : el("p", { class: "muted small", testid: "plans-in-bot", text: t("plans_in_bot") }),
    );
  }

  // Inside Telegram the invoice opens over the page and says when it is paid. Elsewhere it opens
  // in Telegram through its t.me link in a new tab, and the page can only look again.
  async function subscribe(plan, node, note) {
    busy(node, true);
    try {
      const { invoice_link: link } = await api("/api/subscription", { method: "POST", body: { plan: plan.id } });
      if (!alive) return;
      if (app.tg.hasHost) {
        app.tg.openInvoice(link, (status) => {
          if (status === "paid") {
            toast(t("payment_received"));
            awaitPlan();
          } else if (status === "failed") toast(t("payment_failed"), "error");
        });
      } else {
        window.open(link, "_blank", "noopener");
        const check = button(t("plan_check_payment"), { class: "btn-sm", testid: "plan-check-payment", onclick: () => checkPlan(check) });
        note.replaceChildren(
          el("p", { class: "small", text: t("plan_pay_in_telegram") }),
          el("div", { class: "plan-actions" }, el("a", { class: "btn btn-secondary btn-sm", href: link, target: "_blank", rel: "noopener", testid: "plan-invoice-link" }, icon("external"), el("span", { text: t("plan_open_invoice") })), check),
        );
        note.hidden = false;
      }
    } catch (error) {
      toast(error.message, "error");
    } finally {
      busy(node, false);
    }
  }

  // The bot records the payment moments after Telegram reports it: look a few times.
  async function awaitPlan() {
    for (let attempt = 0; attempt < 8 && alive; attempt += 1) {
      await sleep(1000);
      try {
        const data = await api("/api/balance");
        if (alive && data.plan) {
          render(data);
          return;
        }
      } catch (_) {
        /* looked again below */
      }
    }
    if (alive) reload();
  }

  async function checkPlan(node) {
    busy(node, true);
    try {
      const data = await api("/api/balance");
      if (!alive) return;
      if (data.plan) render(data);
      else toast(t("plan_not_yet"));
    } catch (error) {
      toast(error.message, "error");
    } finally {
      busy(node, false);
    }
  }

  async function changeRenewal(renews, node) {
    if (!renews) {
      const chosen = await dialog({
        title: t("plan_cancel_title"),
        body: [el("p", { text: t("plan_cancel_text", { date: day(shown.plan.until) }) })],
        testid: "plan-cancel-confirm",
        actions: [
          { id: "keep", label: t("plan_keep_renewal"), testid: "dialog-cancel" },
          { id: "ok", label: t("plan_cancel_renewal"), variant: "danger", testid: "dialog-confirm" },
        ],
      });
      if (chosen !== "ok" || !alive) return;
    }
    busy(node, true);
    try {
      const plan = await api("/api/subscription", { method: "PATCH", body: { renews } });
      if (!alive) return;
      toast(t(renews ? "plan_renewal_resumed" : "plan_renewal_cancelled", { until: day(plan.until) }));
      shown = { ...shown, plan };
      const next = planCard(shown);
      planNode.replaceWith(next);
      planNode = next;
    } catch (error) {
      toast(error.message, "error");
      busy(node, false);
    }
  }

  async function payStars(stars, node) {
    node.disabled = true;
    try {
      const { invoice_link: link } = await api("/api/payments/stars", { method: "POST", body: { stars } });
      if (!app.tg.hasHost) {
        // No Telegram client around the page: the invoice is paid in Telegram itself.
        window.open(link, "_blank", "noopener");
        toast(t("stars_pay_in_telegram"));
        return;
      }
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
    const stars = data.stars && data.stars.purchasable ? data.stars.packages : [];
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
    const label = txLabel(tx);
    const detail = [tx.model_name || tx.model_id, when(tx.created_at)].filter(Boolean).join(" · ");
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

  function render(data) {
    shown = data;
    planNode = planCard(data);
    app.setBalance(data.balance_kopecks);
    before = null;
    history.replaceChildren();
    root.replaceChildren(
      hero(data),
      el("div", { class: "grid-2" }, freeTier(data.free_tier), planNode),
      topUp(data),
      el("section", { class: "card" }, sectionTitle(t("transactions")), history, more),
    );
    loadHistory();
  }

  async function reload() {
    try {
      const data = await api("/api/balance");
      if (alive) render(data);
    } catch (error) {
      if (alive) root.replaceChildren(errorBox(error.message, reload));
    }
  }

  reload();
  return () => {
    alive = false;
  };
}


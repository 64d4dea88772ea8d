// The chat's model picker. The <select> groups the models by provider (one <optgroup> each),
// every option naming the model, the price of a typical request and its free class. Under it:
// the chosen model's capabilities as small badges, its price and its free class (explained on
// hover), and a collapsed "All models" guide: every model by provider with its badges, price and
// class (a tap picks it), then what each free class means.

import { el, icon, money, t } from "./ui.js";

const CAPABILITIES = [
  ["vision", "eye", "cap_vision"],
  ["reasoning", "bulb", "cap_reasoning"],
  ["web_search", "globe", "cap_web_search"],
];

function price(model) {
  return model.price_hint_kopecks ? `≈${money(model.price_hint_kopecks)}` : t("free");
}

function optionText(model, cls) {
  return [model.name || model.id, price(model), cls ? t("free_class", { tier: cls.name }) : ""].filter(Boolean).join(" · ");
}

function badges(model) {
  return CAPABILITIES.filter(([key]) => model[key]).map(([key, iconName, text]) => el("span", { class: "badge cap-badge", testid: `cap-${key}` }, icon(iconName), t(text)));
}

function classBadge(cls) {
  // The explanation is the tooltip on a pointer and the accessible name's description anywhere.
  return el("span", { class: "badge badge-accent class-badge", testid: "free-class", title: cls.explanation, "aria-label": `${t("free_class", { tier: cls.name })}: ${cls.explanation}`, tabindex: 0 }, icon("gift"), t("free_class", { tier: cls.name }));
}

export function renderModelPicker(picker, info, state, onPick) {
  const classes = new Map((state.freeClasses || []).map((c) => [c.id, c]));
  const groups = new Map();
  for (const model of state.models) {
    const label = model.provider_name || model.provider;
    if (!groups.has(label)) groups.set(label, []);
    groups.get(label).push(model);
  }
  picker.replaceChildren(
    ...[...groups].map(([label, models]) =>
      el(
        "optgroup",
        { label },
        ...models.map((m) => {
          const option = el("option", { value: m.id, text: optionText(m, classes.get(m.free_tier)) });
          option.selected = m.id === state.current;
          return option;
        }),
      ),
    ),
  );

  const current = state.models.find((m) => m.id === state.current);
  info.hidden = !current;
  if (!current) return info.replaceChildren();
  const open = info.querySelector("details")?.open || false;
  const cls = classes.get(current.free_tier);
  const guide = el(
    "details",
    { class: "model-guide", testid: "model-guide", open },
    el("summary", { text: t("all_models") }),
    ...[...groups].map(([label, models]) =>
      el(
        "section",
        { class: "model-group", testid: "model-group" },
        el("h4", { text: label }),
        ...models.map((m) =>
          el(
            "button",
            { type: "button", class: `model-row${m.id === state.current ? " on" : ""}`, testid: "model-row", "aria-pressed": m.id === state.current ? "true" : "false", onclick: () => onPick(m.id) },
            el("span", { class: "model-row-name", text: m.name || m.id }),
            ...badges(m),
            el("span", { class: "model-row-price", text: price(m) }),
            classes.get(m.free_tier) ? classBadge(classes.get(m.free_tier)) : null,
          ),
        ),
      ),
    ),
    classes.size
      ? el(
          "section",
          { class: "free-classes", testid: "free-classes" },
          el("h4", { text: t("free_classes") }),
          el("ul", {}, ...[...classes.values()].map((c) => el("li", {}, el("b", { text: c.name }), `: ${c.explanation}`))),
        )
      : null,
    el("p", { class: "muted", text: t(classes.size ? "free_classes_note" : "typical_request_note") }),
  );
  info.replaceChildren(
    ...[
      ...badges(current),
    el("span", { class: "model-price", testid: "model-price", text: current.price_hint_kopecks ? t("typical_price", { amount: money(current.price_hint_kopecks) }) : t("free") }),
      cls ? classBadge(cls) : null,
      guide,
    ].filter(Boolean),
  );
}

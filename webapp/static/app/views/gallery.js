// The gallery: a Create panel (pictures in a chosen shape, 1-4 variations of one prompt, or a
// video), then the user's pictures and videos, newest first, paged. Each stays until the user
// deletes it here (or in the bot's /media), or deletes the account. A video being made turns
// into a player when it is ready, without a reload.

import { api } from "../api.js";
import { aspectFrame, aspectLabel, countedPrice, drawPictures, mediaOptions, moreLike, priceLine, watchMedia } from "../create.js";
import { button, card, confirmAction, day, dialog, el, empty, errorBox, icon, iconButton, money, spinner, t, toast } from "../ui.js";

const PROMPT_MAX = 4000;

export function mount(root, params, app) {
  let alive = true;
  let before = null;
  let options = null;
  // What the panel makes: "image" or "video".
  let kind = "image";
  const watching = new Set();
  app.setTitle(t("gallery"));
  app.setActions([]);
  const panelSlot = el("div", { class: "create-slot" });
  const grid = el("div", { class: "gallery", testid: "gallery" });
  const more = button(t("load_more"), { class: "btn-block", testid: "more-media", hidden: true, onclick: () => load() });
  const list = el("div", { class: "gallery-list" }, grid, more);
  root.replaceChildren(panelSlot, list);
  grid.append(spinner());

  function problem(error) {
    if (error.code === "insufficient_funds") {
      dialog({
        title: t("not_enough_money"),
        testid: "insufficient-funds",
        body: [el("p", { text: error.message })],
        actions: [
          { id: "cancel", label: t("cancel") },
          { id: "top-up", label: t("top_up"), variant: "primary", testid: "top-up" },
        ],
      }).then((chosen) => {
        if (chosen === "top-up") app.go("balance");
      });
    } else {
      toast(error.message, "error");
    }
  }

  async function remove(item, node) {
    const ok = await confirmAction({ title: t("delete_media_title"), text: t("delete_media_text"), confirm: t("delete"), danger: true });
    if (!ok) return;
    try {
      await api(`/api/media/${item.id}`, { method: "DELETE" });
    } catch (error) {
      toast(error.message, "error");
      return;
    }
    node.remove();
    toast(t("media_deleted"));
    if (!grid.querySelector("[data-testid=media]") && !before) load();
  }

  function modelOf(item) {
    const models = options ? [...options.images, ...options.videos] : [];
    const found = models.find((m) => m.id === item.model_id);
    return item.model_name || (found ? found.name : item.model_id);
  }

  // Pictures drawn again like `item` (its prompt, model and shape), as many as the panel asks.
  async function again(item) {
    const count = panel ? panel.count() : 1;
    const placeholders = pending(count);
    try {
      const made = await moreLike(item, count);
      if (!alive) return;
      shown(made, placeholders);
    } catch (error) {
      for (const p of placeholders) p.remove();
      problem(error);
    }
  }

  function open(item, node) {
    const media =
      item.kind === "video"
        ? el("video", { src: item.url, controls: true, playsinline: true, class: "viewer-media", testid: "viewer-video" })
        : el("img", { src: item.url, alt: item.prompt, class: "viewer-media", testid: "viewer-image" });
    const price = options && item.kind === "image" ? options.images.find((m) => m.id === item.model_id) : null;
    const facts = [modelOf(item), item.aspect ? aspectLabel(item.aspect) : null, day(item.created_at)].filter(Boolean).join(" · ");
    dialog({
      testid: "media-viewer",
      body: [media, el("p", { class: "viewer-prompt", text: item.prompt }), el("p", { class: "muted small", text: facts })],
      actions: [
        price ? { id: "more", label: t("more_like_this", { price: countedPrice(price.price_kopecks, panel ? panel.count() : 1) }), variant: "primary", testid: "viewer-more" } : null,
        { id: "delete", label: t("delete"), variant: "danger", testid: "viewer-delete" },
        { id: "download", label: t("download") },
        { id: "close", label: t("done"), variant: price ? "secondary" : "primary" },
      ].filter(Boolean),
    }).then((chosen) => {
      if (chosen === "delete") remove(item, node);
      if (chosen === "more") again(item);
      if (chosen === "download") {
        const a = el("a", { href: item.url, download: "" });
        document.body.append(a);
        a.click();
        a.remove();
      }
    });
  }

  function tile(item) {
    let preview;
    if (item.status === "ready" && item.url) {
      preview =
        item.kind === "video"
          ? // "#t=0.1": the first frame stands as the poster (not a blank tile).
            el("video", { src: `${item.url}#t=0.1`, preload: "metadata", muted: true, playsinline: true, class: "tile-media", testid: "tile-video" })
          : el("img", { src: item.url, alt: item.prompt, loading: "lazy", class: "tile-media" });
    } else {
      preview = el(
        "div",
        { class: `tile-placeholder ${item.status}` },
        item.status === "pending" ? el("div", { class: "mini-spinner" }) : icon(item.status === "failed" ? "alert" : item.kind === "video" ? "video" : "image"),
        el("span", { text: item.status === "failed" ? t("media_failed") : t("media_pending") }),
      );
    }
    const node = el(
      "figure",
      { class: `tile tile-${item.kind}`, testid: "media", dataset: { id: String(item.id), kind: item.kind, status: item.status } },
      el("div", { class: "tile-frame" }, preview, item.kind === "video" ? el("span", { class: "tile-badge" }, icon("video"), item.duration_seconds ? `${item.duration_seconds}s` : "") : null),
      el("figcaption", {}, el("span", { class: "tile-prompt", text: item.prompt }), el("span", { class: "tile-meta", text: `${modelOf(item)} · ${day(item.created_at)}` })),
    );
    // One still being made is settled first (its hold, the job watching it); then it can go.
    if (item.status !== "pending") {
      const trash = iconButton("trash", t("delete"), { class: "tile-delete", testid: "media-delete" });
      trash.addEventListener("click", (event) => {
        event.stopPropagation();
        remove(item, node);
      });
      trash.addEventListener("keydown", (event) => event.stopPropagation());
      node.querySelector(".tile-frame").append(trash);
    }
    if (item.status === "ready" && item.url) {
      node.tabIndex = 0;
      node.addEventListener("click", () => open(item, node));
      node.addEventListener("keydown", (event) => {
        if (event.key === "Enter") open(item, node);
      });
    }
    // A video being made becomes its player when ready.
    if (item.status === "pending" && item.kind === "video") {
      const stop = watchMedia(item, (now) => {
        watching.delete(stop);
        if (alive && node.isConnected) node.replaceWith(tile(now));
        if (now.status === "ready") toast(t("video_ready"));
      });
      watching.add(stop);
    }
    return node;
  }

  // Tiles standing for pictures being drawn, first in the grid.
  function pending(count) {
    if (grid.querySelector("[data-testid=empty]")) grid.replaceChildren();
    const nodes = Array.from({ length: count }, () =>
      el("figure", { class: "tile tile-image is-drawing", testid: "media-drawing" }, el("div", { class: "tile-frame" }, el("div", { class: "tile-placeholder pending" }, el("div", { class: "mini-spinner" }), el("span", { text: t("media_pending") })))),
    );
    grid.prepend(...nodes);
    grid.scrollIntoView({ behavior: "smooth", block: "start" });
    return nodes;
  }

  function shown(made, placeholders) {
    const tiles = made.media.map(tile);
    for (const node of tiles) node.classList.add("is-new");
    setTimeout(() => {
      for (const node of tiles) node.classList.remove("is-new");
    }, 6000);
    placeholders[0].before(...tiles);
    for (const p of placeholders) p.remove();
    app.setBalance(made.balance_kopecks);
    const text = made.failed
      ? t("pictures_partly", { made: made.media.length, failed: made.failed, charged: money(made.charged_kopecks) })
      : t("pictures_made", { count: made.media.length, charged: money(made.charged_kopecks) });
    if (panel) panel.result(text, made.failed ? "partly" : "made");
    toast(text, made.failed ? "error" : "info");
    mediaOptions(true).catch(() => null);
  }

  // --- the Create panel -------------------------------------------------------------------------

  let panel = null;

  function createPanel() {
    const state = { image: { model: options.images[0] || null, aspect: "1:1", count: 1 }, video: { model: options.videos[0] || null, aspect: null } };
    if (state.video.model) state.video.aspect = state.video.model.aspects[0];
    if (!state.image.model) kind = "video";
    const prompt = el("textarea", { class: "input create-prompt", rows: 3, maxlength: PROMPT_MAX, testid: "create-prompt", placeholder: t("create_placeholder"), "aria-label": t("create_prompt") });
    const kindSwitch = el("div", { class: "segmented create-kind", role: "tablist" });
    const modelRow = el("div", { class: "create-row" });
    const shapeRow = el("div", { class: "create-row" });
    const countRow = el("div", { class: "create-row" });
    const priceNote = el("p", { class: "create-price", testid: "create-price" });
    const resultNote = el("p", { class: "create-result", testid: "create-result", hidden: true });
    const go = button(t("create_button"), { variant: "primary", class: "create-go", testid: "create-go" }, "sparkle");

    function current() {
      return state[kind];
    }

    function choice(name, value, label, selected, onpick, extra = null) {
      return el(
        "button",
        { type: "button", class: `choice${selected ? " selected" : ""}`, "aria-pressed": selected ? "true" : "false", testid: `${name}-${value}`, onclick: onpick },
        extra,
        el("span", { text: label }),
      );
    }

    function render() {
      const s = current();
      kindSwitch.replaceChildren(
        ...[
          options.images.length ? ["image", t("create_picture"), "image"] : null,
          options.videos.length ? ["video", t("create_video"), "video"] : null,
        ]
          .filter(Boolean)
          .map(([value, label, iconName]) =>
            el(
              "button",
              { type: "button", role: "tab", class: `segment-btn${kind === value ? " selected" : ""}`, "aria-selected": kind === value ? "true" : "false", testid: `create-kind-${value}`, onclick: () => { kind = value; resultNote.hidden = true; render(); } },
              icon(iconName),
              el("span", { text: label }),
            ),
          ),
      );
      kindSwitch.hidden = kindSwitch.children.length < 2;
      const models = kind === "image" ? options.images : options.videos;
      if (models.length > 1) {
        const select = el("select", { class: "input", testid: "create-model", "aria-label": t("model") });
        for (const m of models) {
          const option = el("option", { value: m.id, text: `${m.name} · ${money(m.price_kopecks)}` });
          option.selected = m.id === s.model.id;
          select.append(option);
        }
        select.addEventListener("change", () => {
          s.model = models.find((m) => m.id === select.value);
          if (!s.model.aspects.includes(s.aspect)) s.aspect = s.model.aspects[0];
          render();
        });
        modelRow.replaceChildren(el("span", { class: "create-label", text: t("model") }), select);
        modelRow.hidden = false;
      } else {
        modelRow.replaceChildren();
        modelRow.hidden = true;
      }
      shapeRow.replaceChildren(
        el("span", { class: "create-label", text: t("create_shape") }),
        el("div", { class: "choices", role: "group", "aria-label": t("create_shape") }, ...s.model.aspects.map((a) => choice("aspect", a.replace(":", "-"), aspectLabel(a), a === s.aspect, () => { s.aspect = a; render(); }, aspectFrame(a)))),
      );
      if (kind === "image") {
        countRow.replaceChildren(
          el("span", { class: "create-label", text: t("create_count") }),
          el("div", { class: "choices", role: "group", "aria-label": t("create_count") }, ...Array.from({ length: options.max_count }, (_, i) => i + 1).map((n) => choice("count", String(n), String(n), n === s.count, () => { s.count = n; render(); }))),
        );
        countRow.hidden = false;
      } else {
        countRow.hidden = true;
      }
      const count = kind === "image" ? s.count : 1;
      const total = s.model.price_kopecks * count;
      priceNote.replaceChildren(
        ...[
          el("span", { class: "create-price-main" }, t("create_price", { price: priceLine(s.model.price_kopecks, count) })),
          options.discount_percent ? el("span", { class: "badge badge-accent", text: t("create_discount", { percent: options.discount_percent }) }) : null,
          kind === "video" ? el("span", { class: "muted", text: t("create_video_length", { seconds: s.model.seconds }) }) : null,
        ].filter(Boolean),
      );
      const short = total > options.available_kopecks;
      priceNote.classList.toggle("is-short", short);
      go.querySelector("span").textContent = kind === "image" ? (count > 1 ? t("create_pictures", { count }) : t("create_one_picture")) : t("create_one_video");
    }

    async function submit() {
      const text = prompt.value.trim();
      if (!text) {
        prompt.focus();
        toast(t("create_describe"), "error");
        return;
      }
      const s = current();
      go.disabled = true;
      resultNote.hidden = true;
      try {
        if (kind === "image") {
          const placeholders = pending(s.count);
          try {
            const made = await drawPictures({ prompt: text, modelId: s.model.id, aspect: s.aspect, count: s.count });
            if (!alive) return;
            shown(made, placeholders);
          } catch (error) {
            for (const p of placeholders) p.remove();
            throw error;
          }
        } else {
          const video = await api("/api/media/videos", { method: "POST", body: { prompt: text, model_id: s.model.id, aspect: s.aspect } });
          if (!alive) return;
          if (grid.querySelector("[data-testid=empty]")) grid.replaceChildren();
          grid.prepend(tile(video));
          result(t("video_started"), "info");
          mediaOptions(true).catch(() => null);
        }
      } catch (error) {
        if (alive) problem(error);
      } finally {
        go.disabled = false;
      }
    }

    // kind: "made", "partly" (some failed) or "info".
    function result(text, kind) {
      resultNote.textContent = text;
      resultNote.classList.toggle("is-partly", kind === "partly");
      resultNote.classList.toggle("is-info", kind === "info");
      resultNote.hidden = false;
    }

    go.addEventListener("click", submit);
    prompt.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && (event.metaKey || event.ctrlKey)) submit();
    });
    render();
    const node = card(
      el("div", { class: "create-head" }, el("div", { class: "row-icon" }, icon("sparkle")), el("div", {}, el("h2", { text: t("create_title") }), el("p", { class: "muted small", text: t("create_hint") })), kindSwitch),
      prompt,
      modelRow,
      shapeRow,
      countRow,
      el("div", { class: "create-foot" }, priceNote, go),
      resultNote,
    );
    node.classList.add("create-card");
    node.dataset.testid = "create-panel";
    return {
      node,
      count: () => (state.image ? state.image.count : 1),
      result,
    };
  }

  async function loadOptions() {
    try {
      options = await mediaOptions(true);
    } catch (_) {
      options = null;
    }
    if (!alive || !options || (!options.images.length && !options.videos.length)) return;
    panel = createPanel();
    panelSlot.replaceChildren(panel.node);
  }

  async function load() {
    more.disabled = true;
    try {
      const query = before ? `?before=${before}` : "";
      const data = await api(`/api/media${query}`);
      if (!alive) return;
      if (!before) grid.replaceChildren();
      if (!before && !data.media.length) {
        grid.replaceChildren(
          panel
            ? empty(t("no_media"), t("no_media_create"), "image")
            : empty(t("no_media"), t("no_media_text"), "image", button(t("open_chat"), { variant: "primary", onclick: () => app.go("chat") }, "chat")),
        );
        return;
      }
      grid.append(...data.media.map(tile));
      before = data.next_before;
      more.hidden = !before;
    } catch (error) {
      if (alive) grid.replaceChildren(errorBox(error.message, load));
    } finally {
      more.disabled = false;
    }
  }

  // The panel first: tiles name their models by the options' names.
  loadOptions().then(load);
  return () => {
    alive = false;
    for (const stop of watching) stop();
  };
}

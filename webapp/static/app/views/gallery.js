// The gallery: the user's generated pictures and videos, newest first, paged. Each stays until
// the user deletes it here (or in the bot's /media), or deletes the account.

import { api } from "../api.js";
import { button, confirmAction, day, dialog, el, empty, errorBox, icon, iconButton, spinner, t, toast } from "../ui.js";

export function mount(root, params, app) {
  let alive = true;
  let before = null;
  app.setTitle(t("gallery"));
  app.setActions([]);
  const grid = el("div", { class: "gallery", testid: "gallery" });
  const more = button(t("load_more"), { class: "btn-block", testid: "more-media", hidden: true, onclick: () => load() });
  root.replaceChildren(grid, more);
  grid.append(spinner());

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

  function open(item, node) {
    const media =
      item.kind === "video"
        ? el("video", { src: item.url, controls: true, playsinline: true, class: "viewer-media", testid: "viewer-video" })
        : el("img", { src: item.url, alt: item.prompt, class: "viewer-media" });
    dialog({
      testid: "media-viewer",
      body: [media, el("p", { class: "viewer-prompt", text: item.prompt }), el("p", { class: "muted small", text: `${item.model_name || item.model_id} · ${day(item.created_at)}` })],
      actions: [
        { id: "delete", label: t("delete"), variant: "danger", testid: "viewer-delete" },
        { id: "download", label: t("download") },
        { id: "close", label: t("done"), variant: "primary" },
      ],
    }).then((chosen) => {
      if (chosen === "delete") remove(item, node);
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
        icon(item.status === "failed" ? "alert" : item.kind === "video" ? "video" : "image"),
        el("span", { text: item.status === "failed" ? t("media_failed") : t("media_pending") }),
      );
    }
    const node = el(
      "figure",
      { class: `tile tile-${item.kind}`, testid: "media", dataset: { id: String(item.id), kind: item.kind, status: item.status } },
      el("div", { class: "tile-frame" }, preview, item.kind === "video" ? el("span", { class: "tile-badge" }, icon("video"), item.duration_seconds ? `${item.duration_seconds}s` : "") : null),
      el("figcaption", {}, el("span", { class: "tile-prompt", text: item.prompt }), el("span", { class: "tile-meta", text: `${item.model_name || item.model_id} · ${day(item.created_at)}` })),
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
    return node;
  }

  async function load() {
    more.disabled = true;
    try {
      const query = before ? `?before=${before}` : "";
      const data = await api(`/api/media${query}`);
      if (!alive) return;
      if (!before) grid.replaceChildren();
      if (!before && !data.media.length) {
        root.replaceChildren(empty(t("no_media"), t("no_media_text"), "image", button(t("open_chat"), { variant: "primary", onclick: () => app.go("chat") }, "chat")));
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

  load();
  return () => {
    alive = false;
  };
}

// Making pictures and videos, shared by the gallery's Create panel and the chat's image mode:
// the models on offer with their prices for this user, drawing, and watching a video being made.

import { api } from "./api.js";
import { el, money, t } from "./ui.js";

let offered = null;

// The models on offer (GET /api/media/options), asked once per page; `fresh` asks again (the
// balance in it changes).
export async function mediaOptions(fresh = false) {
  if (!offered || fresh) offered = api("/api/media/options").catch((error) => {
    offered = null;
    throw error;
  });
  return offered;
}

// POST /api/media/images → {media, failed, charged_kopecks, balance_kopecks}.
export function drawPictures({ prompt, modelId = null, aspect = "1:1", count = 1 }) {
  return api("/api/media/images", { method: "POST", body: { prompt, model_id: modelId, aspect, count } });
}

export function moreLike(item, count = 1) {
  return api(`/api/media/${item.id}/more`, { method: "POST", body: { count } });
}

// Polls a video being made until it is ready or failed, every few seconds for at most about ten
// minutes (the worker gives up on the provider long before); `onChange` gets the item when its
// status changes. Returns a function that stops it.
export function watchMedia(item, onChange, { every = 2000, times = 300 } = {}) {
  let stopped = false;
  let left = times;
  let timer = null;
  const tick = async () => {
    if (stopped) return;
    left -= 1;
    try {
      const now = await api(`/api/media/${item.id}`);
      if (stopped) return;
      if (now.status !== "pending") {
        onChange(now);
        return;
      }
    } catch (error) {
      if (error.status === 404) return;
    }
    if (left > 0) timer = setTimeout(tick, every);
  };
  timer = setTimeout(tick, every);
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}

// The names of the shapes, with a small frame drawn in that shape.
export function aspectLabel(aspect) {
  return t(`aspect_${aspect.replace(":", "_")}`);
}

export function aspectFrame(aspect) {
  const [w, h] = aspect.split(":").map(Number);
  const scale = 18 / Math.max(w, h);
  const frame = el("span", { class: "aspect-frame", "aria-hidden": "true" });
  // Through the CSSOM: the page's policy refuses style attributes.
  frame.style.width = `${Math.round(w * scale)}px`;
  frame.style.height = `${Math.round(h * scale)}px`;
  return frame;
}

// "₽8.40 × 2 = ₽16.80", or the single price.
export function priceLine(each, count = 1) {
  if (count <= 1) return money(each);
  return `${money(each)} × ${count} = ${money(each * count)}`;
}

// "2 × ₽8.40", or the single price.
export function countedPrice(each, count = 1) {
  return count > 1 ? `${count} × ${money(each)}` : money(each);
}

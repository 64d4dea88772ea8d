// The dialog that shows a freshly made share link.

import { button, copyWithToast, dialog, el, t } from "./ui.js";

export async function showShareLink(url, tg) {
  const input = el("input", { class: "input mono", readonly: true, testid: "share-url", value: url });
  input.addEventListener("focus", () => input.select());
  await dialog({
    title: t("share_ready"),
    testid: "share-dialog",
    body: [
      el("p", { class: "muted", text: t("share_hint") }),
      el("div", { class: "copy-row" }, input, button(t("copy"), { variant: "primary", testid: "share-copy", onclick: () => copyWithToast(url) }, "copy")),
      el("p", { class: "muted small", text: t("share_revoke_hint") }),
    ],
    actions: [
      { id: "open", label: t("open"), testid: "share-open" },
      { id: "close", label: t("done"), variant: "primary", testid: "share-close" },
    ],
  }).then((chosen) => {
    if (chosen === "open") tg.openLink(url);
  });
}

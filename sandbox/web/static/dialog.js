// One modal dialog for alerts, confirmations and Mini App popups.

import { el } from "./render.js";

let settle = null;

function finish(value) {
  const dialog = document.getElementById("alert-dialog");
  const resolve = settle;
  settle = null;
  if (dialog.open) dialog.close();
  if (resolve) resolve(value);
}

// Escape closes the dialog without a choice. A close event queued by an earlier dialog must not
// settle the one showing now.
document.getElementById("alert-dialog").addEventListener("close", (event) => {
  if (!event.target.open) finish(null);
});

// Resolves to the id of the button pressed, or null when dismissed (Escape).
export function ask(title, text, buttons) {
  if (settle) finish(null);
  const dialog = document.getElementById("alert-dialog");
  document.getElementById("alert-title").textContent = title;
  document.getElementById("alert-text").textContent = text;
  document.getElementById("alert-buttons").replaceChildren(
    ...buttons.map((button) =>
      el("button", {
        type: "button",
        class: button.secondary ? "secondary" : null,
        "data-testid": button.testid || "dialog-button",
        text: button.text,
        onclick: () => finish(button.id),
      }),
    ),
  );
  return new Promise((resolve) => {
    settle = resolve;
    dialog.showModal();
  });
}

export function alertBox(title, text) {
  return ask(title, text, [{ id: "ok", text: "OK", testid: "alert-ok" }]);
}

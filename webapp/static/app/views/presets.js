// Presets: the list (use, edit, share, delete), the editor, and copying a shared preset.

import { api } from "../api.js";
import { showShareLink } from "../share.js";
import { button, card, confirmAction, el, empty, errorBox, field, icon, sectionTitle, spinner, t, toast } from "../ui.js";

const TITLE_MAX = 64;
const PROMPT_MAX = 4000;

// The token of a shared link (https://…/s/<token>) or a token on its own.
function shareToken(text) {
  const value = text.trim();
  const match = /\/s\/([A-Za-z0-9_-]{16,})\/?$/.exec(value) || /^([A-Za-z0-9_-]{16,})$/.exec(value);
  return match ? match[1] : null;
}

export async function copyShared(token, app) {
  try {
    const preset = await api(`/api/shared/${encodeURIComponent(token)}/copy`, { method: "POST" });
    toast(t("preset_copied", { title: preset.title }));
    return preset;
  } catch (error) {
    toast(error.message, "error");
    return null;
  }
}

export function mountList(root, params, app) {
  let alive = true;
  app.setTitle(t("presets"));
  app.setActions([button(t("new_preset"), { variant: "primary", class: "btn-sm", testid: "new-preset", onclick: () => app.go("presets/new") }, "plus")]);
  const listBox = el("div", { class: "preset-list", testid: "preset-list" }, spinner());
  const linkInput = el("input", { class: "input", type: "url", placeholder: t("shared_link_placeholder"), testid: "shared-link-input", "aria-label": t("add_from_link") });
  const addForm = el(
    "form",
    { class: "copy-row", testid: "copy-shared-form" },
    linkInput,
    el("button", { type: "submit", class: "btn btn-secondary", testid: "copy-shared" }, icon("download"), el("span", { text: t("add") })),
  );
  addForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    const token = shareToken(linkInput.value);
    if (!token) {
      toast(t("not_a_share_link"), "error");
      return;
    }
    if (await copyShared(token, app)) {
      linkInput.value = "";
      load();
    }
  });
  root.replaceChildren(
    el("p", { class: "lead muted", text: t("presets_lead") }),
    listBox,
    card(sectionTitle(t("add_from_link")), el("p", { class: "muted small", text: t("add_from_link_hint") }), addForm),
  );

  function presetCard(preset) {
    const use = preset.active
      ? button(t("in_use"), { variant: "success", class: "btn-sm", testid: "preset-stop", onclick: () => stopUsing() }, "check")
      : button(t("use"), { variant: "primary", class: "btn-sm", testid: "preset-use", onclick: () => usePreset(preset) });
    return el(
      "article",
      { class: `preset${preset.active ? " active" : ""}`, testid: "preset", dataset: { id: String(preset.id) } },
      el(
        "div",
        { class: "preset-main" },
        el("div", { class: "preset-head" }, el("h3", { class: "preset-title", testid: "preset-title-text", text: preset.title }), preset.active ? el("span", { class: "badge badge-accent", testid: "preset-active", text: t("active") }) : null),
        el("p", { class: "preset-prompt", text: preset.system_prompt }),
      ),
      el(
        "div",
        { class: "preset-actions" },
        use,
        button(t("edit"), { class: "btn-sm", testid: "preset-edit", onclick: () => app.go(`presets/${preset.id}`) }, "edit"),
        button(t("share"), { class: "btn-sm", testid: "preset-share", onclick: () => share(preset) }, "share"),
        button("", { variant: "ghost", class: "btn-sm btn-icon-only", testid: "preset-delete", "aria-label": t("delete"), title: t("delete"), onclick: () => remove(preset) }, "trash"),
      ),
    );
  }

  async function load() {
    try {
      const data = await api("/api/presets");
      if (!alive) return;
      if (!data.presets.length) {
        listBox.replaceChildren(empty(t("no_presets"), t("no_presets_text"), "bookmark", button(t("new_preset"), { variant: "primary", onclick: () => app.go("presets/new") }, "plus")));
        return;
      }
      listBox.replaceChildren(...data.presets.map(presetCard));
    } catch (error) {
      if (alive) listBox.replaceChildren(errorBox(error.message, load));
    }
  }

  async function usePreset(preset) {
    try {
      await api(`/api/presets/${preset.id}/use`, { method: "POST" });
      toast(t("preset_used", { title: preset.title }));
      load();
    } catch (error) {
      toast(error.message, "error");
    }
  }

  async function stopUsing() {
    try {
      await api("/api/presets/active", { method: "DELETE" });
      toast(t("preset_stopped"));
      load();
    } catch (error) {
      toast(error.message, "error");
    }
  }

  async function share(preset) {
    try {
      const link = await api(`/api/presets/${preset.id}/share`, { method: "POST" });
      await showShareLink(link.url, app.tg);
    } catch (error) {
      toast(error.message, "error");
    }
  }

  async function remove(preset) {
    const ok = await confirmAction({ title: t("delete_preset_title", { title: preset.title }), text: t("delete_preset_text"), confirm: t("delete"), danger: true });
    if (!ok) return;
    try {
      await api(`/api/presets/${preset.id}`, { method: "DELETE" });
      toast(t("preset_deleted"));
      load();
    } catch (error) {
      toast(error.message, "error");
    }
  }

  load();
  return () => {
    alive = false;
  };
}

export function mountEditor(root, params, app) {
  let alive = true;
  const editing = params.id ? Number(params.id) : null;
  app.setTitle(editing ? t("edit_preset") : t("new_preset"));
  app.setActions([]);
  const title = el("input", { class: "input", maxlength: TITLE_MAX, required: true, testid: "preset-title", placeholder: t("preset_title_placeholder") });
  const prompt = el("textarea", { class: "input textarea", maxlength: PROMPT_MAX, rows: 10, required: true, testid: "preset-prompt", placeholder: t("preset_prompt_placeholder") });
  const titleCount = el("span", { class: "counter" });
  const promptCount = el("span", { class: "counter" });
  const save = el("button", { type: "submit", class: "btn btn-primary btn-block tg-main-hidden", testid: "preset-save" }, el("span", { text: t("save") }));
  const form = el(
    "form",
    { class: "card form", testid: "preset-form" },
    field({ label: t("preset_title"), input: title, counter: titleCount }),
    field({ label: t("preset_prompt"), input: prompt, counter: promptCount, hint: t("preset_prompt_hint") }),
    save,
  );
  root.replaceChildren(form);

  const counts = () => {
    titleCount.textContent = `${title.value.length}/${TITLE_MAX}`;
    promptCount.textContent = `${prompt.value.length}/${PROMPT_MAX}`;
    const valid = title.value.trim().length > 0 && prompt.value.trim().length > 0;
    save.disabled = !valid;
    if (app.tg.hasHost) app.tg.setMainButton({ text: t("save"), visible: true, active: valid, onClick: submit });
  };
  title.addEventListener("input", counts);
  prompt.addEventListener("input", counts);

  async function submit() {
    if (!title.value.trim() || !prompt.value.trim()) return;
    save.disabled = true;
    if (app.tg.hasHost) app.tg.setMainButton({ text: t("save"), visible: true, active: false, progress: true, onClick: submit });
    try {
      const body = { title: title.value, system_prompt: prompt.value };
      if (editing) await api(`/api/presets/${editing}`, { method: "PUT", body });
      else await api("/api/presets", { method: "POST", body });
      toast(editing ? t("preset_saved") : t("preset_created"));
      app.go("presets", { replace: true });
    } catch (error) {
      toast(error.message, "error");
      counts();
    }
  }
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    submit();
  });

  async function load() {
    if (!editing) {
      counts();
      title.focus();
      return;
    }
    try {
      const data = await api("/api/presets");
      if (!alive) return;
      const preset = data.presets.find((p) => p.id === editing);
      if (!preset) {
        root.replaceChildren(errorBox(t("preset_not_found")));
        return;
      }
      title.value = preset.title;
      prompt.value = preset.system_prompt;
      counts();
    } catch (error) {
      if (alive) root.replaceChildren(errorBox(error.message, load));
    }
  }

  load();
  return () => {
    alive = false;
    if (app.tg.hasHost) app.tg.setMainButton({ visible: false });
  };
}

// Signing in from a normal browser: email and password (with sign-up and the emailed
// confirmation link), a sign-in link by email, Google and Yandex. The forms are in the page; this
// wires them.

import { ApiError, useTokens } from "./api.js";
import { lang, settings, t } from "./ui.js";

const root = document.getElementById("auth");
const info = document.getElementById("auth-info");
const error = document.getElementById("auth-error");
const forms = { signin: document.getElementById("signin-form"), signup: document.getElementById("signup-form") };
const checkMail = document.getElementById("check-mail");
let onSignedIn = null;
let pendingEmail = "";

async function post(path, body) {
  const response = await fetch(path, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
    credentials: "same-origin",
  });
  let data = {};
  try {
    data = await response.json();
  } catch (_) {
    data = {};
  }
  if (!response.ok) throw new ApiError(response.status, data.error, data.message);
  return { status: response.status, data };
}

function say(node, text) {
  node.textContent = text || "";
  node.hidden = !text;
}

function busy(form, on) {
  for (const control of form.querySelectorAll("button, input")) control.disabled = on;
  form.classList.toggle("is-busy", on);
}

function tab(name) {
  for (const button of root.querySelectorAll("[data-tab]")) {
    const selected = button.dataset.tab === name;
    button.setAttribute("aria-selected", selected ? "true" : "false");
    button.classList.toggle("active", selected);
  }
  forms.signin.hidden = name !== "signin";
  forms.signup.hidden = name !== "signup";
  checkMail.hidden = true;
  root.dataset.tab = name;
  say(error, "");
}

async function signIn(email, password) {
  const { data } = await post("/api/auth/sign-in", { email, password });
  useTokens(data, { keepRefresh: false });
  root.hidden = true;
  if (onSignedIn) onSignedIn();
}

forms.signin.addEventListener("submit", async (event) => {
  event.preventDefault();
  const email = forms.signin.elements.email.value.trim();
  const password = forms.signin.elements.password.value;
  if (!email || !password) return;
  say(error, "");
  say(info, "");
  busy(forms.signin, true);
  try {
    await signIn(email, password);
  } catch (problem) {
    say(error, problem.message);
  } finally {
    busy(forms.signin, false);
  }
});

forms.signup.addEventListener("submit", async (event) => {
  event.preventDefault();
  const email = forms.signup.elements.email.value.trim();
  const password = forms.signup.elements.password.value;
  const accepted = forms.signup.elements.accept.checked;
  say(error, "");
  say(info, "");
  if (!accepted) {
    say(error, t("accept_policy_first"));
    return;
  }
  busy(forms.signup, true);
  try {
    const { status } = await post("/api/auth/register", { email, password, accept_policy: true, language: lang });
    if (status === 201) {
      await signIn(email, password);
      return;
    }
    pendingEmail = email;
    forms.signup.hidden = true;
    document.getElementById("check-mail-text").textContent = t("check_mail", { email });
    checkMail.hidden = false;
  } catch (problem) {
    say(error, problem.message);
  } finally {
    busy(forms.signup, false);
  }
});

document.getElementById("resend").addEventListener("click", async (event) => {
  const button = event.currentTarget;
  button.disabled = true;
  try {
    await post("/api/auth/confirm/resend", { email: pendingEmail });
    say(info, t("mail_resent"));
  } catch (problem) {
    say(error, problem.message);
  } finally {
    button.disabled = false;
  }
});

// A sign-in link by email: the way in that failed password attempts never lock.
document.getElementById("email-link").addEventListener("click", async (event) => {
  const email = forms.signin.elements.email.value.trim();
  say(error, "");
  say(info, "");
  if (!email) {
    say(error, t("enter_email_first"));
    return;
  }
  const button = event.currentTarget;
  button.disabled = true;
  try {
    await post("/api/auth/email-link", { email });
    say(info, t("sign_in_link_sent", { email }));
  } catch (problem) {
    say(error, problem.message);
  } finally {
    button.disabled = false;
  }
});

document.getElementById("back-to-signin").addEventListener("click", () => tab("signin"));

for (const button of root.querySelectorAll("[data-tab]")) button.addEventListener("click", () => tab(button.dataset.tab));

for (const button of root.querySelectorAll("[data-provider]")) {
  button.addEventListener("click", async () => {
    const signingUp = root.dataset.tab === "signup";
    if (signingUp && !forms.signup.elements.accept.checked) {
      say(error, t("accept_policy_first"));
      return;
    }
    button.disabled = true;
    try {
      await startOAuth(button.dataset.provider, signingUp);
    } catch (problem) {
      say(error, problem.message);
      button.disabled = false;
    }
  });
}

// Off to Google or Yandex; ``acceptPolicy``: the person accepted the policy here (a newcomer).
export async function startOAuth(provider, acceptPolicy) {
  const response = await fetch(`/api/auth/${encodeURIComponent(provider)}/start?accept_policy=${acceptPolicy ? 1 : 0}`, {
    headers: { Accept: "application/json" },
    credentials: "same-origin",
  });
  const data = await response.json();
  if (!response.ok) throw new ApiError(response.status, data.error, data.message);
  window.location.assign(data.authorize_url);
}

// The link from the confirmation mail: the address is confirmed, then the person signs in.
export async function confirmEmail(token) {
  try {
    await post("/api/auth/confirm", { token });
    return { ok: true, message: t("email_confirmed") };
  } catch (problem) {
    return { ok: false, message: problem.message };
  }
}

// The link from a sign-in mail: a session, or why not.
export async function signInWithLink(token) {
  try {
    const { data } = await post("/api/auth/email-link/sign-in", { token });
    useTokens(data, { keepRefresh: false });
    return { ok: true };
  } catch (problem) {
    return { ok: false, message: problem.message };
  }
}

export function showSignIn(done, { message = "", problem = "", mode = "signin" } = {}) {
  onSignedIn = done;
  const botLink = document.getElementById("bot-link");
  if (botLink && settings.bot_username) botLink.href = `https://t.me/${encodeURIComponent(settings.bot_username)}`;
  if (!settings.email_signup) root.querySelector('[data-tab="signup"]').hidden = true;
  document.getElementById("email-link").hidden = !settings.email_link;
  tab(mode);
  say(info, message);
  say(error, problem);
  root.hidden = false;
  const first = forms[mode].querySelector("input");
  if (first && window.matchMedia("(pointer: fine)").matches) first.focus();
}

export function hideSignIn() {
  root.hidden = true;
}

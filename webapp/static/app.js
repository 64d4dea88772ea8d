// The Mini App: signs in with Telegram's launch data and shows the account.
// Works without telegram-web-app.js: Telegram passes the launch data in the URL fragment.

const root = document.getElementById("app");
const text = (key) => root.dataset[key] || "";

function launchData() {
  const fromSdk = window.Telegram && window.Telegram.WebApp && window.Telegram.WebApp.initData;
  if (fromSdk) return fromSdk;
  const fragment = new URLSearchParams(window.location.hash.slice(1));
  return fragment.get("tgWebAppData") || "";
}

function applyTheme() {
  const fragment = new URLSearchParams(window.location.hash.slice(1));
  const raw = fragment.get("tgWebAppThemeParams");
  if (!raw) return;
  try {
    const theme = JSON.parse(raw);
    for (const [name, value] of Object.entries(theme)) {
      if (/^#[0-9a-fA-F]{3,8}$/.test(value)) {
        document.documentElement.style.setProperty(`--tg-theme-${name.replace(/_/g, "-")}`, value);
      }
    }
  } catch (_) { /* a malformed theme leaves the default look */ }
}

function show(nodes) {
  root.replaceChildren(...nodes);
}

function status(message, isError) {
  const p = document.createElement("p");
  p.className = isError ? "status error" : "status";
  p.dataset.testid = "status";
  p.textContent = message;
  show([p]);
}

function card(label, value, testid) {
  const box = document.createElement("div");
  box.className = "card";
  const l = document.createElement("div");
  l.className = "label";
  l.textContent = label;
  const v = document.createElement("div");
  v.className = "value";
  v.dataset.testid = testid;
  v.textContent = value;
  box.append(l, v);
  return box;
}

function roubles(kopecks, language) {
  return new Intl.NumberFormat(language === "ru" ? "ru-RU" : "en-US", {
    style: "currency", currency: "RUB", currencyDisplay: "narrowSymbol",
  }).format(kopecks / 100);
}

async function signIn(initData) {
  const cached = sessionStorage.getItem("netroom.token");
  if (cached) return cached;
  const response = await fetch("/api/auth/telegram", {
    method: "POST",
    headers: { Authorization: `tma ${initData}` },
  });
  const body = await response.json();
  if (!response.ok) throw new Error(body.message || text("textFailed"));
  sessionStorage.setItem("netroom.token", body.access_token);
  return body.access_token;
}

async function main() {
  applyTheme();
  const initData = launchData();
  if (!initData) {
    status(text("textOutside"), false);
    return;
  }
  try {
    const token = await signIn(initData);
    const response = await fetch("/api/me", { headers: { Authorization: `Bearer ${token}` } });
    const me = await response.json();
    if (!response.ok) {
      sessionStorage.removeItem("netroom.token");
      throw new Error(me.message || text("textFailed"));
    }
    const hello = document.createElement("h1");
    hello.dataset.testid = "hello";
    hello.textContent = text("textHello").replace("{name}", me.name || me.username || "");
    show([
      hello,
      card(text("textBalance"), roubles(me.balance_kopecks, me.language), "balance"),
      card(text("textModel"), me.model || text("textDefaultModel"), "model"),
      card(text("textReferrals"), String(me.referrals.level1), "referrals"),
    ]);
  } catch (error) {
    status(error.message, true);
  }
}

main();

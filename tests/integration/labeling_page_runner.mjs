// Runs the labeler API's page (its <script>) in Node against a live API, with a small fake
// DOM, and labels the way a person would: token, a class button, the "s" key, a typed answer.
// Usage: node labeling_page_runner.mjs BASE_URL TOKEN ; prints what it saw as JSON.
//        node labeling_page_runner.mjs BASE_URL --name LABELER ; an API without tokens and a
//        multi-label model: the labeler's name, two class toggles and Submit.
//        node labeling_page_runner.mjs BASE_URL --races LABELER ; an API without tokens: an empty
//        lease then a failed one before the items come, double presses, modifier keys, a typed
//        class name that looks like a number, and a skip and a label of items whose lease ran
//        out and went to another labeler.
import vm from "node:vm";

const [base, token, name] = process.argv.slice(2);

class El {
  constructor(tag, id = "") {
    this.tagName = tag.toUpperCase();
    this.id = id;
    this.children = [];
    this.listeners = {};
    this.hidden = false;
    this.value = "";
    this.className = "";
    this.ownText = "";
  }
  get textContent() { return this.ownText + this.children.map((c) => c.textContent).join(""); }
  set textContent(t) { this.ownText = String(t); this.children = []; }
  appendChild(c) { this.children.push(c); return c; }
  append(...cs) { this.children.push(...cs); }
  replaceChildren(...cs) { this.ownText = ""; this.children = cs; }
  addEventListener(type, fn) { (this.listeners[type] ||= []).push(fn); }
  dispatch(type, event = {}) {
    const e = { target: this, preventDefault() { this.defaultPrevented = true; }, ...event };
    for (const fn of this.listeners[type] || []) fn(e);
    return e;
  }
  click() { this.dispatch("click"); }
  focus() { document.activeElement = this; }
  blur() { if (document.activeElement === this) document.activeElement = body; }
  find(pred) { return [this, ...this.children.flatMap((c) => c.find(pred))].filter(pred); }
}

const html = await (await fetch(base + "/")).text();
const script = html.match(/<script>([\s\S]*)<\/script>/)[1];
const byId = {};
for (const m of html.matchAll(/<(\w+)[^>]*\sid="([^"]+)"([^>]*)>/g)) {
  byId[m[2]] = new El(m[1], m[2]);
  if (/\shidden/.test(m[0])) byId[m[2]].hidden = true;
}
const body = new El("body");
const document = {
  activeElement: body,
  body,
  getElementById: (id) => byId[id] || null,
  createElement: (tag) => new El(tag),
  listeners: {},
  addEventListener(type, fn) { (this.listeners[type] ||= []).push(fn); },
};
const storage = (map) => ({ getItem: (k) => (map.has(k) ? map.get(k) : null), setItem: (k, v) => map.set(k, String(v)), removeItem: (k) => map.delete(k) });
const store = new Map();
const session = new Map();
const localStorage = storage(store);
const sessionStorage = storage(session);
// --races: the page's first lease answers "nothing", its second fails as a dropped connection
// would; the page's 5 s wait is cut to 50 ms. Every real lease reply is kept.
let leases = 0;
const leased = [];
async function pageFetch(path, opts) {
  if (token === "--races" && path.startsWith("/lease")) {
    leases += 1;
    if (leases === 1) return new Response(JSON.stringify({ items: [] }), { status: 200 });
    if (leases === 2) throw new TypeError("fetch failed");
  }
  const reply = await fetch(base + path, opts);
  if (path.startsWith("/lease") && reply.ok) leased.push(...(await reply.clone().json()).items);
  return reply;
}
const pageSetTimeout = (fn, ms) => setTimeout(fn, token === "--races" && ms >= 5000 ? 50 : ms);
const context = vm.createContext({ document, localStorage, sessionStorage, fetch: pageFetch, setTimeout: pageSetTimeout, clearTimeout, performance, crypto, console });
vm.runInContext(script, context);

async function until(what, cond, ms = 10000) {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error("timed out waiting for " + what + "; message: " + byId.message.textContent);
    await new Promise((r) => setTimeout(r, 20));
  }
}
const shownId = () => byId["item-id"].textContent.replace(/^item /, "");
const seen = { loginFirst: !byId.login.hidden && byId.work.hidden, shown: [], messages: [] };

if (token === "--name") {
  byId.labeler.value = name;
  byId.start.click();
  await until("an item", () => !byId.work.hidden && shownId());
  seen.shown.push(shownId());
  byId.classes.children[0].click();
  byId.classes.children[2].click();
  byId.classes.children[0].click();
  byId.classes.children[0].click();
  seen.on = byId.classes.children.map((b) => b.className);
  byId.free.dispatch("submit");
  await until("the next item after the labels", () => shownId() !== seen.shown.at(-1));
  seen.shown.push(shownId());
  seen.stored = Object.fromEntries(store);
  seen.session = Object.fromEntries(session);
  console.log(JSON.stringify(seen));
  process.exit(0);
}

if (token === "--races") {
  const settle = () => new Promise((r) => setTimeout(r, 300)); // (time for a second request, if one went)
  const key = (e) => { for (const fn of document.listeners.keydown) fn({ target: body, ...e }); };
  byId.labeler.value = name;
  byId.start.click();
  await until("an item after an empty and a failed lease", () => !byId.work.hidden && shownId());
  seen.leases = leases;
  seen.shown.push(shownId());
  // A double click on a class: one label, and the next item, not the one after.
  byId.classes.children[0].click();
  byId.classes.children[0].click();
  await until("the next item after a label", () => shownId() !== seen.shown.at(-1));
  await settle();
  seen.shown.push(shownId());
  // Ctrl+S (save the page), Alt+1 and a held-down key are not answers.
  key({ key: "s", ctrlKey: true });
  key({ key: "s", metaKey: true });
  key({ key: "1", altKey: true });
  key({ key: "s", repeat: true });
  await settle();
  seen.shown.push(shownId());
  // "s" twice quickly: one skip, the next item.
  key({ key: "s" });
  key({ key: "s" });
  await until("the next item after a skip", () => shownId() !== seen.shown.at(-1));
  await settle();
  seen.shown.push(shownId());
  // A typed class name that looks like a number is the class, a string.
  byId.answer.value = " 02 ";
  byId.free.dispatch("submit");
  await until("the next item after a typed label", () => shownId() !== seen.shown.at(-1));
  seen.shown.push(shownId());
  // The page's leases run out and another labeler takes the items: "s" and a class move on.
  const ends = Math.max(...leased.map((i) => i.lease_expires_at));
  while (Date.now() / 1000 < ends + 0.3) await new Promise((r) => setTimeout(r, 50));
  seen.taken = (await (await fetch(base + "/lease?k=100&labeler=zed")).json()).items.map((i) => i.id);
  key({ key: "s" });
  await until("the next item after a refused skip", () => shownId() !== seen.shown.at(-1), 3000);
  seen.shown.push(shownId());
  seen.messages.push(byId.message.textContent);
  byId.classes.children[1].click();
  await until("the end of the batch after a refused label", () => byId.work.hidden, 3000);
  seen.messages.push(byId.message.textContent);
  console.log(JSON.stringify(seen));
  process.exit(0);
}

// A first visit: no labeler stored, so the login form; a wrong token is refused.
byId.token.value = "not-a-token-of-this-api";
byId.start.click();
await until("the login again after a wrong token", () => byId.message.textContent.includes("Authorization"));
seen.messages.push(byId.message.textContent);
byId.token.value = token;
byId.start.click();
await until("an item", () => !byId.work.hidden && shownId());
seen.shown.push(shownId());
seen.buttons = byId.classes.children.map((b) => b.textContent);
const md = byId.metadata.children;
seen.metadata = {};
for (let i = 0; i < md.length; i += 2) {
  const v = md[i + 1].children[0];
  seen.metadata[md[i].textContent] = { tag: v.tagName, text: v.textContent, src: v.src || null };
}
seen.counts = byId.counts.textContent;

// Second class's button: a label; then the "s" key: a skip.
byId.classes.children[1].click();
await until("the next item after a label", () => shownId() !== seen.shown.at(-1));
seen.shown.push(shownId());
for (const fn of document.listeners.keydown) fn({ key: "s", target: body });
await until("the next item after a skip", () => shownId() !== seen.shown.at(-1));
seen.shown.push(shownId());

// A typed answer the campaign refuses stays on the item with the reason; a good one goes.
byId.answer.value = "cat";
byId.free.dispatch("submit");
await until("the refusal", () => byId.message.textContent.includes("field"));
seen.messages.push(byId.message.textContent);
seen.stillShown = shownId();
byId.answer.value = "2";
byId.free.dispatch("submit");
await until("the next item after a typed label", () => shownId() !== seen.stillShown);
seen.shown.push(shownId());
seen.stored = Object.fromEntries(store);
seen.session = Object.fromEntries(session);
// Switch labeler: the next person at this screen is not signed in with ann's token.
byId.logout.click();
await until("the login", () => !byId.login.hidden);
seen.tokenAfterLogout = byId.token.value;
console.log(JSON.stringify(seen));
process.exit(0);

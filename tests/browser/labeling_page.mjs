// The labeling page in a real Chromium (Debian's /usr/bin/chromium, driven by playwright-core):
// what the fake DOM of ../integration/labeling_page_runner.mjs cannot show, e.g. that the
// page's Content-Security-Policy lets its own script and style run and blocks nothing else.
// Usage: node labeling_page.mjs BASE_URL TOKEN CHROMIUM [--work] ; prints what it saw as JSON.
//        --work: a labeler at work on feature-only items: the features table, the stop banner,
//        a typed answer then 40 answers by keyboard, their own count and rate, a correction of
//        the last answer, and "/" to type again.
//        --tags: a multi-label campaign: keys pick tags and Enter sends them, an empty Enter sends nothing,
//        a clicked tag then Enter, and 0 for none of these.
import { chromium } from "playwright-core";

const [base, token, executablePath, mode] = process.argv.slice(2);
const browser = await chromium.launch({ executablePath, args: ["--no-sandbox"] });
try {
  if (mode === "--work") {
    console.log(JSON.stringify(await work(await browser.newPage())));
    process.exit(0);
  }
  if (mode === "--tags") {
    console.log(JSON.stringify(await tags(await browser.newPage())));
    process.exit(0);
  }
  const page = await browser.newPage();
  const console_ = [];
  page.on("console", (m) => { if (m.type() === "error" || m.type() === "warning") console_.push(m.text()); });
  page.on("pageerror", (e) => console_.push("pageerror: " + e.message));
  const reply = await page.goto(base + "/");
  const shown = () => page.evaluate(() => document.getElementById("item-id").textContent.replace(/^item /, ""));
  const waitFor = (id) => page.waitForFunction((want) => document.getElementById("item-id").textContent === "item " + want, id);
  await page.fill("#token", token);
  await page.click("#start");
  await waitFor("i0");
  const seen = { csp: reply.headers()["content-security-policy"] || "", shown: [await shown()] };
  seen.metadata = await page.evaluate(() => [...document.querySelectorAll("#metadata dd")].map((d) => d.innerHTML));
  seen.image = await page.evaluate(() => { const i = document.querySelector("#metadata img"); return i ? i.complete && i.naturalWidth : null; });
  seen.buttons = await page.evaluate(() => [...document.querySelectorAll("#classes button")].map((b) => b.textContent));
  await page.click("#classes button:nth-child(2)");
  await waitFor("i1");
  seen.shown.push(await shown());
  await page.keyboard.press("s");
  await waitFor("i2");
  seen.shown.push(await shown());
  await page.fill("#answer", "cat");
  await page.press("#answer", "Enter");
  await page.waitForFunction(() => document.getElementById("message").textContent.includes("field"));
  seen.refused = await page.textContent("#message");
  await page.fill("#answer", "2");
  await page.click("#submit");
  await waitFor("i3");
  seen.shown.push(await shown());
  seen.console = console_;
  seen.session = await page.evaluate(() => sessionStorage.getItem("activestream.token"));
  console.log(JSON.stringify(seen));
} finally {
  await browser.close();
}

// The page opened and signed in, its errors collected; what a labeler's script reads of it.
async function signedIn(page) {
  const errors = [];
  page.on("pageerror", (e) => errors.push("pageerror: " + e.message));
  page.on("console", (m) => { if (m.type() === "error") errors.push(m.text()); });
  await page.goto(base + "/");
  const shown = () => page.evaluate(() => document.getElementById("item-id").textContent.replace(/^item /, ""));
  const moved = (from) => page.waitForFunction((id) => { const t = document.getElementById("item-id").textContent; return t && t !== "item " + id; }, from);
  await page.fill("#token", token);
  await page.click("#start");
  await page.waitForFunction(() => document.getElementById("item-id").textContent !== "");
  return { errors, shown, moved };
}

async function work(page) {
  const { errors, shown, moved } = await signedIn(page);
  const focused = () => page.evaluate(() => (document.activeElement ? document.activeElement.id || document.activeElement.tagName : null));
  const seen = { first: await shown(), answered: [] };
  seen.features = await page.evaluate(() => [...document.querySelectorAll("#features tr")].map((r) => [...r.children].map((c) => c.tagName + ":" + c.textContent)));
  seen.stop = await page.evaluate(() => { const b = document.getElementById("stop"); return b.hidden ? null : b.textContent; });
  // A typed answer: click into the box, type, Enter. Focus leaves the box with it.
  await page.click("#answer");
  await page.keyboard.type("2");
  await page.keyboard.press("Enter");
  await moved(seen.first);
  seen.answered.push([seen.first, "2"]);
  seen.focusAfterTyped = await focused();
  // 40 answers by keyboard, each once its item is on screen, as a labeler reads and presses.
  const t0 = Date.now();
  for (let j = 0; j < 40; j++) {
    const id = await shown();
    const key = String((j % 3) + 1);
    await page.keyboard.press(key);
    await moved(id);
    seen.answered.push([id, key]);
  }
  seen.keyboardSeconds = (Date.now() - t0) / 1000;
  seen.answerValue = await page.inputValue("#answer");
  seen.mine = await page.textContent("#mine");
  // Correct the last answer: "u" shows its item again, a class labels it anew, the item on screen comes back.
  const onScreen = await shown();
  await page.keyboard.press("u");
  await moved(onScreen);
  seen.correcting = { item: await shown(), note: await page.textContent("#correcting") };
  await page.keyboard.press("3");
  await page.waitForFunction((id) => document.getElementById("item-id").textContent === "item " + id, onScreen);
  seen.afterCorrection = { item: await shown(), message: await page.textContent("#message"), note: await page.isHidden("#correcting") };
  seen.mineAfter = await page.textContent("#mine");
  // "/" opens the box for typing (without typing the "/"), Escape leaves it.
  await page.keyboard.press("/");
  seen.focusAfterSlash = await focused();
  seen.valueAfterSlash = await page.inputValue("#answer");
  await page.keyboard.press("Escape");
  seen.focusAfterEscape = await focused();
  seen.errors = errors;
  return seen;
}

async function tags(page) {
  const { errors, shown, moved } = await signedIn(page);
  const seen = { buttons: await page.evaluate(() => [...document.querySelectorAll("#classes button")].map((b) => b.textContent)), answered: [] };
  let id = await shown();
  await page.keyboard.press("1");
  await page.keyboard.press("3");
  await page.keyboard.press("Enter");
  await moved(id);
  seen.answered.push(id);
  id = await shown();
  await page.keyboard.press("Enter"); // (nothing picked: nothing sent)
  await page.waitForFunction(() => document.getElementById("message").textContent.includes("none of these"));
  seen.emptyEnter = { item: await shown(), message: await page.textContent("#message") };
  await page.click("#classes button:nth-child(2)"); // (the mouse picks; the focused button must not be clicked again by Enter)
  await page.keyboard.press("Enter");
  await moved(id);
  seen.answered.push(id);
  id = await shown();
  await page.keyboard.press("0");
  await moved(id);
  seen.answered.push(id);
  seen.errors = errors;
  return seen;
}

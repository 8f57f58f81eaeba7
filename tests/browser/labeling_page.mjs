// The labeling page in a real Chromium (Debian's /usr/bin/chromium, driven by playwright-core):
// what the fake DOM of ../integration/labeling_page_runner.mjs cannot show, e.g. that the
// page's Content-Security-Policy lets its own script and style run and blocks nothing else.
// Usage: node labeling_page.mjs BASE_URL TOKEN CHROMIUM ; prints what it saw as JSON.
import { chromium } from "playwright-core";

const [base, token, executablePath] = process.argv.slice(2);
const browser = await chromium.launch({ executablePath, args: ["--no-sandbox"] });
try {
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

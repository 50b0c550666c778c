// Drives GraphiQL on a running gateway in Debian's headless Chromium, with every
// other host unreachable, as a person would: the IDE renders, the docs explorer
// lists `usageByDay`, and running a query shows the answer.
//
//   node .ci/browser/graphiql-check.mjs BASE_URL EXPECTED_TOKENS_USED [API_KEY]
//
// BASE_URL is http://127.0.0.1:<port>. EXPECTED_TOKENS_USED was fetched with curl.
// With API_KEY (the gateway runs with auth on) the page must load without a key,
// and the query runs only after the key is put into GraphiQL's headers editor.
import { chromium } from "playwright-core";

const [base, expected, apiKey] = process.argv.slice(2);
if (!base || expected === undefined) {
  console.error("usage: graphiql-check.mjs BASE_URL EXPECTED_TOKENS_USED [API_KEY]");
  process.exit(2);
}
const origin = new URL(base).origin;
const mode = apiKey ? "auth on" : "auth off";
const fail = (msg) => {
  throw new Error(`${mode}: ${msg}`);
};

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: [
    "--no-sandbox",
    "--disable-gpu",
    // Belt and braces with the request filter below: no other host resolves.
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
  ],
});
let page;
const outside = [];
const problems = [];
let posts = [];
try {
  const context = await browser.newContext();
  await context.route("**/*", (route) => {
    const url = route.request().url();
    if (new URL(url).origin === origin) return route.continue();
    outside.push(url);
    return route.abort();
  });
  page = await context.newPage();
  await page.addInitScript(() => {
    window.__cspViolations = [];
    document.addEventListener("securitypolicyviolation", (e) =>
      window.__cspViolations.push(`${e.violatedDirective} blocked ${e.blockedURI || "inline"}`),
    );
  });
  page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
  page.on("console", (m) => {
    if (m.type() === "error") problems.push(`console error: ${m.text()}`);
  });
  page.on("request", (r) => {
    if (r.method() === "POST" && new URL(r.url()).pathname === "/graphql") {
      posts.push({ headers: r.headers(), body: r.postData() || "" });
    }
  });

  const query = "{ summary { tokensUsed } }";
  const response = await page.goto(`${origin}/graphql#query=${encodeURIComponent(query)}`);
  if (!response || response.status() !== 200) fail(`GET /graphql answered ${response && response.status()}`);
  if (!(response.headers()["content-security-policy"] || "").includes("script-src 'self'"))
    fail("the page came without its Content-Security-Policy");
  await page.locator(".graphiql-container").waitFor({ timeout: 20000 });
  await page.locator(".graphiql-query-editor .CodeMirror").waitFor({ timeout: 20000 });
  console.log(`graphiql (${mode}): the IDE rendered (.graphiql-container, query editor)`);

  if (apiKey) {
    // The page loaded without a key; its first schema fetch was refused (401).
    // A person types the key into the headers editor, then re-fetches the schema.
    await page.getByRole("button", { name: /^headers$/i }).click();
    const headersEditor = page.locator(".graphiql-editor-tool .CodeMirror").last();
    await headersEditor.waitFor({ timeout: 10000 });
    const hint = await headersEditor.evaluate((el) => el.CodeMirror.getValue());
    if (!hint.includes('"X-API-Key"')) fail(`the headers editor does not offer X-API-Key: ${hint}`);
    // Typed as a person would (the editor closes brackets and quotes itself).
    await headersEditor.click();
    await page.keyboard.press("Control+A");
    await page.keyboard.type(`{"X-API-Key": "${apiKey}"}`);
    const typed = await headersEditor.evaluate((el) => el.CodeMirror.getValue());
    if (JSON.parse(typed)["X-API-Key"] !== apiKey) fail(`the headers editor holds ${typed}`);
    // GraphiQL takes an edit after a short debounce: re-fetch until the schema comes.
    let status = 0;
    for (let i = 0; i < 10 && status !== 200; i++) {
      const answer = page.waitForResponse(
        (r) => r.request().method() === "POST" && (r.request().postData() || "").includes("IntrospectionQuery"),
      );
      await page.getByRole("button", { name: "Re-fetch GraphQL schema" }).click();
      status = (await answer).status();
      if (status !== 200) await page.waitForTimeout(300);
    }
    if (status !== 200) fail(`the schema fetch with the key answered ${status}`);
    console.log("graphiql (auth on): the page loaded without a key; with X-API-Key typed into Headers the schema loads");
  }

  await page.getByRole("button", { name: "Show Documentation Explorer" }).click();
  const docs = page.locator(".graphiql-doc-explorer");
  // The root query type is QueryRoot here (async-graphql names it so).
  await docs.getByRole("link", { name: /^Query/ }).first().click({ timeout: 20000 });
  await docs.getByText("usageByDay", { exact: true }).first().waitFor({ timeout: 10000 });
  console.log(`graphiql (${mode}): the docs explorer lists usageByDay under the root query type`);

  const editorText = await page
    .locator(".graphiql-query-editor .CodeMirror")
    .evaluate((el) => el.CodeMirror.getValue());
  if (editorText.trim() !== query) fail(`the query editor holds ${JSON.stringify(editorText)}`);
  await page.getByRole("button", { name: /Execute query/ }).click();
  const result = page.locator(".result-window");
  const wanted = `"tokensUsed": ${expected}`;
  try {
    await result.getByText(wanted).waitFor({ timeout: 20000 });
  } catch {
    fail(`the result pane does not show ${wanted}: ${await result.innerText()}`);
  }
  console.log(`graphiql (${mode}): running the query shows tokensUsed = ${expected} (curl: ${expected})`);

  const run = posts.find((p) => p.body.includes("tokensUsed"));
  if (!run) fail("no POST /graphql carried the query");
  if (apiKey && run.headers["x-api-key"] !== apiKey) fail("the query went without the X-API-Key header");
  if (!apiKey && "x-api-key" in run.headers) fail("an empty X-API-Key was sent");
  if (apiKey) console.log("graphiql (auth on): the query carried X-API-Key from the headers editor");

  // Autocompletion from the schema: typing the start of a field offers it.
  await page.locator(".graphiql-query-editor .CodeMirror").click();
  await page.keyboard.press("Control+A");
  await page.keyboard.type("{ usa");
  const hints = page.locator(".CodeMirror-hints");
  await hints.getByText("usageByDay").first().waitFor({ timeout: 10000 });
  await page.keyboard.press("Escape");
  console.log(`graphiql (${mode}): typing "{ usa" offers usageByDay (autocompletion from the schema)`);
  // A dialog (it writes a scroll-lock <style>): must open under the page's CSP.
  await page.getByRole("button", { name: "Open settings dialog" }).click();
  await page.getByRole("dialog").getByText("Theme").waitFor({ timeout: 10000 });
  await page.keyboard.press("Escape");

  const csp = await page.evaluate(() => window.__cspViolations);
  if (csp.length) fail(`Content-Security-Policy violations: ${csp.join("; ")}`);
  // With auth on, the schema fetch before the key is in is refused: that 401 is expected.
  const unexpected = problems.filter((p) => !(apiKey && /401/.test(p)));
  if (unexpected.length) fail(unexpected.join("\n"));
  if (outside.length) fail(`requests to other hosts: ${outside.join(", ")}`);
  console.log(`graphiql (${mode}): no CSP violation, no page error, no request to another host`);
} catch (e) {
  // What the page showed, for the CI log and (SCREENSHOT=path) a picture.
  if (page) {
    const text = await page.locator("body").innerText().catch(() => "");
    console.error(`graphiql (${mode}): FAILED; the page showed:\n${text.slice(0, 2000)}`);
    if (process.env.SCREENSHOT) await page.screenshot({ path: process.env.SCREENSHOT }).catch(() => {});
  }
  if (outside.length) console.error(`requests to other hosts: ${outside.join(", ")}`);
  if (problems.length) console.error(problems.join("\n"));
  throw e;
} finally {
  await browser.close();
}

// What every browser script of tests/browser shares: playwright-core from the client's
// node_modules, the environment it is driven by, a headless Chromium, sign-in, screenshots,
// drag-and-drop and GraphQL from the signed-in page.
import { createRequire } from 'node:module';
import { mkdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(path.join(here, '../../frontend/package.json'));
export const { chromium } = require('playwright-core');

/** The environment variable `name`; the script cannot run without it. */
export const env = (name) => {
  if (!process.env[name]) throw new Error(`set ${name}`);
  return process.env[name];
};

export function check(condition, message) {
  if (!condition) throw new Error(message);
}

export const BASE = env('BASE_URL');
export const ARTIFACTS = env('ARTIFACTS');
mkdirSync(ARTIFACTS, { recursive: true });

export const shot = (page, name, { fullPage = false } = {}) =>
  page.screenshot({ path: path.join(ARTIFACTS, `${name}.png`), fullPage });

/** Headless Chromium (CHROMIUM, else the distribution's), with nothing of its own on the network. */
export const launch = () => chromium.launch({
  executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
         '--disable-sync', '--no-first-run'],
});

/** A page in a new context (`options`: viewport, locale, …) with a 30 s default timeout; its
 *  console errors collect in `consoleErrors`. */
export async function openPage(browser, options) {
  const context = await browser.newContext(options);
  const page = await context.newPage();
  page.setDefaultTimeout(30_000);
  const consoleErrors = [];
  page.on('console', (m) => m.type() === 'error' && consoleErrors.push(m.text()));
  return { context, page, consoleErrors };
}

/** The sign-in page, as a visitor first finds it. */
export async function openSignIn(page) {
  await page.goto(BASE);
  await page.waitForSelector('input[name=username]');
}

/** Signs in from the sign-in page as FS_USER (in `language` when given) and waits for `ready`. */
export async function submitSignIn(page, { language, ready = '[data-testid=nav-gallery]' } = {}) {
  if (language) await page.selectOption('select[aria-label=language]', language);
  await page.fill('input[name=username]', env('FS_USER'));
  await page.fill('input[name=password]', env('FS_PASSWORD'));
  await page.click('button[type=submit]');
  await page.waitForSelector(ready);
}

export async function signIn(page, options) {
  await openSignIn(page);
  await submitSignIn(page, options);
}

/** Drops `files` ([{ file, mime }]) on `selector` as a person drags them from the desktop. */
export async function dropFiles(page, selector, files) {
  const payload = files.map(({ file, mime }) => ({ b64: readFileSync(file).toString('base64'), name: path.basename(file), mime }));
  const transfer = await page.evaluateHandle((items) => {
    const dt = new DataTransfer();
    for (const { b64, name, mime } of items) {
      const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
      dt.items.add(new File([bytes], name, { type: mime }));
    }
    return dt;
  }, payload);
  await page.dispatchEvent(selector, 'dragover', { dataTransfer: transfer });
  await page.dispatchEvent(selector, 'drop', { dataTransfer: transfer });
}

/** A GraphQL query as the signed-in page (its session cookie): the data, or throws its errors. */
export const gql = (page, query, variables = {}) => page.evaluate(async ({ query, variables }) => {
  const r = await fetch('/graphql', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ query, variables }) });
  const body = await r.json();
  if (body.errors?.length) throw new Error(JSON.stringify(body.errors));
  return body.data;
}, { query, variables });

// The browser half of test_security_csrf_browser.py: signs in on the API's origin, then
// opens a page on another port of the same host that tries to act with the session cookie
// (fetch and a multipart form), and reports what the API answered. The fetches' answers are
// unreadable there (our Cross-Origin-Resource-Policy), so their effects are checked after. Expects BASE_URL,
// EVIL_URL, FS_USER, FS_PASSWORD, JPEG_B64, CHROMIUM; prints one JSON line.
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(path.join(here, '../../frontend/package.json'));
const { chromium } = require('playwright-core');
const { BASE_URL, EVIL_URL, FS_USER, FS_PASSWORD, JPEG_B64 } = process.env;

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
         '--disable-sync', '--no-first-run'],
});
const report = { answers: [] };
try {
  const page = await (await browser.newContext()).newPage();
  page.setDefaultTimeout(30_000);
  page.on('response', (r) => {
    if (r.url().startsWith(BASE_URL) && r.request().method() === 'POST') {
      report.answers.push({ url: r.url().slice(BASE_URL.length), status: r.status(),
                            frame: r.frame() === page.mainFrame() ? 'main' : 'iframe' });
    }
  });
  await page.goto(BASE_URL);
  const own = await page.evaluate(async ({ user, password, jpeg }) => {
    const json = { 'content-type': 'application/json' };
    const login = await fetch('/api/auth/login', { method: 'POST', headers: json, credentials: 'same-origin',
                                                   body: JSON.stringify({ username: user, password }) });
    const form = new FormData();
    form.append('files', new Blob([Uint8Array.from(atob(jpeg), (c) => c.charCodeAt(0))], { type: 'image/jpeg' }), 'own.jpg');
    const upload = await fetch('/api/photos', { method: 'POST', body: form, credentials: 'same-origin' });
    return { login: login.status, upload: upload.status, uploaded: (await upload.json()).results?.[0]?.status };
  }, { user: FS_USER, password: FS_PASSWORD, jpeg: JPEG_B64 });
  report.own = own;

  // The attack: the cookie is host-only and SameSite=Lax, and 127.0.0.1:other is the same site.
  await page.goto(`${EVIL_URL}/attack.html?target=${encodeURIComponent(BASE_URL)}`);
  await page.waitForFunction(() => window.attackDone === true);
  await page.waitForTimeout(1000); // the form's answer lands in its iframe
  report.attack = await page.evaluate(() => window.attackLog);

  await page.goto(BASE_URL);
  report.after = await page.evaluate(async () => {
    const me = await fetch('/api/auth/me', { credentials: 'same-origin' });
    const stats = await fetch('/graphql', { method: 'POST', credentials: 'same-origin',
      headers: { 'content-type': 'application/json' }, body: JSON.stringify({ query: '{ stats { photos waiting } }' }) });
    return { me: me.status, graphql: stats.status, stats: (await stats.json()).data?.stats };
  });
  report.ok = true;
} catch (error) {
  report.ok = false;
  report.error = String(error.stack ?? error);
} finally {
  await browser.close();
}
console.log(JSON.stringify(report));

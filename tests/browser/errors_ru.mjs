// The browser half of tests/browser/test_errors_ru.py: a Russian user provokes every error the
// client can meet (bad file, 0-byte file, too large, pixel bomb, dead Yandex.Disk link, a bad
// search example) and reads each one in Russian; the upload is an import job under Imports
// with its counts. Expects BASE_URL, FS_USER, FS_PASSWORD, FILES_DIR (good.jpg, again.jpg,
// bad.jpg, empty.jpg, big.jpg, bomb.png), DEAD_LINK, ARTIFACTS; prints one JSON line.
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { check, dropFiles, env, launch, openPage, openSignIn, shot as shotOf, submitSignIn } from './lib.mjs';

const FILES = env('FILES_DIR');
const findings = { errors: [] };
const shot = (page, name) => shotOf(page, name, { fullPage: true });

// Latin allowed in Russian text: format and service names, and nothing else.
const ALLOWED_LATIN = new Set(['JPG', 'PNG', 'WebP', 'HEIC', 'VK']);

/** Why `text` is not plain Russian (null when it is). File names before ": " are the user's own. */
function notRussian(text, names) {
  let rest = text.trim();
  for (const name of names) if (rest.startsWith(`${name}: `)) rest = rest.slice(name.length + 2);
  if (!/[а-яё]/i.test(rest)) return 'no Cyrillic';
  const latin = (rest.match(/[A-Za-z][A-Za-z0-9_.-]*/g) ?? []).filter((w) => !ALLOWED_LATIN.has(w));
  if (latin.length) return `Latin words: ${latin.join(' ')}`;
  if (/\d{4,}/.test(rest.replace(/\s/g, ''))) return 'a raw number (bytes or pixels?)';
  return null;
}

/** Every error text on the page now (the .error paragraphs and alerts). */
const errorTexts = (page) => page.$$eval('.error, [role=alert]', (nodes) => nodes.map((n) => n.textContent.trim()).filter(Boolean));

const browser = await launch();
const { page } = await openPage(browser, { viewport: { width: 1300, height: 900 }, locale: 'ru-RU' });
const names = readdirSync(FILES);

try {
  // Signed in, in Russian (the default language).
  await openSignIn(page);
  check((await page.textContent('h2')).includes('Вход'), 'the client speaks Russian by default');
  await submitSignIn(page, { ready: '[data-testid=nav-imports]' });

  // 1. One drop: a good photo, the same bytes again, text named .jpg, an empty file, a file
  //    over the size limit and a pixel bomb.
  await page.click('[data-testid=nav-imports]');
  await page.waitForSelector('[data-testid=upload-drop]');
  await dropFiles(page, '[data-testid=upload-drop]', [
    { file: path.join(FILES, 'good.jpg'), mime: 'image/jpeg' },
    { file: path.join(FILES, 'again.jpg'), mime: 'image/jpeg' },
    { file: path.join(FILES, 'bad.jpg'), mime: 'image/jpeg' },
    { file: path.join(FILES, 'empty.jpg'), mime: 'image/jpeg' },
    { file: path.join(FILES, 'big.jpg'), mime: 'image/jpeg' },
    { file: path.join(FILES, 'bomb.png'), mime: 'image/png' },
  ]);
  await page.waitForFunction(() => document.querySelector('[data-testid=upload-status]')?.textContent.includes('Сохранено: 2'));
  findings.uploadStatus = (await page.textContent('[data-testid=upload-status]')).trim();
  check(findings.uploadStatus === 'Сохранено: 2, дубликатов: 1, отклонено: 4', `upload status: ${findings.uploadStatus}`);
  const problems = await page.$$eval('[data-testid=upload-problem]', (nodes) => nodes.map((n) => n.textContent.trim()));
  findings.uploadProblems = problems;
  check(problems.length === 4, `four rejected files are named: ${problems}`);
  check(problems.some((p) => p.startsWith('empty.jpg: ') && p.includes('Пустой файл')), 'the empty file says so');
  // The formats are the server's list (GraphQL photoFormats), worded as a Russian list.
  check(problems.some((p) => p.startsWith('bad.jpg: ') && p.includes('подходят JPG, PNG, WebP или HEIC')),
    `the bad file names the server's formats: ${problems}`);
  check(problems.some((p) => p.startsWith('big.jpg: ') && p.includes('2 МБ')), 'too large quotes the limit in MB');
  check(problems.some((p) => p.startsWith('bomb.png: ') && p.includes('900 Мп') && p.includes('60 Мп')),
    'the bomb quotes its megapixels and our 60-megapixel limit');

  // 2. The upload is an import job under Imports, done, with its counts and rejected files.
  const job = '[data-testid=import-job][data-source=upload]';
  await page.waitForSelector(`${job}[data-status=COMPLETED]`);
  await page.waitForFunction((sel) => document.querySelector(sel)?.querySelectorAll('[data-testid=job-problem]').length === 4,
    `${job}[data-status=COMPLETED]`);
  findings.jobCounts = (await page.textContent(`${job} [data-testid=job-counts]`)).trim();
  check(findings.jobCounts === 'сохранено 2 (дубликатов 1), отклонено 4', `job counts: ${findings.jobCounts}`);
  check(!(await page.$(`${job} .progress`)), 'a finished job shows no progress bar');
  await page.click(`${job} summary`);
  findings.errors.push(...await errorTexts(page));
  await shot(page, 'errors-ru-upload');

  // 3. A dead Yandex.Disk link: refused at once, or a failed job; either way in Russian, and
  //    a failed job shows its state, not a full bar, and offers a retry.
  await page.fill('input[placeholder^="https://disk.yandex.ru"]', env('DEAD_LINK'));
  await page.click('form:has(input[placeholder^="https://disk.yandex.ru"]) button.primary');
  await page.waitForFunction(() => document.querySelector('[data-testid=import-error]')
    || document.querySelector('[data-testid=import-job][data-source=yadisk][data-status=FAILED] [data-testid=job-reason]'));
  const failed = await page.$('[data-testid=import-job][data-source=yadisk][data-status=FAILED]');
  if (failed) {
    check(!(await failed.$('.progress')), 'a failed job shows no full progress bar');
    check(!!(await failed.$('[data-testid=job-retry]')), 'a failed link job offers a retry');
    findings.deadLink = (await failed.$eval('[data-testid=job-reason]', (n) => n.textContent)).trim();
    // Retry runs it again as a new job (which fails again, the link being dead).
    await (await failed.$('[data-testid=job-retry]')).click();
    await page.waitForFunction(() => document.querySelectorAll('[data-testid=import-job][data-source=yadisk]').length === 2);
    await page.waitForFunction(() => document.querySelectorAll('[data-testid=import-job][data-source=yadisk][data-status=FAILED]').length === 2);
    findings.retried = true;
  } else {
    findings.deadLink = (await page.textContent('[data-testid=import-error]')).trim();
  }
  check(findings.deadLink.includes('ссылка не работает'), `the dead link is named: ${findings.deadLink}`);
  findings.errors.push(...await errorTexts(page));
  await shot(page, 'errors-ru-dead-link');

  // 4. Search by example: a text file, then the bomb.
  await page.click('[data-testid=nav-search]');
  const input = '[data-testid=search-input]';
  await page.waitForSelector(input, { state: 'attached' });
  await page.setInputFiles(input, { name: 'notes.txt', mimeType: 'text/plain', buffer: Buffer.from('not a photo') });
  await page.waitForSelector('.error');
  findings.errors.push(...await errorTexts(page));
  await page.setInputFiles(input, path.join(FILES, 'bomb.png'));
  await page.waitForFunction(() => document.querySelector('.error')?.textContent.includes('Мп'));
  findings.searchBomb = (await page.textContent('.error')).trim();
  findings.errors.push(...await errorTexts(page));
  await shot(page, 'errors-ru-search');

  findings.errors = [...new Set(findings.errors)];
  const bad = findings.errors.map((text) => [text, notRussian(text, names)]).filter(([, why]) => why);
  check(findings.errors.length >= 7, `the errors were seen: ${findings.errors}`);
  check(!bad.length, `not Russian: ${JSON.stringify(bad)}`);
  findings.ok = true;
} catch (error) {
  findings.ok = false;
  findings.error = String(error?.stack ?? error);
  await shot(page, 'errors-ru-failure').catch(() => {});
} finally {
  await browser.close();
}
console.log(JSON.stringify(findings));
process.exit(findings.ok ? 0 : 1);

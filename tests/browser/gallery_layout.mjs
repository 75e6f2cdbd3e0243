// The browser half of tests/browser/test_gallery_layout.py. Expects BASE_URL, FS_USER,
// FS_PASSWORD, WEB_FOLDER (a server folder to import from the Imports page), EXPECTED (photos
// in the archive once it is imported), VIEWPORTS ("1366x900,1920x1080"), ARTIFACTS; prints one
// JSON line of findings (per viewport size) and exits non-zero on failure.
import { check, env, gql, launch, openPage, shot, signIn } from './lib.mjs';

const EXPECTED = Number(env('EXPECTED'));
// Drawn boxes may differ from the stored ones scaled to the shown image by rounding only.
const BOX_TOLERANCE = 2;
const findings = { ok: false };
const browser = await launch();

const PHOTOS = `{ photos(first: 200) { totalCount edges { node { id sourceRef width height faceCount
  faces { id box { x1 y1 x2 y2 } } } } } }`;

/** The second folder, imported as a person does it: its path on the Imports page. */
async function importThroughTheClient() {
  const { context, page } = await openPage(browser, { viewport: { width: 1366, height: 900 }, locale: 'en-US' });
  const found = {};
  try {
    await signIn(page, { language: 'en' });
    await page.click('[data-testid=nav-imports]');
    await page.waitForSelector('[data-testid=local-path]');
    // The CLI's import is listed (so the list has loaded) before the new one starts.
    await page.waitForSelector('[data-testid=import-job][data-source=local][data-status=COMPLETED]');
    const before = await page.$$eval('[data-testid=import-job]', (els) => els.map((e) => e.dataset.id));
    found.jobsBefore = before.length;
    await page.fill('[data-testid=local-path]', env('WEB_FOLDER'));
    await page.click('[data-testid=local-start]');
    const started = await page.waitForFunction(({ before, folder }) => {
      const refused = document.querySelector('[data-testid=import-error]');
      if (refused) return { error: refused.textContent };
      const job = [...document.querySelectorAll('[data-testid=import-job]')]
        .find((e) => !before.includes(e.dataset.id) && e.querySelector('.target')?.textContent === folder);
      return job && { id: job.dataset.id, source: job.dataset.source };
    }, { before, folder: env('WEB_FOLDER') });
    Object.assign(found, await started.jsonValue());
    check(!found.error, `the folder import was refused: ${found.error}`);
    await page.waitForSelector(`[data-testid=import-job][data-id="${found.id}"][data-status=COMPLETED]`, { timeout: 120_000 });
    found.counts = (await page.textContent(`[data-testid=import-job][data-id="${found.id}"] [data-testid=job-counts]`)).trim();
    await shot(page, 'gallery-web-import');

    // The archive is complete once every photo of both imports is analysed.
    const deadline = Date.now() + 300_000;
    for (;;) {
      found.stats = (await gql(page, '{ stats { photos waiting } }')).stats;
      if (found.stats.waiting === 0 && found.stats.photos === EXPECTED) break;
      check(Date.now() < deadline, `photos were not analysed in time: ${JSON.stringify(found.stats)}`);
      await page.waitForTimeout(1000);
    }
  } finally {
    findings.webImport = found;
    await context.close();
  }
}

const error = (a, b) => Math.max(...['left', 'top', 'width', 'height'].map((k) => Math.abs(a[k] - b[k])));

/** The photo view of `photo` (the server's record): each drawn box against its stored box. */
async function boxesOf(page, photo, index, label) {
  const tile = page.locator('[data-testid=photo-tile]').nth(index);
  const found = { ref: photo.sourceRef, stored: photo.faces.length, tileFaces: Number(await tile.getAttribute('data-faces')) };
  await tile.click();
  await page.waitForSelector('[data-testid=photo-view] svg');
  await page.waitForFunction(() => {
    const img = document.querySelector('[data-testid=photo-view] img');
    return img?.complete && img.naturalWidth > 0;
  });
  const geometry = await page.evaluate(() => {
    const box = (r) => ({ left: r.left, top: r.top, width: r.width, height: r.height });
    const img = document.querySelector('[data-testid=photo-view] img');
    const svg = document.querySelector('[data-testid=photo-view] svg');
    const drawn = [...document.querySelectorAll('[data-testid=photo-view] [data-testid=face-box]')].map((g) => ({
      id: g.dataset.faceId, box: box(g.querySelector('rect').getBoundingClientRect()),
    }));
    return { image: box(img.getBoundingClientRect()), natural: [img.naturalWidth, img.naturalHeight],
             overlay: box(svg.getBoundingClientRect()), drawn };
  });
  const { image } = geometry;
  const sx = image.width / photo.width;
  const sy = image.height / photo.height;
  const drawn = new Map(geometry.drawn.map((d) => [d.id, d.box]));
  found.natural = geometry.natural;
  found.image = image;
  found.drawn = geometry.drawn.length;
  found.overlayError = error(geometry.overlay, image);
  found.boxErrors = photo.faces.map(({ id, box: b }) => {
    const expected = { left: image.left + b.x1 * sx, top: image.top + b.y1 * sy, width: (b.x2 - b.x1) * sx, height: (b.y2 - b.y1) * sy };
    return drawn.has(id) ? error(drawn.get(id), expected) : Infinity;
  });
  found.worstBoxError = Math.max(...found.boxErrors);
  await shot(page, `photo-boxes-${label}-${photo.sourceRef.split('/').pop().replace(/\.\w+$/, '')}`);
  await page.keyboard.press('Escape');
  await page.waitForSelector('[data-testid=photo-view]', { state: 'detached' });

  const name = `${label} ${photo.sourceRef}`;
  check(found.natural[0] === photo.width && found.natural[1] === photo.height,
        `${name}: the image is ${found.natural.join('×')}, the server says ${photo.width}×${photo.height}`);
  check(found.drawn === found.stored && found.tileFaces === found.stored,
        `${name}: ${found.drawn} boxes drawn, tile says ${found.tileFaces}, ${found.stored} faces stored`);
  check(found.overlayError <= 1, `${name}: the overlay is not the image's box (${found.overlayError} px)`);
  check(found.worstBoxError <= BOX_TOLERANCE, `${name}: a drawn box is ${found.worstBoxError} px off its stored face box`);
  return found;
}

async function atSize(width, height) {
  const label = `${width}x${height}`;
  const { context, page } = await openPage(browser, { viewport: { width, height }, locale: 'en-US' });
  const found = {};
  try {
    await signIn(page);
    await page.click('[data-testid=nav-gallery]');
    await page.waitForSelector('[data-testid=photo-tile]');

    // A person scrolls to the end as long as new photos keep coming; the gallery must bring
    // every one (before, it stopped at 40 at these sizes, scrolled or not).
    const tiles = () => page.locator('[data-testid=photo-tile]').count();
    let count = 0;
    for (let stable = 0, i = 0; i < 60 && stable < 6; i++) {
      await page.evaluate(() => window.scrollTo(0, document.documentElement.scrollHeight));
      await page.waitForTimeout(250);
      const now = await tiles();
      stable = now === count ? stable + 1 : 0;
      count = now;
      if (count >= EXPECTED) break;
    }
    found.tiles = count;
    found.pageHeight = await page.evaluate(() => document.documentElement.scrollHeight);
    const refs = await page.$$eval('[data-testid=photo-tile]', (els) => els.map((e) => e.dataset.ref));
    found.refs = refs;
    await shot(page, `gallery-${label}`);
    check(count === EXPECTED, `${label}: ${count} of ${EXPECTED} photos loaded`);

    // Every photo with faces, in the photo view: its boxes are the server's, on the image.
    const { photos } = await gql(page, PHOTOS);
    const withFaces = photos.edges.map((e) => e.node).filter((p) => p.faceCount > 0 || p.faces.length > 0);
    check(withFaces.length > 0, `${label}: no photo with faces`);
    found.photos = [];
    for (const photo of withFaces) {
      const index = refs.indexOf(photo.sourceRef);
      check(index >= 0, `${label}: ${photo.sourceRef} is not in the gallery`);
      found.photos.push(await boxesOf(page, photo, index, label));
    }
    found.boxes = found.photos.reduce((n, p) => n + p.drawn, 0);
    found.worstBoxError = Math.max(...found.photos.map((p) => p.worstBoxError));
  } finally {
    findings[label] = found;
    await context.close();
  }
}

try {
  await importThroughTheClient();
  for (const size of env('VIEWPORTS').split(',')) {
    const [w, h] = size.split('x').map(Number);
    await atSize(w, h);
  }
  findings.ok = true;
} catch (e) {
  findings.error = String(e.stack || e);
} finally {
  await browser.close();
  console.log(JSON.stringify(findings));
  process.exit(findings.ok ? 0 : 1);
}

// The browser half of tests/browser/test_people_pages.py. Expects BASE_URL, FS_USER,
// FS_PASSWORD, PERSON_A, PERSON_B (LFW names seeded in several photos), ARTIFACTS; prints one
// JSON line of findings and exits non-zero on failure.
import { check, env, gql as gqlAs, launch, openPage, shot, signIn } from './lib.mjs';

const findings = {};
// Raw ids a user must never read: person ids (16 hex), photo ids (uuids), face ids.
const RAW_ID = /\b[0-9a-f]{16}\b|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/;

const browser = await launch();
const { page, consoleErrors } = await openPage(browser, { viewport: { width: 1400, height: 900 }, locale: 'en-US' });
const gql = (query, variables) => gqlAs(page, query, variables);

/** The person most of whose photos are of `name` (an LFW name in the photos' file names). */
async function personOf(name) {
  const { people } = await gql('{ people(includeHidden: true) { id size faceIds } }');
  let best = null;
  for (const p of people) {
    const refs = await Promise.all(p.faceIds.map(async (f) => (await gql('query($id: ID!) { face(id: $id) { photo { sourceRef } } }', { id: f })).face.photo.sourceRef));
    const mine = refs.filter((r) => r.includes(name)).length;
    if (mine * 2 > refs.length && (!best || mine > best.mine)) best = { id: p.id, mine, size: p.size };
  }
  check(best, `no person of ${name}`);
  return best;
}

const cardIds = () => page.$$eval('[data-testid=person-card]', (els) => els.map((e) => e.dataset.personId));
const idle = () => page.waitForSelector('[data-testid=person-view][data-busy=false]');
const clusterDone = async () => {
  await page.click('[data-testid=people-cluster]');
  await page.waitForSelector('[data-testid=people-cluster]:not([disabled])', { timeout: 120_000 });
};
const setSlider = (value) => page.$eval('[data-testid=review-threshold]', (el, v) => {
  el.value = String(v);
  el.dispatchEvent(new Event('input', { bubbles: true }));
}, value);
const rows = () => page.$$eval('[data-testid=review-row]', (els) => els.map((e) => ({ face: e.dataset.faceId, person: e.dataset.personId })));
const pair = (a, b) => [a, b].sort().join(',');

async function splitOff(personId, n) {
  await page.click(`[data-testid=person-card][data-person-id="${personId}"]`);
  await page.waitForSelector(`[data-testid=person-view][data-person-id="${personId}"]`);
  const before = await cardIds();
  for (let i = 0; i < n; i++) await page.locator('[data-testid=face-select]').nth(i).check();
  await page.click('[data-testid=person-split]');
  await page.waitForFunction((n) => document.querySelectorAll('[data-testid=person-card]').length === n, before.length + 1);
  await idle();
  const half = (await cardIds()).find((id) => !before.includes(id));
  await page.click('[data-testid=person-close]');
  return half;
}

try {
  await signIn(page, { language: 'en', ready: '[data-testid=nav-people]' });

  // Group the faces from the page.
  await page.click('[data-testid=nav-people]');
  await page.waitForSelector('[data-testid=people-cluster]');
  await clusterDone();
  await page.waitForSelector('[data-testid=person-card]', { timeout: 30_000 });
  const a = await personOf(env('PERSON_A'));
  const b = await personOf(env('PERSON_B'));
  findings.people = (await cardIds()).length;

  // 1. The person page from a card: every photo with the face marked, newest first.
  await page.click(`[data-testid=person-card][data-person-id="${a.id}"]`);
  await page.waitForSelector(`[data-testid=person-view][data-person-id="${a.id}"]`);
  await page.waitForFunction(() => [...document.querySelectorAll('[data-testid=person-photo] img')].every((i) => i.complete && i.naturalWidth > 0));
  findings.personSize = a.size;
  findings.photosOnPage = await page.locator('[data-testid=person-photo]').count();
  findings.boxesOnPage = await page.locator('[data-testid=person-photo] rect').count();
  await shot(page, 'people-page');
  await page.click('[data-testid=person-close]');

  // 2. The person page from a face in the photo view (from the gallery).
  const { person } = await gql('query($id: ID!) { person(id: $id) { photos { photoId } } }', { id: a.id });
  const { photo } = await gql('query($id: ID!) { photo(id: $id) { sourceRef } }', { id: person.photos[0].photoId });
  await page.click('[data-testid=nav-gallery]');
  await page.click(`[data-testid=photo-tile][data-ref="${photo.sourceRef}"]`);
  await page.waitForSelector(`[data-testid=face-person][data-person-id="${a.id}"]`);
  await shot(page, 'people-photo-face');
  await page.click(`[data-testid=face-person][data-person-id="${a.id}"]`);
  await page.waitForSelector(`[data-testid=person-view][data-person-id="${a.id}"]`);
  findings.reachedFromFace = true;
  await page.click('[data-testid=person-close]');

  // 3. Each of the two people split in two, as clustering sometimes leaves one person.
  const halfA = await splitOff(a.id, 3);
  const halfB = await splitOff(b.id, 2);

  // 4. Pickers: faces and names, nearest first (A's nearest person is its split-off half).
  await page.click(`[data-testid=person-card][data-person-id="${a.id}"]`);
  await page.waitForSelector(`[data-testid=person-view][data-person-id="${a.id}"]`);
  await page.click('[data-testid=person-merge]');
  await page.waitForSelector('[data-testid=picker-option]');
  await page.waitForFunction(() => [...document.querySelectorAll('[data-testid=picker-thumb]')].every((i) => i.complete && i.naturalWidth > 0));
  const options = await page.$$eval('[data-testid=picker-option]', (els) => els.map((e) => ({ id: e.dataset.personId, similarity: Number(e.dataset.similarity), text: e.textContent })));
  findings.pickerThumbs = await page.locator('[data-testid=picker-thumb]').count();
  findings.pickerNearestIsHalf = options[0].id === halfA;
  check(options.every((o, i) => i === 0 || options[i - 1].similarity >= o.similarity), `nearest first: ${JSON.stringify(options)}`);
  check(options.every((o) => !RAW_ID.test(o.text)), `picker text names no ids: ${JSON.stringify(options)}`);
  await shot(page, 'people-picker');
  await page.click('[data-testid=picker-cancel]');
  await page.locator('[data-testid=face-move]').first().click();
  await page.waitForSelector('[data-testid=picker-new]');
  await page.waitForSelector('[data-testid=picker-option] img');
  await page.click('[data-testid=picker-cancel]');
  await page.click('[data-testid=person-close]');

  // 5. Merge suggestions: accept A's pair in one click, decline B's: it never comes back.
  await page.click('[data-testid=people-tab-suggestions]');
  await page.waitForSelector(`[data-testid=suggestion][data-pair="${pair(a.id, halfA)}"]`);
  await page.waitForSelector(`[data-testid=suggestion][data-pair="${pair(b.id, halfB)}"]`);
  findings.suggestions = await page.locator('[data-testid=suggestion]').count();
  check(findings.suggestions === 2, `only the two split people are suggested: ${findings.suggestions}`);
  await shot(page, 'people-suggestions');
  await page.click(`[data-testid=suggestion][data-pair="${pair(a.id, halfA)}"] [data-testid=suggestion-merge]`);
  await page.waitForSelector('[data-testid=confirm]');
  findings.confirmText = await page.textContent('[data-testid=confirm-text]');
  check(!RAW_ID.test(findings.confirmText) && /faces/.test(findings.confirmText), `a worded confirmation: ${findings.confirmText}`);
  await page.click('[data-testid=confirm-yes]');
  await page.waitForSelector(`[data-testid=suggestion][data-pair="${pair(a.id, halfA)}"]`, { state: 'detached' });
  await page.click(`[data-testid=suggestion][data-pair="${pair(b.id, halfB)}"] [data-testid=suggestion-decline]`);
  await page.waitForSelector(`[data-testid=suggestion][data-pair="${pair(b.id, halfB)}"]`, { state: 'detached' });
  await clusterDone();
  await page.click('[data-testid=people-tab-people]');
  await page.click('[data-testid=people-tab-suggestions]');
  await page.waitForTimeout(1500);
  findings.declinedAfterRerun = (await page.locator(`[data-testid=suggestion][data-pair="${pair(b.id, halfB)}"]`).count()) > 0;
  const { people } = await gql('{ people(includeHidden: true) { id } }');
  findings.mergedAway = !people.some((p) => p.id === halfA) && people.some((p) => p.id === a.id);

  // 6. The review of faces in no person: the slider, a bulk accept and a bulk reject.
  await page.click('[data-testid=people-tab-review]');
  await page.waitForSelector('[data-testid=review-threshold]');
  await setSlider(0);
  await page.waitForSelector('[data-testid=review-row]');
  findings.reviewAt0 = (await rows()).length;
  await setSlider(100);
  await page.waitForTimeout(300);
  findings.reviewAt100 = (await rows()).length;
  check(findings.reviewAt0 >= 2 && findings.reviewAt100 < findings.reviewAt0, `the slider filters: ${findings.reviewAt0} → ${findings.reviewAt100}`);
  await setSlider(0);
  await page.waitForTimeout(300);
  const [first, ...rest] = await rows();
  for (const r of rest) await page.locator(`[data-testid=review-row][data-face-id="${r.face}"] [data-testid=review-check]`).uncheck();
  await shot(page, 'people-review');
  await page.click('[data-testid=review-accept]');
  await page.waitForSelector(`[data-testid=review-row][data-face-id="${first.face}"]`, { state: 'detached' });
  findings.reviewAccepted = 1;
  await setSlider(0);
  await page.waitForTimeout(300);
  const declined = await rows();
  await page.click('[data-testid=review-reject]');
  await page.waitForFunction((d) => d.every(({ face, person }) => !document.querySelector(
    `[data-testid=review-row][data-face-id="${face}"][data-person-id="${person}"]`)), declined);
  findings.reviewDeclined = declined.length;
  await clusterDone();
  const kept = await gql('query($id: ID!) { person(id: $id) { faceIds } }', { id: first.person });
  findings.acceptedKeptAfterRerun = kept.person.faceIds.includes(first.face);
  await page.click('[data-testid=people-tab-review]');
  await setSlider(0);
  await page.waitForTimeout(1500);
  const again = await rows();
  check(declined.every(({ face, person }) => !again.some((r) => r.face === face && r.person === person)), 'declined faces are not offered to the same person again');

  // 7. In Russian.
  await page.selectOption('[data-testid=language]', 'ru');
  await page.waitForFunction(() => document.querySelector('[data-testid=people-tab-review]')?.textContent.includes('Лица без человека'));
  await shot(page, 'people-review-ru');
  findings.consoleErrors = consoleErrors;
  console.log(JSON.stringify({ ok: true, findings }));
} catch (error) {
  await shot(page, 'people-failure').catch(() => {});
  console.log(JSON.stringify({ ok: false, error: String(error.message ?? error), findings, consoleErrors }));
  process.exitCode = 1;
} finally {
  await browser.close();
}

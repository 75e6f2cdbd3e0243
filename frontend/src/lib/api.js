// The API as the screens see it: GraphQL queries and mutations over fetch, subscriptions
// over WebSocket (graphql-transport-ws), and REST for bytes. The session is a cookie.
import { writable } from 'svelte/store';
import { catalog } from './catalog.js';

export const session = writable({ checked: false, user: null, setupRequired: false });

/** An error of the API: `code` and `params` are what the client words (i18n `describe`);
 *  the message is the server's English text, for the console only. */
export class ApiError extends Error {
  constructor(message, code = 'ERROR', params = {}, status = 0) {
    super(message);
    this.code = code;
    this.params = params ?? {};
    this.status = status;
  }
}

async function send(path, options) {
  try {
    return await fetch(path, { credentials: 'same-origin', ...options });
  } catch (e) {
    throw new ApiError(String(e), 'NETWORK'); // offline, refused, reset: nothing answered
  }
}

async function checkAuth(response) {
  if (response.status === 401) {
    session.set({ checked: true, user: null, setupRequired: false });
    throw new ApiError('sign in first', 'SIGN_IN_REQUIRED', {}, 401);
  }
  return response;
}

export async function gql(query, variables = {}) {
  const response = await checkAuth(
    await send('/graphql', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ query, variables }),
    }),
  );
  const body = await response.json().catch(() => ({ errors: [{ message: `HTTP ${response.status}` }] }));
  if (body.errors?.length) {
    // `reason` is the precise code where the server gives one (IMPORT_REFUSED: bad_link, ...).
    const ext = body.errors[0].extensions ?? {};
    throw new ApiError(body.errors.map((e) => e.message).join('; '), ext.reason || ext.code || 'BAD_REQUEST', ext.params,
      response.status);
  }
  return body.data;
}

export async function rest(path, options = {}) {
  const response = await checkAuth(await send(path, options));
  const isJson = response.headers.get('content-type')?.includes('application/json');
  const body = isJson ? await response.json() : await response.text();
  if (!response.ok && response.status !== 415 && response.status !== 413 && response.status !== 422) {
    throw errorOf(response.status, body);
  }
  return { status: response.status, body };
}

/** The ApiError of a failed REST answer (a proxy's HTML page gets a code from its status). */
export function errorOf(status, body) {
  const fallback = { 413: 'FILE_TOO_LARGE', 429: 'TOO_MANY_REQUESTS', 502: 'UNAVAILABLE', 503: 'UNAVAILABLE', 504: 'UNAVAILABLE' };
  const detail = typeof body?.detail === 'string' ? body.detail : `HTTP ${status}`;
  return new ApiError(detail, body?.code || fallback[status] || 'ERROR', body?.params, status);
}

export async function loadSession() {
  const { body } = await rest('/api/auth/status');
  session.set({ checked: true, user: body.user, setupRequired: body.setup_required });
}

export async function signIn(username, password, setup = false) {
  const response = await send(setup ? '/api/auth/setup' : '/api/auth/login', {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ username, password }),
  });
  if (!response.ok) {
    // 429: too many attempts, `params.seconds` says how long to wait
    throw errorOf(response.status, await response.json().catch(() => ({})));
  }
  const body = await response.json();
  session.set({ checked: true, user: body.user, setupRequired: false });
}

export async function signOut() {
  await fetch('/api/auth/logout', { method: 'POST', credentials: 'same-origin' });
  session.set({ checked: true, user: null, setupRequired: false });
}

/** Uploads files as one upload import job, a request each, reporting progress (and the
 *  job's id as soon as it exists); resolves with the job's id and every file's result. */
export async function uploadPhotos(files, onProgress = () => {}) {
  const { body: job } = await rest('/api/uploads', {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ names: files.map((f) => f.name) }),
  });
  const importId = job.import_id;
  onProgress(0, files.length, importId);
  const results = [];
  try {
    for (const [index, file] of files.entries()) {
      const form = new FormData();
      form.append('files', file, file.name);
      const { status, body } = await rest(`/api/photos?import_id=${encodeURIComponent(importId)}`, { method: 'POST', body: form });
      // A body over the server's cap is cut off before the API sees it: no per-file results.
      const refused = errorOf(status, body);
      results.push(...(body.results ?? [{ filename: file.name, status: 'refused', code: refused.code, params: refused.params }]));
      onProgress(index + 1, files.length, importId);
    }
  } finally {
    await rest(`/api/uploads/${encodeURIComponent(importId)}/complete`, { method: 'POST' }).catch(() => {});
  }
  return { importId, results };
}

/** Runs a GraphQL subscription; returns a function that stops it. */
export function subscribe(query, variables, onNext, onDone = () => {}) {
  const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
  const socket = new WebSocket(`${scheme}://${location.host}/graphql`, 'graphql-transport-ws');
  socket.onopen = () => socket.send(JSON.stringify({ type: 'connection_init' }));
  socket.onmessage = (event) => {
    const message = JSON.parse(event.data);
    if (message.type === 'connection_ack') {
      socket.send(JSON.stringify({ id: '1', type: 'subscribe', payload: { query, variables } }));
    } else if (message.type === 'next' && message.payload.data) {
      onNext(message.payload.data);
    } else if (message.type === 'ping') {
      socket.send(JSON.stringify({ type: 'pong' }));
    } else if (message.type === 'complete' || message.type === 'error') {
      socket.close();
    }
  };
  socket.onclose = () => onDone();
  return () => socket.close();
}

const CATALOG = '{ sources { name value label } photoFormats { labels mimeTypes suffixes } }';

/** Reads the server's sources and photo formats into `catalog` (lib/catalog.js). */
export async function loadCatalog() {
  const data = await gql(CATALOG);
  catalog.set({ loaded: true, sources: data.sources, formats: data.photoFormats });
}

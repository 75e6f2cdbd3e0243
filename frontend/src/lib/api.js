// The API as the screens see it: GraphQL queries and mutations over fetch, subscriptions
// over WebSocket (graphql-transport-ws), and REST for bytes. The session is a cookie.
import { writable } from 'svelte/store';

export const session = writable({ checked: false, user: null, setupRequired: false });

export class ApiError extends Error {}

async function checkAuth(response) {
  if (response.status === 401) {
    session.set({ checked: true, user: null, setupRequired: false });
    throw new ApiError('sign in first');
  }
  return response;
}

export async function gql(query, variables = {}) {
  const response = await checkAuth(
    await fetch('/graphql', {
      method: 'POST',
      credentials: 'same-origin',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ query, variables }),
    }),
  );
  const body = await response.json();
  if (body.errors?.length) throw new ApiError(body.errors.map((e) => e.message).join('; '));
  return body.data;
}

export async function rest(path, options = {}) {
  const response = await checkAuth(await fetch(path, { credentials: 'same-origin', ...options }));
  const isJson = response.headers.get('content-type')?.includes('application/json');
  const body = isJson ? await response.json() : await response.text();
  if (!response.ok && response.status !== 415 && response.status !== 413 && response.status !== 422) {
    throw new ApiError(body?.detail ?? `HTTP ${response.status}`);
  }
  return { status: response.status, body };
}

export async function loadSession() {
  const { body } = await rest('/api/auth/status');
  session.set({ checked: true, user: body.user, setupRequired: body.setup_required });
}

export async function signIn(username, password, setup = false) {
  const response = await fetch(setup ? '/api/auth/setup' : '/api/auth/login', {
    method: 'POST',
    credentials: 'same-origin',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ username, password }),
  });
  if (!response.ok) throw new ApiError((await response.json()).detail ?? 'sign-in failed');
  const body = await response.json();
  session.set({ checked: true, user: body.user, setupRequired: false });
}

export async function signOut() {
  await fetch('/api/auth/logout', { method: 'POST', credentials: 'same-origin' });
  session.set({ checked: true, user: null, setupRequired: false });
}

/** Uploads files one request each, reporting progress; resolves with every file's result. */
export function uploadPhotos(files, onProgress = () => {}) {
  return files.reduce(
    (chain, file, index) =>
      chain.then(async (results) => {
        const form = new FormData();
        form.append('files', file, file.name);
        const { body } = await rest('/api/photos', { method: 'POST', body: form });
        onProgress(index + 1, files.length);
        return results.concat(body.results ?? [{ filename: file.name, status: 'refused', reason: body.detail }]);
      }),
    Promise.resolve([]),
  );
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

export const SOURCES = ['vk', 'yadisk', 'local', 'upload'];
// GraphQL enum names for the read model's source values.
export const SOURCE_ENUM = { vk: 'VK', yadisk: 'YANDEX_DISK', local: 'LOCAL', upload: 'UPLOAD' };
export const sourceKey = (value) => Object.keys(SOURCE_ENUM).find((k) => SOURCE_ENUM[k] === value) ?? value;

// What the server knows of photo sources and formats (GraphQL `sources` and `photoFormats`),
// read once after sign-in (api.js `loadCatalog`): the client keeps no list of its own, so a
// source or a format added on the server needs no change here.
import { writable, derived, get } from 'svelte/store';

export const catalog = writable({ loaded: false, sources: [], formats: { labels: [], mimeTypes: [], suffixes: [] } });

/** A source's name ("vk") from its GraphQL enum value ("VK"); a name stays itself. */
export const sourceKey = (value) => get(catalog).sources.find((s) => s.value === value)?.name ?? value;

/** The GraphQL enum value ("VK") of a source's name ("vk"). */
export const sourceValue = (name) => get(catalog).sources.find((s) => s.name === name)?.value;

/** For <input accept>: types and suffixes (most browsers give an iPhone's photos no type). */
export const photoAccept = derived(catalog, ($catalog) => [...$catalog.formats.mimeTypes, ...$catalog.formats.suffixes].join(','));

/** Whether the server takes `file` as a photo, by its type or its name. */
export function isPhoto(file) {
  const { mimeTypes, suffixes } = get(catalog).formats;
  const name = (file.name || '').toLowerCase();
  return mimeTypes.includes(file.type) || suffixes.some((suffix) => name.endsWith(suffix));
}

// The gallery's current filter, shared with Export ("export what I am looking at").
import { writable } from 'svelte/store';
import { sourceValue } from './catalog.js';

export const galleryFilter = writable({ source: '', importId: '', noFaces: false });

/** The filter as the GraphQL PhotoFilter input. */
export function toPhotoFilter(f) {
  const out = {};
  if (f.source) out.source = sourceValue(f.source);
  if (f.importId) out.importId = f.importId;
  if (f.noFaces) out.noFaces = true;
  return out;
}

/** The filter as export query parameters. */
export function toExportQuery(f) {
  const params = new URLSearchParams();
  if (f.source) params.set('source', f.source);
  if (f.importId) params.set('import_id', f.importId);
  return params.toString();
}

/** A photo's source reference as a person reads it: an upload's file name without the
 * internal "upload:" prefix; folders and links as they are. */
export const shownRef = (ref) => (ref?.startsWith('upload:') ? ref.slice('upload:'.length) : ref ?? '');

/** The filter in words for the Export page: [label key, value] pairs; value is a source key. */
export function describeFilter(f) {
  const parts = [];
  if (f.source) parts.push(['export.bySource', f.source]);
  if (f.importId) parts.push(['export.byImport', '']);
  if (f.noFaces) parts.push(['export.noFaces', '']);
  return parts;
}

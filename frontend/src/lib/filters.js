// The gallery's current filter, shared with Export ("export what I am looking at").
import { writable } from 'svelte/store';

export const galleryFilter = writable({ source: '', importId: '', noFaces: false });

/** The filter as the GraphQL PhotoFilter input. */
export function toPhotoFilter(f, SOURCE_ENUM) {
  const out = {};
  if (f.source) out.source = SOURCE_ENUM[f.source];
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

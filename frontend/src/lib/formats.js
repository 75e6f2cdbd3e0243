// The photo formats the server takes: a copy of commands/images.py FORMATS, which
// tests/core/test_image_intake.py keeps equal to it.
export const PHOTO_TYPES = ['image/jpeg', 'image/pjpeg', 'image/png', 'image/webp', 'image/heic', 'image/heif'];
export const PHOTO_SUFFIXES = ['.jpg', '.jpeg', '.jpe', '.png', '.webp', '.heic', '.heif'];
// For <input accept>: browsers other than Safari give HEIC files no type, so suffixes too.
export const PHOTO_ACCEPT = [...PHOTO_TYPES, ...PHOTO_SUFFIXES].join(',');

export function isPhoto(file) {
  const name = (file.name || '').toLowerCase();
  return PHOTO_TYPES.includes(file.type) || PHOTO_SUFFIXES.some((suffix) => name.endsWith(suffix));
}

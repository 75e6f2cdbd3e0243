// What the people screens share: face crops, people named in words, refusals worded by code.
export const crop = (faceId, size = 160) => `/api/faces/${encodeURIComponent(faceId)}/crop?size=${size}`;

/** A person in words: '"Ann" (6 faces)' or 'an unnamed person (6 faces)'; never an id. */
export const who = (t, person) =>
  person.name ? t('people.who', { name: person.name, n: person.size }) : t('people.whoUnnamed', { n: person.size });

const WORDED = { SAME_PHOTO: 'people.error.samePhoto', BAD_CORRECTION: 'people.error.badCorrection', NOT_FOUND: 'people.error.notFound' };

/** The message for a failed change: the server's words name photo and face ids, ours do not;
 * other codes are worded by `describe` (lib/i18n.js), never with the server's text. */
export const refusal = (t, error, describe) => (WORDED[error.code] ? t(WORDED[error.code]) : describe(error));

export const CANDIDATE = 'similarity person { id name size representativeFaceId }';

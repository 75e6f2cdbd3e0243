// How the monitoring page names its lines and writes times, in the user's language:
// a line is its series' name plus its label values, each translated where the messages
// know it ("outcome=no_faces" reads "без лиц"), raw otherwise (an API route).

// Label values shown as they are, with a short prefix: they are identifiers, not words.
const RAW = { route: (v) => v, status: (v) => `HTTP ${v}`, gpu: (v) => `GPU ${v}`, group: (v) => v, topic: (v) => v, partition: (v) => `#${v}` };

export function labelValue(t, name, value) {
  if (RAW[name]) return RAW[name](value);
  const key = `label.${name}.${value}`;
  const text = t(key);
  return text === key ? value : text;
}

// `t` is the i18n translate function; `withName` adds the series' own name (a chart of
// several series), otherwise the label values alone name the line.
export function seriesLabel(t, name, labels, withName) {
  const values = Object.entries(labels ?? {}).filter(([, v]) => v !== '').map(([k, v]) => labelValue(t, k, v));
  const own = t(`series.${name}`);
  const title = own === `series.${name}` ? name : own;
  if (!values.length) return title;
  return withName ? `${title}: ${values.join(', ')}` : values.join(', ');
}

// The locale times are written in: Russian with a 24-hour clock; English in the browser's
// own English locale (its clock), British (24 h) where the browser is not English.
export function timeLocale(lang, browser = typeof navigator !== 'undefined' ? navigator.language : '') {
  if (lang === 'ru') return 'ru-RU';
  return browser && browser.toLowerCase().startsWith('en') ? browser : 'en-GB';
}

export function formatTime(ms, lang, { seconds = false, browser } = {}) {
  const options = { hour: '2-digit', minute: '2-digit', ...(seconds ? { second: '2-digit' } : {}) };
  if (lang === 'ru') options.hourCycle = 'h23';
  return new Intl.DateTimeFormat(timeLocale(lang, browser), options).format(new Date(ms));
}

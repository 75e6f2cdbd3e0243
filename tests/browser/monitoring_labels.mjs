// Prints, as JSON, how the monitoring page names lines and writes times in each language
// (read by test_monitoring_labels.py). Usage: node monitoring_labels.mjs '<json request>'
import { messages } from '../../frontend/src/lib/i18n.js';
import { formatTime, seriesLabel } from '../../frontend/src/lib/series.js';

const request = JSON.parse(process.argv[2]);
const out = {};
for (const lang of Object.keys(messages)) {
  const t = (key) => messages[lang][key] ?? key;
  out[lang] = {
    names: Object.fromEntries(request.series.map((name) => [name, seriesLabel(t, name, {}, true)])),
    lines: request.lines.map(([name, labels, withName]) => seriesLabel(t, name, labels, withName)),
    missing: (request.keys ?? []).filter((key) => !(key in messages[lang])),
    times: request.times.map(([ms, browser]) => formatTime(ms, lang, { browser })),
  };
}
console.log(JSON.stringify(out));

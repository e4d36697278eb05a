// Formatting and small value helpers: plurals, vendor and label names, memory and byte sizes,
// dates and relative times, uptimes.
import { h, muted, dash } from './dom.js';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const arr = (x) => (Array.isArray(x) ? x : []);
const plural = (n, w) => `${n} ${w}${n === 1 ? '' : 's'}`;

const VENDORS = { intel: 'Intel', amd: 'AMD', nvidia: 'NVIDIA' };
const vendor = (v) => (Object.hasOwn(VENDORS, v) ? VENDORS[v] : String(v));
function humanize(s) {
  const t = String(s).replace(/[-_]+/g, ' ').trim();
  return /^[a-z]{1,2}$/.test(t) ? t.toUpperCase() : t.charAt(0).toUpperCase() + t.slice(1);
}
const memory = (mb) => (typeof mb !== 'number' ? dash() : mb >= 1024 && mb % 256 === 0 ? `${mb / 1024} GB` : `${mb} MB`);
const rtf = new Intl.RelativeTimeFormat(undefined, { numeric: 'auto' });
const dtf = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' });
function relTime(sec) {
  const d = sec - Date.now() / 1000;
  const [div, unit] = [[1, 'second'], [60, 'minute'], [3600, 'hour'], [86400, 'day'], [2592000, 'month'], [31536000, 'year']].findLast(([x]) => Math.abs(d) >= x * 0.99) || [1, 'second'];
  return rtf.format(Math.round(d / div), unit);
}
function timeEl(sec) {
  if (typeof sec !== 'number' || !isFinite(sec)) return muted('Never');
  const d = new Date(sec * 1000);
  return h('time', { datetime: d.toISOString() }, dtf.format(d), ' ', muted(`(${relTime(sec)})`));
}

function fmtBytes(n) {
  if (typeof n !== 'number' || !isFinite(n)) return '—';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let u = 0;
  while (n >= 1024 && u < units.length - 1) { n /= 1024; u++; }
  return `${n >= 10 || u === 0 ? Math.round(n) : n.toFixed(1)} ${units[u]}`;
}
function fmtUptime(s) {
  if (typeof s !== 'number' || s < 0) return '—';
  const d = Math.floor(s / 86400), hh = Math.floor((s % 86400) / 3600), mm = Math.floor((s % 3600) / 60);
  return d ? `${d} d ${hh} h` : hh ? `${hh} h ${mm} min` : mm ? `${mm} min ${s % 60} s` : `${s} s`;
}
const msTime = (ms) => timeEl(typeof ms === 'number' ? ms / 1000 : null);

export { sleep, arr, plural, vendor, humanize, memory, timeEl, fmtBytes, fmtUptime, msTime };

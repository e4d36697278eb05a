// A small, safe Markdown renderer. It builds DOM nodes directly and never
// parses HTML: raw HTML in the source comes out as literal text.
//
// Supported: ATX and setext headings, paragraphs, hard line breaks, **bold**,
// *italic*, `code`, fenced and indented code blocks, bullet and numbered lists
// (nested), block quotes, horizontal rules, links and autolinks (http/https
// only; anything else is rendered as plain text), images as their alt text.

const SAFE_URL = /^https?:\/\/[^\s]+$/i;
const ENTITIES = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'", nbsp: '\u00a0', copy: '\u00a9', reg: '\u00ae', mdash: '\u2014', ndash: '\u2013', hellip: '\u2026' };

function el(tag, text) {
  const n = document.createElement(tag);
  if (text !== undefined) n.textContent = text;
  return n;
}

export function safeUrl(url) {
  return typeof url === 'string' && SAFE_URL.test(url.trim()) ? url.trim() : null;
}

function link(url, children) {
  const a = document.createElement('a');
  a.href = url;
  a.rel = 'noopener noreferrer';
  a.target = '_blank';
  a.append(...children);
  return a;
}

// ---------- block level ----------

const RE_FENCE = /^( {0,3})(`{3,}|~{3,})(.*)$/;
const RE_ATX = /^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$/;
const RE_HR = /^ {0,3}([-*_])(?:[ \t]*\1){2,}[ \t]*$/;
const RE_QUOTE = /^ {0,3}> ?(.*)$/;
const RE_LIST = /^( {0,3})([-*+]|\d{1,9}[.)])([ \t]+|$)(.*)$/;
const RE_SETEXT = /^ {0,3}(=+|-+)[ \t]*$/;

const blank = (s) => /^[ \t]*$/.test(s);
const indentOf = (s) => s.match(/^ */)[0].length;

function listMarker(line) {
  const m = RE_LIST.exec(line);
  if (!m) return null;
  const ordered = /\d/.test(m[2]);
  const pad = m[3].length;
  const rest = m[4];
  const base = m[1].length + m[2].length;
  return {
    ordered,
    kind: ordered ? m[2].slice(-1) : m[2],
    start: ordered ? parseInt(m[2], 10) : 1,
    indent: m[1].length,
    // Content starts after the marker's padding (1 space when padding is 5+ or the item is empty).
    content: rest === '' || pad > 4 ? base + 1 : base + pad,
    text: pad > 4 ? ' '.repeat(pad - 1) + rest : rest,
  };
}

function startsBlock(line, inParagraph) {
  if (RE_FENCE.test(line) || RE_ATX.test(line) || RE_HR.test(line) || RE_QUOTE.test(line)) return true;
  const m = listMarker(line);
  // Like CommonMark: only non-empty items, and numbered lists starting at 1, interrupt a paragraph.
  return !!m && (!inParagraph || (m.text.trim() !== '' && (!m.ordered || m.start === 1)));
}

function stripIndent(line, n) {
  let i = 0;
  while (i < n && line[i] === ' ') i++;
  return line.slice(i);
}

function parseBlocks(lines, parent, opts) {
  let i = 0;
  while (i < lines.length) {
    const line = lines[i];
    if (blank(line)) { i++; continue; }
    let m;

    if ((m = RE_FENCE.exec(line)) && !(m[2][0] === '`' && m[3].includes('`'))) {
      const indent = m[1].length;
      const fence = m[2];
      const info = m[3].trim().split(/\s+/)[0];
      const body = [];
      i++;
      while (i < lines.length) {
        const close = /^ {0,3}(`{3,}|~{3,})[ \t]*$/.exec(lines[i]);
        if (close && close[1][0] === fence[0] && close[1].length >= fence.length) { i++; break; }
        body.push(stripIndent(lines[i], indent));
        i++;
      }
      parent.append(codeBlock(body.join('\n'), info));
      continue;
    }

    if (indentOf(line) >= 4) {
      const body = [];
      while (i < lines.length && (blank(lines[i]) || indentOf(lines[i]) >= 4)) body.push(stripIndent(lines[i++], 4));
      while (body.length && blank(body[body.length - 1])) body.pop();
      parent.append(codeBlock(body.join('\n'), ''));
      continue;
    }

    if ((m = RE_ATX.exec(line))) {
      const h = el('h' + Math.min(6, m[1].length + opts.headingOffset));
      inline(m[2] || '', h);
      parent.append(h);
      i++;
      continue;
    }

    if (RE_HR.test(line)) { parent.append(el('hr')); i++; continue; }

    if (RE_QUOTE.test(line)) {
      const inner = [];
      while (i < lines.length && !blank(lines[i])) {
        const q = RE_QUOTE.exec(lines[i]);
        if (q) inner.push(q[1]);
        else if (startsBlock(lines[i], false)) break;
        else inner.push(lines[i]); // lazy continuation
        i++;
      }
      const bq = el('blockquote');
      parseBlocks(inner, bq, opts);
      parent.append(bq);
      continue;
    }

    const marker = listMarker(line);
    if (marker) { i = parseList(lines, i, marker, parent, opts); continue; }

    // Paragraph (possibly a setext heading).
    const para = [line.replace(/^[ \t]+/, '')];
    i++;
    let setext = 0;
    while (i < lines.length && !blank(lines[i])) {
      const s = RE_SETEXT.exec(lines[i]);
      if (s) { setext = s[1][0] === '=' ? 1 : 2; i++; break; }
      if (startsBlock(lines[i], true)) break;
      para.push(lines[i].replace(/^[ \t]+/, ''));
      i++;
    }
    const p = el(setext ? 'h' + Math.min(6, setext + opts.headingOffset) : 'p');
    inline(para.join('\n').replace(/[ \t]+$/, ''), p);
    parent.append(p);
  }
}

function codeBlock(text, lang) {
  const pre = el('pre');
  const code = el('code', text);
  if (lang && /^[\w+#.-]{1,30}$/.test(lang)) {
    code.className = 'language-' + lang;
    pre.dataset.lang = lang;
  }
  pre.append(code);
  return pre;
}

function parseList(lines, i, first, parent, opts) {
  const list = el(first.ordered ? 'ol' : 'ul');
  if (first.ordered && first.start !== 1) list.start = first.start;
  let loose = false;
  let marker = first;
  const items = [];
  while (marker) {
    const body = [marker.text];
    const contentIndent = marker.content;
    i++;
    let sawBlank = false;
    let next = null;
    while (i < lines.length) {
      const line = lines[i];
      if (blank(line)) { sawBlank = true; body.push(''); i++; continue; }
      if (indentOf(line) >= contentIndent) {
        if (sawBlank) loose = loose || body.some((l) => !blank(l));
        sawBlank = false;
        body.push(stripIndent(line, contentIndent));
        i++;
        continue;
      }
      const m = listMarker(line);
      if (m && m.ordered === first.ordered && m.kind === first.kind) {
        if (sawBlank) loose = true;
        next = m;
        break;
      }
      // Lazy continuation of the item's last paragraph.
      if (!sawBlank && !startsBlock(line, true)) { body.push(line.trim()); i++; continue; }
      break;
    }
    while (body.length && blank(body[body.length - 1])) body.pop();
    const li = el('li');
    parseBlocks(body, li, opts);
    items.push(li);
    list.append(li);
    marker = next;
    if (!next) break;
  }
  if (!loose) {
    // Tight list: paragraphs inside items render inline.
    for (const li of items) {
      for (const child of [...li.children]) {
        if (child.tagName === 'P') child.replaceWith(...child.childNodes);
      }
    }
  }
  parent.append(list);
  return i;
}

// ---------- inline level ----------

const PUNCT = /[!-/:-@[-`{-~]/;

function decodeEntity(s) {
  const m = /^&(?:#(\d{1,7})|#[xX]([0-9a-fA-F]{1,6})|([a-zA-Z]{2,8}));/.exec(s);
  if (!m) return null;
  let ch;
  if (m[3]) ch = ENTITIES[m[3]];
  else {
    const cp = m[1] ? parseInt(m[1], 10) : parseInt(m[2], 16);
    if (cp > 0 && cp <= 0x10ffff && !(cp >= 0xd800 && cp <= 0xdfff)) ch = String.fromCodePoint(cp);
  }
  return ch === undefined ? null : { ch, len: m[0].length };
}

// Find the "]" matching the "[" at `start`, skipping code spans and escapes.
function closingBracket(s, start) {
  let depth = 0;
  for (let i = start; i < s.length; i++) {
    const c = s[i];
    if (c === '\\') { i++; continue; }
    if (c === '`') {
      const run = s.slice(i).match(/^`+/)[0];
      const end = s.indexOf(run, i + run.length);
      if (end > 0) { i = end + run.length - 1; continue; }
    }
    if (c === '[') depth++;
    else if (c === ']' && --depth === 0) return i;
  }
  return -1;
}

// Parse "(url "title")" right after a link's text; returns {url, end}.
function linkTarget(s, pos) {
  if (s[pos] !== '(') return null;
  const m = /^\(\s*(<[^<>\n]*>|[^\s()<>]*(?:\([^\s()<>]*\)[^\s()<>]*)*)(?:\s+("[^"]*"|'[^']*'|\([^)]*\)))?\s*\)/.exec(s.slice(pos));
  if (!m) return null;
  let url = m[1];
  if (url.startsWith('<')) url = url.slice(1, -1);
  return { url: url.replace(/\\([!-/:-@[-`{-~])/g, '$1'), end: pos + m[0].length };
}

function findEmphasisClose(s, from, delim) {
  const n = delim.length;
  for (let i = from; i < s.length; i++) {
    const c = s[i];
    if (c === '\\') { i++; continue; }
    if (c === '`') {
      const run = s.slice(i).match(/^`+/)[0];
      const end = s.indexOf(run, i + run.length);
      if (end > 0) { i = end + run.length - 1; continue; }
    }
    if (s.startsWith(delim, i) && !/\s/.test(s[i - 1]) && !(n === 1 && s[i - 1] === delim)) {
      // For single delimiters don't close on half of a double one (e.g. "*a **b** c*").
      if (n === 1 && s[i + 1] === delim) {
        const inner = findEmphasisClose(s, i + 2, delim + delim);
        if (inner > 0) { i = inner + 1; continue; }
      }
      if (delim[0] === '_' && /[\p{L}\p{N}]/u.test(s[i + n] || '')) continue;
      return i;
    }
  }
  return -1;
}

function inline(s, parent) {
  let buf = '';
  const flush = () => { if (buf) { parent.append(document.createTextNode(buf)); buf = ''; } };
  let i = 0;
  while (i < s.length) {
    const c = s[i];

    if (c === '\\') {
      if (s[i + 1] === '\n') { flush(); parent.append(el('br')); i += 2; continue; }
      if (PUNCT.test(s[i + 1] || '')) { buf += s[i + 1]; i += 2; continue; }
    }

    if (c === '\n') {
      if (/ {2,}$/.test(buf)) { buf = buf.replace(/ +$/, ''); flush(); parent.append(el('br')); }
      else { buf = buf.replace(/ +$/, '') + '\n'; }
      i++;
      continue;
    }

    if (c === '&') {
      const d = decodeEntity(s.slice(i));
      if (d) { buf += d.ch; i += d.len; continue; }
    }

    if (c === '`') {
      const run = s.slice(i).match(/^`+/)[0];
      let end = i + run.length;
      // The closing run must have exactly the same length.
      for (;;) {
        end = s.indexOf(run, end);
        if (end < 0 || s[end + run.length] !== '`') break;
        end = end + run.length + s.slice(end + run.length).match(/^`*/)[0].length;
      }
      if (end >= 0) {
        let code = s.slice(i + run.length, end).replace(/\n/g, ' ');
        if (/^ .*[^ ].* $/.test(code)) code = code.slice(1, -1);
        flush();
        parent.append(el('code', code));
        i = end + run.length;
        continue;
      }
      buf += run;
      i += run.length;
      continue;
    }

    if (c === '[' || (c === '!' && s[i + 1] === '[')) {
      const image = c === '!';
      const open = image ? i + 1 : i;
      const close = closingBracket(s, open);
      const target = close > 0 ? linkTarget(s, close + 1) : null;
      if (target) {
        const label = s.slice(open + 1, close);
        flush();
        if (image) {
          // No images: the page must not load anything remote. Show the alt text.
          if (label) parent.append(el('span', label));
        } else {
          const frag = document.createDocumentFragment();
          inline(label, frag);
          const url = safeUrl(target.url);
          if (url) parent.append(link(url, [...frag.childNodes]));
          else parent.append(frag);
        }
        i = target.end;
        continue;
      }
    }

    if (c === '<') {
      const m = /^<(https?:\/\/[^\s<>]+)>/i.exec(s.slice(i));
      if (m) { flush(); parent.append(link(m[1], [m[1]])); i += m[0].length; continue; }
    }

    if ((c === 'h' || c === 'H') && !/[\p{L}\p{N}]/u.test(s[i - 1] || '')) {
      const m = /^https?:\/\/[^\s<>]+/i.exec(s.slice(i));
      if (m) {
        let url = m[0].replace(/[.,:;!?'")\]*_]+$/, '');
        // Keep a closing parenthesis that balances one inside the URL.
        while (s[i + url.length] === ')' && (url.match(/\(/g) || []).length > (url.match(/\)/g) || []).length) url += ')';
        if (/^https?:\/\/./i.test(url)) { flush(); parent.append(link(url, [url])); i += url.length; continue; }
      }
    }

    if (c === '*' || c === '_') {
      const dbl = s[i + 1] === c;
      const delim = dbl ? c + c : c;
      const after = s[i + delim.length];
      const leftOk = c === '*' || !/[\p{L}\p{N}]/u.test(s[i - 1] || '');
      if (after && !/\s/.test(after) && leftOk && after !== c) {
        const end = findEmphasisClose(s, i + delim.length, delim);
        if (end > i + delim.length) {
          flush();
          const node = el(dbl ? 'strong' : 'em');
          inline(s.slice(i + delim.length, end), node);
          parent.append(node);
          i = end + delim.length;
          continue;
        }
      }
      const run = s.slice(i).match(c === '*' ? /^\*+/ : /^_+/)[0];
      buf += run;
      i += run.length;
      continue;
    }

    buf += c;
    i++;
  }
  flush();
}

/**
 * Render Markdown into a new <div class="markdown">.
 * @param {string} source
 * @param {{headingOffset?: number}} [options] headingOffset shifts heading levels (1 turns # into h2).
 */
export function renderMarkdown(source, options = {}) {
  const opts = { headingOffset: options.headingOffset || 0 };
  const root = el('div');
  root.className = 'markdown';
  const text = String(source ?? '')
    .replace(/\r\n?/g, '\n')
    .replace(/\u0000/g, '\ufffd')
    .replace(/^[^\n]*$/gm, (line) => line.replace(/^(\t| {0,3}\t)+/, (t) => t.replace(/ {0,3}\t/g, '    ')));
  parseBlocks(text.split('\n'), root, opts);
  return root;
}

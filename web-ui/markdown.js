// A small, safe Markdown renderer: it builds DOM nodes and never parses HTML, so raw HTML in
// the source shows as text. Headings, paragraphs, line breaks, **bold**, *italic*,
// `code`, fenced and indented code, nested lists, block quotes, rules, and links and autolinks
// for http/https URLs only (anything else renders as its text; images as their alt text).

const el = (tag, text) => {
  const n = document.createElement(tag);
  if (text !== undefined) n.textContent = text;
  return n;
};
export const safeUrl = (u) => (typeof u === 'string' && /^https?:\/\/\S+$/i.test(u.trim()) ? u.trim() : null);
function link(url, kids) {
  const a = el('a');
  a.href = url;
  a.rel = 'noopener noreferrer';
  a.target = '_blank';
  a.append(...kids);
  return a;
}

// -- blocks
const FENCE = /^( {0,3})(`{3,}|~{3,})(.*)$/;
const ATX = /^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$/;
const HR = /^ {0,3}([-*_])(?:[ \t]*\1){2,}[ \t]*$/;
const QUOTE = /^ {0,3}> ?(.*)$/;
const blank = (s) => /^[ \t]*$/.test(s);
const indent = (s) => /^ */.exec(s)[0].length;
const dedent = (s, n) => s.replace(new RegExp(`^ {0,${n}}`), '');

function marker(line) {
  const m = /^( {0,3})([-*+]|\d{1,9}[.)])([ \t]+|$)(.*)$/.exec(line);
  if (!m) return null;
  const ordered = /\d/.test(m[2]);
  const pad = m[3].length;
  const base = m[1].length + m[2].length;
  return {
    ordered, kind: m[2].slice(-1), start: ordered ? parseInt(m[2], 10) : 1,
    // Content starts after the padding; 1 space when the padding is 5+ (the rest is indented code).
    content: !m[4] || pad > 4 ? base + 1 : base + pad,
    text: pad > 4 ? ' '.repeat(pad - 1) + m[4] : m[4],
  };
}

function startsBlock(line, inPara) {
  if ([FENCE, ATX, HR, QUOTE].some((re) => re.test(line))) return true;
  const m = marker(line);
  // As in CommonMark, only non-empty items, numbered ones starting at 1, interrupt a paragraph.
  return !!m && (!inPara || (!!m.text.trim() && m.start === 1));
}

function codeBlock(text, lang) {
  const pre = el('pre');
  const c = el('code', text);
  if (/^[\w+#.-]{1,30}$/.test(lang)) { c.className = 'language-' + lang; pre.dataset.lang = lang; }
  pre.append(c);
  return pre;
}

function blocks(lines, parent, off) {
  let i = 0;
  while (i < lines.length) {
    const line = lines[i];
    let m;
    if (blank(line)) i++;
    else if ((m = FENCE.exec(line)) && !(m[2][0] === '`' && m[3].includes('`'))) {
      const body = [];
      for (i++; i < lines.length; i++) {
        const c = /^ {0,3}(`{3,}|~{3,})[ \t]*$/.exec(lines[i]);
        if (c && c[1][0] === m[2][0] && c[1].length >= m[2].length) { i++; break; }
        body.push(dedent(lines[i], m[1].length));
      }
      parent.append(codeBlock(body.join('\n'), m[3].trim().split(/\s+/)[0]));
    } else if (indent(line) >= 4) {
      const body = [];
      while (i < lines.length && (blank(lines[i]) || indent(lines[i]) >= 4)) body.push(dedent(lines[i++], 4));
      while (blank(body.at(-1))) body.pop();
      parent.append(codeBlock(body.join('\n'), ''));
    } else if ((m = ATX.exec(line))) {
      const n = el('h' + Math.min(6, m[1].length + off));
      inline(m[2] || '', n);
      parent.append(n);
      i++;
    } else if (HR.test(line)) {
      parent.append(el('hr'));
      i++;
    } else if (QUOTE.test(line)) {
      const inner = [];
      for (; i < lines.length && !blank(lines[i]); i++) {
        const q = QUOTE.exec(lines[i]);
        if (!q && startsBlock(lines[i])) break;
        inner.push(q ? q[1] : lines[i]); // unquoted lines continue the quote's paragraph
      }
      const bq = el('blockquote');
      blocks(inner, bq, off);
      parent.append(bq);
    } else if ((m = marker(line))) {
      i = list(lines, i, m, parent, off);
    } else {
      const para = [line.replace(/^[ \t]+/, '')];
      for (i++; i < lines.length && !blank(lines[i]); i++) {
        if (startsBlock(lines[i], true)) break;
        para.push(lines[i].replace(/^[ \t]+/, ''));
      }
      const p = el('p');
      inline(para.join('\n').replace(/[ \t]+$/, ''), p);
      parent.append(p);
    }
  }
}

function list(lines, i, first, parent, off) {
  const node = el(first.ordered ? 'ol' : 'ul');
  if (first.start !== 1) node.start = first.start;
  let loose = false;
  for (let mk = first; mk;) {
    const body = [mk.text];
    let gap = false;
    let next = null;
    for (i++; i < lines.length; i++) {
      const line = lines[i];
      if (blank(line)) { gap = true; body.push(''); continue; }
      if (indent(line) >= mk.content) {
        if (gap) loose = true;
        gap = false;
        body.push(dedent(line, mk.content));
        continue;
      }
      const m = marker(line);
      if (m && m.ordered === first.ordered && m.kind === first.kind) { loose ||= gap; next = m; break; }
      if (gap || startsBlock(line, true)) break;
      body.push(line.trim()); // lazy continuation
    }
    while (body.length > 1 && blank(body.at(-1))) body.pop();
    const li = el('li');
    blocks(body, li, off);
    node.append(li);
    mk = next;
  }
  // A tight list shows its items' paragraphs inline.
  if (!loose) for (const p of node.querySelectorAll(':scope > li > p')) p.replaceWith(...p.childNodes);
  parent.append(node);
  return i;
}

// -- inline
const ENT = new Map(Object.entries({ amp: '&', lt: '<', gt: '>', quot: '"', apos: "'", nbsp: '\u00a0' }));
const WORD = /[\p{L}\p{N}]/u;

// Index just past the code span starting at i, or -1 when its backticks are never closed.
function codeEnd(s, i) {
  const run = /^`+/.exec(s.slice(i))[0];
  for (let j = i + run.length; (j = s.indexOf(run, j)) >= 0;) {
    const end = j + /^`+/.exec(s.slice(j))[0].length;
    if (end - j === run.length) return end;
    j = end;
  }
  return -1;
}

// Index of the closer for the emphasis delimiter `d` opened before `from`, or -1.
function emphasisEnd(s, from, d) {
  for (let i = from; i < s.length; i++) {
    if (s[i] === '\\') { i++; continue; }
    if (s[i] === '`') { const e = codeEnd(s, i); if (e > 0) { i = e - 1; continue; } }
    if (!s.startsWith(d, i) || /\s/.test(s[i - 1]) || (d.length === 1 && s[i - 1] === d)) continue;
    if (d.length === 1 && s[i + 1] === d) {
      // "*a **b** c*": skip over a nested double delimiter.
      const e = emphasisEnd(s, i + 2, d + d);
      if (e > 0) { i = e + 1; continue; }
    }
    if (d[0] === '_' && WORD.test(s[i + d.length] || '')) continue;
    return i;
  }
  return -1;
}

function inline(s, parent) {
  let buf = '';
  const flush = () => { if (buf) parent.append(buf); buf = ''; };
  const put = (node) => { flush(); parent.append(node); };
  for (let i = 0; i < s.length;) {
    const c = s[i];
    const rest = s.slice(i);
    let m;
    if (c === '\\' && s[i + 1] === '\n') { put(el('br')); i += 2; }
    else if (c === '\\' && /[!-/:-@[-`{-~]/.test(s[i + 1] || '')) { buf += s[i + 1]; i += 2; }
    else if (c === '\n') {
      if (/ {2}$/.test(buf)) { buf = buf.trimEnd(); put(el('br')); } else buf = buf.trimEnd() + '\n';
      i++;
    } else if ((m = /^&(?:#(\d{1,7})|#x([\da-f]{1,6})|(\w+));/i.exec(rest))) {
      const cp = m[1] ? +m[1] : m[2] ? parseInt(m[2], 16) : 0;
      const ch = m[3] ? ENT.get(m[3]) : cp > 0 && cp < 0x110000 && (cp < 0xd800 || cp > 0xdfff) ? String.fromCodePoint(cp) : undefined;
      buf += ch ?? m[0];
      i += m[0].length;
    } else if (c === '`') {
      const run = /^`+/.exec(rest)[0];
      const end = codeEnd(s, i);
      if (end < 0) { buf += run; i += run.length; continue; }
      let text = s.slice(i + run.length, end - run.length).replace(/\n/g, ' ');
      if (/^ .*\S.* $/.test(text)) text = text.slice(1, -1);
      put(el('code', text));
      i = end;
    } else if ((c === '[' || rest.startsWith('![')) && (m = linkAt(s, c === '!' ? i + 1 : i))) {
      const [label, url, end] = m;
      if (c === '!') { if (label) put(el('span', label)); } // never load images: show the alt text
      else {
        const frag = document.createDocumentFragment();
        inline(label, frag);
        put(safeUrl(url) ? link(safeUrl(url), [...frag.childNodes]) : frag);
      }
      i = end;
    } else if ((m = /^<(https?:\/\/[^\s<>]+)>/i.exec(rest))) {
      put(link(m[1], [m[1]]));
      i += m[0].length;
    } else if (/h/i.test(c) && !WORD.test(s[i - 1] || '') && (m = /^https?:\/\/[^\s<>]+/i.exec(rest))) {
      let url = m[0].replace(/[.,:;!?'")\]*_]+$/, '');
      // Keep a closing parenthesis that balances one inside the URL.
      while (s[i + url.length] === ')' && url.split('(').length > url.split(')').length) url += ')';
      if (/^https?:\/\/./i.test(url)) { put(link(url, [url])); i += url.length; } else { buf += c; i++; }
    } else if (c === '*' || c === '_') {
      const d = s[i + 1] === c ? c + c : c;
      const after = s[i + d.length] || ' ';
      const end = !/\s/.test(after) && after !== c && (c === '*' || !WORD.test(s[i - 1] || '')) ? emphasisEnd(s, i + d.length, d) : -1;
      if (end > i + d.length) {
        const n = el(d.length === 2 ? 'strong' : 'em');
        inline(s.slice(i + d.length, end), n);
        put(n);
        i = end + d.length;
      } else {
        const run = (c === '*' ? /^\*+/ : /^_+/).exec(rest)[0];
        buf += run;
        i += run.length;
      }
    } else { buf += c; i++; }
  }
  flush();
}

// "[label](url "title")" starting at s[i] === '[': returns [label, url, end] or null.
function linkAt(s, i) {
  let depth = 0;
  let j = i;
  for (; j < s.length; j++) {
    if (s[j] === '\\') j++;
    else if (s[j] === '`') { const e = codeEnd(s, j); if (e > 0) j = e - 1; }
    else if (s[j] === '[') depth++;
    else if (s[j] === ']' && !--depth) break;
  }
  const m = j < s.length && /^\(\s*(<[^<>\n]*>|[^\s()<>]*(?:\([^\s()<>]*\)[^\s()<>]*)*)(?:\s+("[^"]*"|'[^']*'|\([^)]*\)))?\s*\)/.exec(s.slice(j + 1));
  if (!m) return null;
  const url = m[1].replace(/^<(.*)>$/, '$1').replace(/\\([!-/:-@[-`{-~])/g, '$1');
  return [s.slice(i + 1, j), url, j + 1 + m[0].length];
}

/** Render Markdown into a new <div class="markdown">; headingOffset 1 turns "#" into <h2>. */
export function renderMarkdown(source, { headingOffset = 0 } = {}) {
  const root = el('div');
  root.className = 'markdown';
  const text = String(source ?? '').replace(/\r\n?/g, '\n').replace(/\0/g, '\ufffd')
    .replace(/^[ \t]+/gm, (ws) => ws.replace(/ {0,3}\t/g, '    '));
  blocks(text.split('\n'), root, headingOffset);
  return root;
}

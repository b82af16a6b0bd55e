// hasvc console. Plain JavaScript, no dependencies: every action is a
// call to the public HTTP API with the token the user pasted, which is
// kept in sessionStorage (never in a URL). Data is put in the page as
// text nodes only, never as HTML.
'use strict';

const TOKEN_KEY = 'hasvc.token';
const HISTORY_KEY = 'hasvc.history';
const HISTORY_MAX = 50;

let me = null;          // GET /token: what the token allows
let pageAbort = null;   // aborts the current page's requests and feed

// ---------------------------------------------------------------- DOM

// el builds an element: el('td', {class: 'x', onclick: f}, 'text', child).
function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else if (k === 'class') e.className = v;
    else if (v === true) e.setAttribute(k, '');
    else e.setAttribute(k, v);
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

function show(...children) {
  const main = document.getElementById('main');
  main.replaceChildren(...children.flat());
}

function errorBox(err) {
  if (err instanceof APIError) {
    return el('div', {class: 'error', role: 'alert'}, `${err.code}: ${err.message}`);
  }
  return el('div', {class: 'error', role: 'alert'}, String(err && err.message || err));
}

function kvTable(pairs) {
  return el('table', {class: 'kv'}, pairs.map(([k, v]) => el('tr', {}, el('td', {}, k), el('td', {}, v))));
}

function bytes(n) {
  if (n === undefined || n === null) return '';
  const u = ['B', 'KB', 'MB', 'GB', 'TB'];
  let i = 0;
  while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
  return (i ? n.toFixed(1) : String(n)) + ' ' + u[i];
}

function when(t) {
  if (!t) return '';
  const d = new Date(t);
  return isNaN(d) ? String(t) : d.toLocaleString();
}

// ---------------------------------------------------------------- API

class APIError extends Error {
  constructor(status, code, message, statement) {
    super(message);
    this.status = status;
    this.code = code;
    this.statement = statement;
  }
}

function token() { return sessionStorage.getItem(TOKEN_KEY); }

// call sends one request to the API and returns the response (ok) or
// throws an APIError with the API's code and message.
async function call(method, path, body, signal) {
  const headers = {Authorization: 'Bearer ' + token()};
  const init = {method, headers, signal: signal || (pageAbort && pageAbort.signal)};
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  const res = await fetch(path, init);
  if (!res.ok) {
    let code = 'HTTP' + res.status, message = res.statusText, statement;
    try {
      const e = (await res.json()).error;
      if (e) ({code, message, statement} = e);
    } catch (_) { /* not JSON */ }
    if (res.status === 401 && path !== '/token') {
      signOut(`${code}: ${message}`);
    }
    throw new APIError(res.status, code, message, statement);
  }
  return res;
}

async function getJSON(path) { return (await call('GET', path)).json(); }
async function sendJSON(method, path, body) { return (await call(method, path, body)).json(); }

// Num is a JSON number as the API wrote it: SQLite's INTEGER and REAL
// stay apart (a REAL always has a fraction or exponent) and integers keep
// every digit.
class Num {
  constructor(src) { this.src = src; this.real = /[.eE]/.test(src); }
}

// parseTyped parses a query response keeping each number's source text
// (JSON.parse's source access; older browsers fall back to the value).
function parseTyped(text) {
  return JSON.parse(text, function (key, value, ctx) {
    if (typeof value !== 'number') return value;
    if (ctx && typeof ctx.source === 'string') return new Num(ctx.source);
    const n = new Num(String(value));
    n.real = !Number.isInteger(value);
    return n;
  });
}

// query runs statements as one transaction (POST /db/<name>).
async function query(db, stmts, signal) {
  const res = await call('POST', '/db/' + encodeURIComponent(db), stmts, signal);
  return parseTyped(await res.text());
}

async function download(path) {
  const res = await call('GET', path);
  const cd = res.headers.get('Content-Disposition') || '';
  const m = /filename="?([^";]+)"?/.exec(cd);
  const blob = await res.blob();
  const a = el('a', {href: URL.createObjectURL(blob), download: m ? m[1] : 'download'});
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(a.href), 60000);
}

// ---------------------------------------------------------------- SQL

// splitSQL splits a script into statements at semicolons outside
// strings, quoted names, comments and trigger bodies (BEGIN ... END), as
// SQLite itself reads them. Empty statements are dropped.
function splitSQL(text) {
  const out = [];
  let start = 0, i = 0, depth = 0, trigger = false, words = [];
  const n = text.length;
  const push = (end) => {
    const s = text.slice(start, end).trim();
    if (s && s !== ';' && !/^(\s|;|--[^\n]*(\n|$)|\/\*[\s\S]*?\*\/)*$/.test(s)) out.push(s);
    start = end;
    depth = 0; trigger = false; words = [];
  };
  while (i < n) {
    const c = text[i];
    if (c === "'" || c === '"' || c === '`') {
      const j = text.indexOf(c, i + 1);
      i = j < 0 ? n : j + 1; // a doubled quote reopens at once: still inside
      continue;
    }
    if (c === '[') { const j = text.indexOf(']', i + 1); i = j < 0 ? n : j + 1; continue; }
    if (c === '-' && text[i + 1] === '-') { const j = text.indexOf('\n', i); i = j < 0 ? n : j + 1; continue; }
    if (c === '/' && text[i + 1] === '*') { const j = text.indexOf('*/', i + 2); i = j < 0 ? n : j + 2; continue; }
    if (/[A-Za-z_]/.test(c)) {
      let j = i + 1;
      while (j < n && /[A-Za-z0-9_$]/.test(text[j])) j++;
      const w = text.slice(i, j).toUpperCase();
      if (words.length < 4) {
        words.push(w);
        if (words[0] === 'CREATE' && words.includes('TRIGGER')) trigger = true;
      }
      if (trigger && (w === 'BEGIN' || w === 'CASE')) depth++;
      if (trigger && w === 'END') depth--;
      i = j;
      continue;
    }
    if (c === ';' && !(trigger && depth > 0)) { push(i + 1); i++; continue; }
    i++;
  }
  push(n);
  return out;
}

function hex(b64) {
  const s = atob(b64);
  let h = '';
  for (let i = 0; i < s.length && i < 64; i++) h += s.charCodeAt(i).toString(16).padStart(2, '0');
  return {hex: h, len: s.length};
}

// typeOf names a result value's SQLite storage class.
function typeOf(v) {
  if (v === null) return 'null';
  if (v instanceof Num) return v.real ? 'real' : 'integer';
  if (typeof v === 'string') return 'text';
  if (v && typeof v === 'object' && 'blob' in v) return 'blob';
  if (v && typeof v === 'object' && 'text_base64' in v) return 'text';
  return typeof v;
}

function cell(v) {
  const t = typeOf(v);
  switch (t) {
    case 'null': return el('td', {class: 'null', title: 'NULL'}, 'NULL');
    case 'integer': return el('td', {class: 'num int', title: 'integer'}, v.src);
    case 'real': return el('td', {class: 'num real', title: 'real'}, v.src);
    case 'blob': {
      const h = hex(v.blob);
      return el('td', {class: 'blob', title: `blob, ${h.len} bytes`}, `x'${h.hex}'` + (h.len > 64 ? ` … (${h.len} bytes)` : ''));
    }
    case 'text':
      if (typeof v === 'object') {
        const h = hex(v.text_base64);
        return el('td', {class: 'blob', title: 'text that is not valid UTF-8'}, `text x'${h.hex}'`);
      }
      return el('td', {class: v === '' ? 'empty' : '', title: 'text'}, el('pre', {}, v));
  }
  return el('td', {}, JSON.stringify(v));
}

// grid shows one result: its columns with the storage classes their
// values had, and its rows.
function grid(result) {
  const cols = result.columns || [];
  const rows = result.rows || [];
  const types = cols.map((_, i) => [...new Set(rows.map(r => typeOf(r[i])))].join(', '));
  return el('div', {class: 'scroll'}, el('table', {class: 'grid'},
    el('thead', {}, el('tr', {}, cols.map((c, i) => el('th', {}, c, el('span', {class: 'type'}, types[i] || ''))))),
    el('tbody', {}, rows.map(r => el('tr', {}, r.map(cell))))));
}

const legend = () => el('div', {class: 'legend muted'},
  el('span', {class: 'int'}, 'integer'), el('span', {class: 'real'}, 'real'), el('span', {}, 'text'),
  el('span', {class: 'blob'}, "blob x'hex'"), el('span', {class: 'null'}, 'NULL'), el('span', {}, '(empty) = empty text'));

function quoteName(n) { return '"' + n.replaceAll('"', '""') + '"'; }

// ---------------------------------------------------------------- pages

function signOut(reason) {
  sessionStorage.removeItem(TOKEN_KEY);
  me = null;
  if (pageAbort) pageAbort.abort();
  document.getElementById('nav').hidden = true;
  loginPage(reason);
}

function loginPage(reason) {
  const box = el('textarea', {id: 'token', rows: 4, placeholder: 'eyJ...', autocomplete: 'off', spellcheck: 'false'});
  const msg = el('div');
  if (reason) msg.append(el('div', {class: 'error'}, reason));
  const form = el('form', {id: 'login', onsubmit: async (ev) => {
    ev.preventDefault();
    const t = box.value.trim().replace(/^Bearer\s+/i, '');
    if (!t) return;
    sessionStorage.setItem(TOKEN_KEY, t);
    try {
      await start();
    } catch (err) {
      sessionStorage.removeItem(TOKEN_KEY);
      msg.replaceChildren(errorBox(err));
    }
  }},
  el('h1', {}, 'Sign in'),
  el('p', {class: 'muted'}, 'Paste a token (a node prints its admin token on first start and keeps it in data/admin.token; ',
    el('code', {}, 'hasvc token --db mydb --perm write'), ' makes others). It stays in this tab only.'),
  el('label', {}, 'Token', box),
  el('div', {class: 'row'}, el('button', {type: 'submit'}, 'Sign in')), msg);
  show(form);
  box.focus();
}

async function start() {
  me = await getJSON('/token');
  document.getElementById('nav').hidden = false;
  document.getElementById('whoami').textContent =
    `${me.subject} · ${me.perm} on ${me.databases.join(', ')} · expires ${when(me.expires_at)}`;
  await route();
}

const isAdmin = () => me && me.perm === 'admin';
const canWrite = () => me && me.perm !== 'read';

async function route() {
  if (!token()) return loginPage();
  if (!me) return start();
  if (pageAbort) pageAbort.abort();
  pageAbort = new AbortController();
  const parts = location.hash.replace(/^#\/?/, '').split('/').map(decodeURIComponent);
  document.querySelectorAll('nav a').forEach(a => a.classList.toggle('active',
    a.dataset.nav === (parts[0] === 'db' || !parts[0] ? 'databases' : parts[0])));
  try {
    switch (parts[0]) {
      case '': return await databasesPage();
      case 'db': return await databasePage(parts[1], parts[2] || 'sql', parts.slice(3));
      case 'cluster': return await clusterPage();
      case 'tokens': return await tokensPage();
    }
    show(el('h1', {}, 'Not found'), el('p', {}, el('a', {href: '#/'}, 'Databases')));
  } catch (err) {
    if (err.name === 'AbortError') return;
    show(errorBox(err));
  }
}

// infos fetches GET /databases/<name> for each database, a few at a time.
async function infos(names) {
  const out = new Map();
  let next = 0;
  const worker = async () => {
    while (next < names.length) {
      const n = names[next++];
      try { out.set(n, await getJSON('/databases/' + encodeURIComponent(n))); } catch (err) { out.set(n, {error: err}); }
    }
  };
  await Promise.all(Array.from({length: Math.min(6, names.length)}, worker));
  return out;
}

function nodesSummary(info) {
  if (!info || !info.nodes) return '';
  return info.nodes.map(n => `${n.node}: ${n.applied_seq}` + (n.lag ? ` (lag ${n.lag})` : '') + (n.stuck ? ' STUCK' : '')).join('; ');
}

async function databasesPage() {
  const {databases} = await getJSON('/databases');
  const msg = el('div');
  const parts = [el('h1', {}, 'Databases')];
  if (isAdmin()) parts.push(createForm(msg));
  parts.push(msg);
  const table = el('tbody');
  parts.push(el('div', {class: 'scroll'}, el('table', {id: 'databases'},
    el('thead', {}, el('tr', {}, ['name', 'mode', 'replicas', 'size', 'stream seq', 'nodes: applied seq (lag)', 'created', ''].map(h => el('th', {}, h)))),
    table)));
  if (!databases.length) parts.push(el('p', {class: 'muted'}, 'No databases yet.'));
  show(parts);
  const info = await infos(databases.map(d => d.name));
  for (const d of databases) {
    const i = info.get(d.name) || {};
    table.append(el('tr', {'data-name': d.name},
      el('td', {}, el('a', {href: '#/db/' + encodeURIComponent(d.name) + '/sql'}, d.name)),
      el('td', {}, d.mode), el('td', {class: 'num'}, d.replicas),
      el('td', {class: 'num'}, i.error ? '' : `${bytes(i.size_bytes)} of ${bytes(i.size_limit_bytes)}`),
      el('td', {class: 'num'}, i.error ? '' : i.stream_seq),
      el('td', {}, i.error ? el('span', {class: 'bad'}, i.error.message) : nodesSummary(i)),
      el('td', {}, when(d.created_at)),
      el('td', {}, isAdmin() ? el('button', {class: 'danger', type: 'button', onclick: () => confirmDelete(d.name)}, 'Delete') : '')));
  }
}

function createForm(msg) {
  const name = el('input', {name: 'name', required: true, pattern: '[a-z][a-z0-9_\\-]{0,62}', placeholder: 'mydb', autocapitalize: 'off'});
  const mode = el('select', {name: 'mode'}, el('option', {value: 'strong'}, 'strong'), el('option', {value: 'eventual'}, 'eventual'));
  const replicas = el('input', {name: 'replicas', type: 'number', min: 1, max: 5, value: 1});
  return el('form', {class: 'row', id: 'create', onsubmit: async (ev) => {
    ev.preventDefault();
    try {
      await sendJSON('POST', '/databases', {name: name.value.trim(), mode: mode.value, replicas: Number(replicas.value)});
      location.hash = '#/db/' + encodeURIComponent(name.value.trim()) + '/sql';
    } catch (err) {
      msg.replaceChildren(errorBox(err));
    }
  }}, el('label', {}, 'Name', name), el('label', {}, 'Mode', mode), el('label', {}, 'Replicas', replicas),
  el('button', {type: 'submit'}, 'Create database'));
}

// confirmDelete asks for the database's name typed out before deleting.
function confirmDelete(name) {
  const input = el('input', {name: 'confirm', autocomplete: 'off', autocapitalize: 'off'});
  const go = el('button', {class: 'danger', type: 'submit', disabled: true}, 'Delete for ever');
  const msg = el('div');
  const dlg = el('dialog', {id: 'confirm-delete'},
    el('form', {method: 'dialog', onsubmit: async (ev) => {
      ev.preventDefault();
      if (input.value !== name) return;
      try {
        await call('DELETE', '/databases/' + encodeURIComponent(name));
        dlg.close();
        dlg.remove();
        route();
      } catch (err) {
        msg.replaceChildren(errorBox(err));
      }
    }},
    el('p', {}, 'This deletes ', el('b', {}, name), ', its stream, snapshots and every copy. Type its name to confirm.'),
    input, msg,
    el('div', {class: 'row'}, go, el('button', {type: 'button', class: 'secondary', onclick: () => { dlg.close(); dlg.remove(); }}, 'Cancel'))));
  input.addEventListener('input', () => { go.disabled = input.value !== name; });
  document.body.append(dlg);
  dlg.showModal();
  input.focus();
}

const TABS = [['sql', 'SQL'], ['tables', 'Tables'], ['snapshots', 'Backups & snapshots'], ['changes', 'Change feed'], ['info', 'Status']];

async function databasePage(name, tab, rest) {
  const base = '#/db/' + encodeURIComponent(name) + '/';
  const head = [el('h1', {}, name),
    el('div', {class: 'tabs'}, TABS.map(([id, label]) => el('a', {href: base + id, class: id === tab ? 'active' : ''}, label)))];
  switch (tab) {
    case 'sql': return sqlTab(name, head);
    case 'tables': return tablesTab(name, head, rest[0], Number(rest[1] || 0));
    case 'snapshots': return snapshotsTab(name, head);
    case 'changes': return changesTab(name, head);
    case 'info': return infoTab(name, head);
  }
  show(head, el('p', {}, 'No such tab.'));
}

// ---- SQL editor

function history() {
  try { return JSON.parse(sessionStorage.getItem(HISTORY_KEY)) || []; } catch (_) { return []; }
}

function remember(db, sql) {
  const h = history().filter(e => !(e.db === db && e.sql === sql));
  h.unshift({db, sql, at: Date.now()});
  sessionStorage.setItem(HISTORY_KEY, JSON.stringify(h.slice(0, HISTORY_MAX)));
}

function sqlTab(name, head) {
  const draftKey = 'hasvc.draft.' + name;
  const editor = el('textarea', {id: 'sql', rows: 8, spellcheck: 'false',
    placeholder: 'CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT);\nSELECT * FROM t;'});
  editor.value = sessionStorage.getItem(draftKey) || '';
  editor.addEventListener('input', () => sessionStorage.setItem(draftKey, editor.value));
  const out = el('div', {id: 'results'});
  const hist = el('ul', {class: 'history', id: 'history'});
  const runBtn = el('button', {type: 'submit', id: 'run'}, 'Run');
  const drawHistory = () => hist.replaceChildren(...history().filter(e => e.db === name).map(e =>
    el('li', {title: e.sql, onclick: () => { editor.value = e.sql; editor.focus(); }}, e.sql.replace(/\s+/g, ' '))));
  const run = async () => {
    const stmts = splitSQL(editor.value);
    if (!stmts.length) { out.replaceChildren(el('div', {class: 'notice'}, 'Nothing to run.')); return; }
    runBtn.disabled = true;
    out.replaceChildren(el('p', {class: 'muted'}, 'Running…'));
    const t0 = performance.now();
    try {
      const res = await query(name, stmts.map(sql => ({sql})));
      const ms = (performance.now() - t0).toFixed(1);
      const summary = `${stmts.length} statement${stmts.length > 1 ? 's' : ''} · ` +
        (res.sequence ? `committed at sequence ${res.sequence.src}` : 'read only') + ` · ${ms} ms`;
      out.replaceChildren(el('div', {class: 'notice', id: 'summary'}, summary), legend(),
        ...res.results.map((r, i) => el('section', {class: 'result'},
          el('h2', {}, `Statement ${i + 1}`, el('span', {class: 'muted mono stmt'}, ' ' + stmts[i].slice(0, 120))),
          grid(r), el('p', {class: 'muted'}, `${(r.rows || []).length} row${(r.rows || []).length === 1 ? '' : 's'}`))));
      remember(name, editor.value.trim());
      drawHistory();
    } catch (err) {
      if (err.name === 'AbortError') return;
      const parts = [errorBox(err)];
      if (err instanceof APIError && Number.isInteger(err.statement) && stmts[err.statement]) {
        parts.push(el('p', {}, `Statement ${err.statement + 1} failed; the request is one transaction, so nothing in it was committed:`),
          el('pre', {class: 'mono notice', id: 'failed-statement'}, stmts[err.statement]));
      }
      out.replaceChildren(...parts);
      remember(name, editor.value.trim());
      drawHistory();
    } finally {
      runBtn.disabled = false;
    }
  };
  editor.addEventListener('keydown', (ev) => {
    if (ev.key === 'Enter' && (ev.ctrlKey || ev.metaKey)) { ev.preventDefault(); run(); }
  });
  drawHistory();
  show(head, el('div', {class: 'layout side-right'},
    el('div', {},
      el('form', {onsubmit: (ev) => { ev.preventDefault(); run(); }},
        el('label', {for: 'sql'}, 'SQL: the statements run as one transaction (Ctrl+Enter runs)'), editor,
        el('div', {class: 'row'}, runBtn, canWrite() ? '' : el('span', {class: 'muted'}, 'This token can only read.'))),
      out),
    el('aside', {}, el('h2', {}, 'History'), hist)));
  editor.focus();
}

// ---- table browser

const PAGE = 50;

async function tablesTab(name, head, table, offset) {
  const base = '#/db/' + encodeURIComponent(name) + '/tables/';
  const schema = await query(name, [{sql: "SELECT type, name FROM sqlite_schema WHERE type IN ('table','view') AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' AND name NOT LIKE '\\_hasvc\\_%' ESCAPE '\\' ORDER BY type, name"}]);
  const objects = schema.results[0].rows.map(([type, n]) => ({type, name: n}));
  const side = el('aside', {}, el('h2', {}, 'Tables'),
    el('ul', {id: 'tables'}, objects.map(o => el('li', {}, el('a', {href: base + encodeURIComponent(o.name), class: o.name === table ? 'active' : ''}, o.name),
      o.type === 'view' ? el('span', {class: 'muted'}, ' (view)') : ''))));
  if (!objects.length) side.append(el('p', {class: 'muted'}, 'No tables yet: create one in the SQL tab.'));
  const body = el('div', {id: 'table-view'});
  show(head, el('div', {class: 'layout'}, side, body));
  if (!table) {
    body.append(el('p', {class: 'muted'}, 'Pick a table.'));
    return;
  }
  const q = quoteName(table);
  const res = await query(name, [
    {sql: 'SELECT cid, name, type, "notnull", dflt_value, pk FROM pragma_table_info(?)', params: [table]},
    {sql: 'SELECT name, "unique", origin, partial FROM pragma_index_list(?)', params: [table]},
    {sql: `SELECT count(*) FROM ${q}`},
    {sql: `SELECT * FROM ${q} LIMIT ${PAGE} OFFSET ?`, params: [offset]},
  ]);
  const [cols, idx, count, rows] = res.results;
  const total = Number(count.rows[0][0].src);
  const nav = el('div', {class: 'row'},
    el('span', {class: 'muted', id: 'page'}, total ? `rows ${Math.min(offset + 1, total)}–${Math.min(offset + PAGE, total)} of ${total}` : 'no rows'),
    offset > 0 ? el('a', {href: base + encodeURIComponent(table) + '/' + Math.max(0, offset - PAGE)}, '← previous') : '',
    offset + PAGE < total ? el('a', {href: base + encodeURIComponent(table) + '/' + (offset + PAGE), id: 'next'}, 'next →') : '');
  body.append(el('h2', {}, table), el('h2', {}, 'Columns'), grid(cols),
    el('h2', {}, 'Indexes'), idx.rows.length ? grid(idx) : el('p', {class: 'muted'}, 'none'),
    el('h2', {}, 'Rows'), nav, legend(), grid(rows));
}

// ---- backups and snapshots

async function snapshotsTab(name, head) {
  const msg = el('div');
  const list = el('tbody');
  const path = '/db/' + encodeURIComponent(name);
  const reload = async () => {
    const {snapshots} = await getJSON(path + '/snapshots');
    list.replaceChildren(...snapshots.map(s => el('tr', {},
      el('td', {class: 'num'}, s.sequence), el('td', {}, when(s.time)), el('td', {class: 'num'}, bytes(s.size)),
      el('td', {class: 'num'}, bytes(s.compressed)), el('td', {}, s.node),
      el('td', {}, el('button', {type: 'button', class: 'secondary', onclick: () => download(`${path}/snapshots/${s.sequence}`).catch(e => msg.replaceChildren(errorBox(e)))}, 'Download')))));
    if (!snapshots.length) list.append(el('tr', {}, el('td', {colspan: 6, class: 'muted'}, 'No snapshots yet.')));
  };
  const take = el('button', {type: 'button', id: 'take-snapshot', disabled: !canWrite(), onclick: async () => {
    take.disabled = true;
    try {
      const s = await sendJSON('POST', path + '/snapshot');
      msg.replaceChildren(el('div', {class: 'notice'}, `Snapshot at sequence ${s.sequence} (${bytes(s.size)}).`));
      await reload();
    } catch (err) { msg.replaceChildren(errorBox(err)); }
    take.disabled = false;
  }}, 'Take a snapshot');
  show(head,
    el('h2', {}, 'Backup'),
    el('p', {class: 'muted'}, 'A consistent copy of the database now: a SQLite file that opens in the sqlite3 shell, or its SQL.'),
    el('div', {class: 'row'},
      el('button', {type: 'button', id: 'backup', onclick: () => download(path + '/backup').catch(e => msg.replaceChildren(errorBox(e)))}, 'Download SQLite file'),
      el('button', {type: 'button', class: 'secondary', onclick: () => download(path + '/backup?format=sql').catch(e => msg.replaceChildren(errorBox(e)))}, 'Download SQL')),
    el('h2', {}, 'Snapshots'), el('div', {class: 'row'}, take), msg,
    el('div', {class: 'scroll'}, el('table', {id: 'snapshots'},
      el('thead', {}, el('tr', {}, ['sequence', 'time', 'size', 'stored', 'node', ''].map(h => el('th', {}, h)))), list)));
  await reload();
}

// ---- change feed

// readEvents reads a Server-Sent Events body and calls onEvent for each
// event; fetch sends the token in a header, which EventSource cannot.
async function readEvents(res, onEvent) {
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = '';
  for (;;) {
    const {value, done} = await reader.read();
    if (done) return;
    buf += value;
    let i;
    while ((i = buf.indexOf('\n\n')) >= 0) {
      const block = buf.slice(0, i);
      buf = buf.slice(i + 2);
      const ev = {event: 'message', data: '', id: ''};
      for (const line of block.split('\n')) {
        if (line.startsWith(':')) continue;
        const k = line.indexOf(':');
        const f = k < 0 ? line : line.slice(0, k);
        const v = k < 0 ? '' : line.slice(k + 1).replace(/^ /, '');
        if (f === 'data') ev.data += (ev.data ? '\n' : '') + v;
        else if (f === 'event') ev.event = v;
        else if (f === 'id') ev.id = v;
      }
      if (ev.data || ev.id) onEvent(ev);
    }
  }
}

function changeSummary(ev) {
  try {
    const m = JSON.parse(ev.data);
    if (ev.event !== 'change' || !m.changes) return ev.data;
    const ops = m.changes.map(c => c.operation === 'SQL' ? 'SQL: ' + c.sql : `${c.operation} ${c.table}`);
    return ops.slice(0, 5).join('; ') + (ops.length > 5 ? ` … (${ops.length} changes)` : '');
  } catch (_) { return ev.data; }
}

function changesTab(name, head) {
  const from = el('input', {name: 'from', type: 'number', min: 0, placeholder: 'next write'});
  const tables = el('input', {name: 'tables', placeholder: 'all tables'});
  const feed = el('div', {class: 'feed', id: 'feed'});
  const state = el('span', {class: 'muted', id: 'feed-state'}, 'stopped');
  let ctl = null;
  const stop = () => { if (ctl) ctl.abort(); ctl = null; btn.textContent = 'Start'; state.textContent = 'stopped'; };
  const startFeed = async () => {
    ctl = new AbortController();
    pageAbort.signal.addEventListener('abort', () => ctl && ctl.abort());
    btn.textContent = 'Stop';
    state.textContent = 'connecting…';
    const q = new URLSearchParams();
    if (from.value !== '') q.set('from', from.value);
    if (tables.value.trim()) q.set('tables', tables.value.trim());
    try {
      const res = await call('GET', `/db/${encodeURIComponent(name)}/changes?${q}`, undefined, ctl.signal);
      state.textContent = 'live';
      await readEvents(res, (ev) => {
        feed.prepend(el('div', {}, el('b', {}, ev.id ? `#${ev.id} ` : ''), el('span', {class: 'muted'}, ev.event + ' '), changeSummary(ev)));
        while (feed.childElementCount > 200) feed.lastElementChild.remove();
      });
      stop();
    } catch (err) {
      if (err.name !== 'AbortError') feed.prepend(errorBox(err));
      stop();
    }
  };
  const btn = el('button', {type: 'submit', id: 'feed-toggle'}, 'Start');
  show(head, el('p', {class: 'muted'}, 'Each committed transaction as it happens (GET /db/<name>/changes): from a sequence, or from the next write.'),
    el('form', {class: 'row', onsubmit: (ev) => { ev.preventDefault(); ctl ? stop() : startFeed(); }},
      el('label', {}, 'After sequence', from), el('label', {}, 'Tables (comma-separated)', tables), btn, state),
    feed);
}

// ---- status

async function infoTab(name, head) {
  const i = await getJSON('/databases/' + encodeURIComponent(name));
  const msg = el('div');
  const pairs = [['mode', i.mode], ['replicas', i.replicas], ['size', `${bytes(i.size_bytes)} of ${bytes(i.size_limit_bytes)}`],
    ['stream', `${i.stream_name}: sequences ${i.stream_first_seq}–${i.stream_seq}, ${bytes(i.stream_bytes)}`],
    ['subject', i.stream_subject], ['snapshot bucket', i.snapshot_bucket],
    ['writes run on', i.mode === 'strong' && i.stream_leader ? i.stream_leader : 'the node that takes them'],
    ['max statement time', i.max_statement_time || 'node default'], ['snapshot interval', i.snapshot_interval || 'node default'],
    ['retention', i.retention ? JSON.stringify(i.retention) : 'node default'], ['created', when(i.created_at)]];
  const parts = [head, kvTable(pairs), el('h2', {}, 'Copies'),
    el('div', {class: 'scroll'}, el('table', {id: 'copies'},
      el('thead', {}, el('tr', {}, ['node', 'open', 'applied seq', 'lag (messages)', 'replication lag p50 / p99', 'state'].map(h => el('th', {}, h)))),
      el('tbody', {}, (i.nodes || []).map(n => el('tr', {},
        el('td', {}, n.node), el('td', {}, n.open ? 'yes' : 'no'), el('td', {class: 'num'}, n.applied_seq), el('td', {class: 'num'}, n.lag),
        el('td', {}, n.replication_lag_samples ? `${n.replication_lag_p50_ms} ms / ${n.replication_lag_p99_ms} ms` : ''),
        el('td', {class: n.stuck ? 'bad' : 'good'}, n.stuck ? 'stuck: ' + n.stuck : 'ok'))))))];
  if (isAdmin()) {
    parts.push(el('h2', {}, 'Repair'), el('p', {class: 'muted'}, "Rebuild this node's copy from the stream (for a copy that is stuck)."),
      el('div', {class: 'row'}, el('button', {type: 'button', class: 'secondary', onclick: async () => {
        try { await sendJSON('POST', `/databases/${encodeURIComponent(name)}/repair`); route(); } catch (err) { msg.replaceChildren(errorBox(err)); }
      }}, 'Repair this copy')), msg);
  }
  show(parts);
}

// ---------------------------------------------------------------- cluster

async function clusterPage() {
  if (!isAdmin()) return show(el('h1', {}, 'Cluster'), el('p', {}, 'The cluster view needs an admin token.'));
  const c = await getJSON('/cluster');
  const {databases} = await getJSON('/databases');
  const parts = [el('h1', {}, 'Cluster'),
    kvTable([['this node', c.node], ['version', c.version || '']]),
    el('h2', {}, 'Nodes'),
    el('div', {class: 'scroll'}, el('table', {id: 'nodes'},
      el('thead', {}, el('tr', {}, ['node', 'HTTP', 'started'].map(h => el('th', {}, h)))),
      el('tbody', {}, (c.nodes || []).map(n => el('tr', {}, el('td', {}, n.name), el('td', {}, n.http ? el('a', {href: n.http + '/ui/'}, n.http) : ''), el('td', {}, when(n.started_at))))))),
    el('h2', {}, 'Lag per database')];
  const lag = el('tbody');
  parts.push(el('div', {class: 'scroll'}, el('table', {id: 'lag'},
    el('thead', {}, el('tr', {}, ['database', 'stream seq', 'nodes: applied seq (lag)'].map(h => el('th', {}, h)))), lag)));
  const js = c.jetstream || {};
  const meta = js.meta_cluster;
  parts.push(el('h2', {}, "JetStream's view"),
    kvTable([['streams', js.streams ?? ''], ['consumers', js.consumers ?? ''], ['messages', js.messages ?? ''],
      ['stored', bytes(js.bytes)], ['API errors', js.api ? `${js.api.errors} of ${js.api.total} requests` : ''],
      ['meta leader', meta ? meta.leader || 'none (no quorum)' : 'single node']]));
  if (meta && meta.replicas) {
    parts.push(el('p', {class: 'muted'}, `The meta group's other peers as ${c.node} sees them` +
      (meta.leader === c.node ? ' (it leads the group).' : `; the leader, ${meta.leader || 'none'}, has the last word.`)),
    el('div', {class: 'scroll'}, el('table', {id: 'peers'},
      el('thead', {}, el('tr', {}, ['peer', 'current', 'last seen', 'lag'].map(h => el('th', {}, h)))),
      el('tbody', {}, meta.replicas.map(r => el('tr', {}, el('td', {}, r.name), el('td', {class: r.current ? 'good' : 'bad'}, r.current ? 'yes' : 'no'),
        el('td', {}, r.active ? `${(r.active / 1e9).toFixed(1)} s ago` : ''), el('td', {class: 'num'}, r.lag ?? 0)))))));
  }
  parts.push(el('details', {}, el('summary', {}, 'All of it (JSON)'), el('pre', {class: 'mono notice', id: 'jetstream'}, JSON.stringify(js, null, 2))));
  show(parts);
  const info = await infos(databases.map(d => d.name));
  for (const d of databases) {
    const i = info.get(d.name) || {};
    lag.append(el('tr', {}, el('td', {}, d.name), el('td', {class: 'num'}, i.stream_seq ?? ''), el('td', {}, i.error ? i.error.message : nodesSummary(i))));
  }
}

// ---------------------------------------------------------------- tokens

async function tokensPage() {
  const parts = [el('h1', {}, 'Tokens'), el('h2', {}, 'This token'),
    kvTable([['subject', me.subject], ['databases', me.databases.join(', ')], ['permission', me.perm],
      ['expires', when(me.expires_at)], ['id', me.id || '']])];
  if (!isAdmin()) {
    parts.push(el('p', {class: 'muted'}, 'Minting and revoking tokens needs an admin token.'));
    return show(parts);
  }
  const dbs = el('input', {name: 'databases', required: true, placeholder: 'mydb, other (or *)', autocapitalize: 'off'});
  const perm = el('select', {name: 'perm'}, ['read', 'write', 'admin'].map(p => el('option', {value: p}, p)));
  const ttl = el('input', {name: 'ttl', value: '24h', size: 8});
  const sub = el('input', {name: 'subject', placeholder: me.subject, size: 12});
  const out = el('div', {id: 'minted'});
  parts.push(el('h2', {}, 'Mint a token'),
    el('p', {class: 'muted'}, 'A token can hand on only what it holds: databases it covers, and a life no longer than its own.'),
    el('form', {class: 'row', id: 'mint', onsubmit: async (ev) => {
      ev.preventDefault();
      try {
        const r = await sendJSON('POST', '/tokens', {databases: dbs.value.split(',').map(s => s.trim()).filter(Boolean),
          perm: perm.value, ttl: ttl.value.trim(), subject: sub.value.trim()});
        const box = el('textarea', {class: 'token-out', rows: 3, readonly: true}, r.token);
        out.replaceChildren(el('div', {class: 'notice'},
          `A ${r.info.perm} token for ${r.info.databases.join(', ')}, expiring ${when(r.info.expires_at)}, id ${r.info.id}. It is shown once: copy it now.`,
          box, el('button', {type: 'button', class: 'secondary', onclick: () => navigator.clipboard.writeText(r.token)}, 'Copy')));
      } catch (err) { out.replaceChildren(errorBox(err)); }
    }}, el('label', {}, 'Databases', dbs), el('label', {}, 'Permission', perm), el('label', {}, 'Expires after', ttl),
    el('label', {}, 'Subject', sub), el('button', {type: 'submit'}, 'Mint')), out);
  const rv = el('input', {name: 'revoke', placeholder: 'token or its id', size: 40, autocomplete: 'off'});
  const rvOut = el('div');
  parts.push(el('h2', {}, 'Revoke a token'),
    el('form', {class: 'row', onsubmit: async (ev) => {
      ev.preventDefault();
      const v = rv.value.trim();
      try {
        const r = await sendJSON('POST', '/tokens/revoke', v.includes('.') ? {token: v} : {id: v});
        rvOut.replaceChildren(el('div', {class: 'notice'}, `Revoked ${r.revoked}.`));
      } catch (err) { rvOut.replaceChildren(errorBox(err)); }
    }}, el('label', {}, 'Token', rv), el('button', {type: 'submit', class: 'danger'}, 'Revoke')), rvOut);
  show(parts);
}

// ---------------------------------------------------------------- start

document.getElementById('signout').addEventListener('click', () => signOut());
window.addEventListener('hashchange', route);
route().catch(err => show(errorBox(err)));

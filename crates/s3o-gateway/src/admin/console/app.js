// s3o console: every call goes to the admin API, signed here with AWS SigV4 (WebCrypto).
// The secret key is imported once as a non-extractable HMAC key ("AWS4" + secret) and the
// string is dropped: nothing is written to storage, a reload signs out.
'use strict';
(function () {
  const REGION = 'us-east-1';
  const enc = new TextEncoder();
  let session = null; // { ak, key: CryptoKey }
  let timer = null;

  const $ = (id) => document.getElementById(id);
  const hex = (buf) => Array.from(new Uint8Array(buf)).map((b) => b.toString(16).padStart(2, '0')).join('');
  const sha256 = async (data) => hex(await crypto.subtle.digest('SHA-256', typeof data === 'string' ? enc.encode(data) : data));
  async function hmac(key, msg) {
    if (!(key instanceof CryptoKey)) {
      key = await crypto.subtle.importKey('raw', key, { name: 'HMAC', hash: 'SHA-256' }, false, ['sign']);
    }
    return crypto.subtle.sign('HMAC', key, enc.encode(msg));
  }
  const uriEncode = (s) => encodeURIComponent(s).replace(/[!'()*]/g, (c) => '%' + c.charCodeAt(0).toString(16).toUpperCase());

  async function call(method, path, body, query) {
    const payload = body === undefined ? '' : JSON.stringify(body);
    const now = new Date().toISOString().replace(/[-:]/g, '').replace(/\.\d+/, '');
    const date = now.slice(0, 8);
    const hash = await sha256(payload);
    const q = Object.entries(query || {}).filter(([, v]) => v !== undefined && v !== '')
      .map(([k, v]) => [uriEncode(k), uriEncode(String(v))]).sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
    const qs = q.map(([k, v]) => k + '=' + v).join('&');
    const canonPath = path.split('/').map(uriEncode).join('/');
    const host = location.host;
    const canonical = [method, canonPath, qs, 'host:' + host, 'x-amz-content-sha256:' + hash, 'x-amz-date:' + now, '',
      'host;x-amz-content-sha256;x-amz-date', hash].join('\n');
    const scope = date + '/' + REGION + '/s3/aws4_request';
    const toSign = ['AWS4-HMAC-SHA256', now, scope, await sha256(canonical)].join('\n');
    let k = await hmac(session.key, date);
    k = await hmac(k, REGION); k = await hmac(k, 's3'); k = await hmac(k, 'aws4_request');
    const sig = hex(await hmac(k, toSign));
    const headers = {
      'x-amz-date': now, 'x-amz-content-sha256': hash,
      'Authorization': 'AWS4-HMAC-SHA256 Credential=' + session.ak + '/' + scope +
        ', SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature=' + sig,
    };
    if (payload) headers['Content-Type'] = 'application/json';
    const resp = await fetch(canonPath + (qs ? '?' + qs : ''), { method, headers, body: payload || undefined, credentials: 'omit', cache: 'no-store' });
    let data = null;
    try { data = await resp.json(); } catch (_) { data = null; }
    if (!resp.ok) {
      const e = new Error((data && data.error && data.error.message) || ('HTTP ' + resp.status));
      e.status = resp.status; e.code = data && data.error && data.error.code;
      throw e;
    }
    return data;
  }

  const size = (n) => {
    if (n === null || n === undefined) return '∞';
    const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB']; let i = 0; let v = n;
    while (v >= 1024 && i < u.length - 1) { v /= 1024; i++; }
    return (i ? v.toFixed(1) : String(v)) + ' ' + u[i];
  };
  function cell(tr, text, cls) { const td = document.createElement('td'); td.textContent = text; if (cls) td.className = cls; tr.appendChild(td); return td; }
  function button(td, label, onClick, name) {
    const b = document.createElement('button'); b.textContent = label; b.type = 'button';
    if (name) b.setAttribute('aria-label', name);
    b.addEventListener('click', async () => { b.disabled = true; try { await onClick(); } catch (e) { say(e.message, true); } b.disabled = false; });
    td.appendChild(b); return b;
  }
  function say(msg, bad) { const m = $('message'); m.textContent = msg; m.className = bad ? 'err' : ''; }
  function rows(id) { const tb = $(id).querySelector('tbody'); tb.replaceChildren(); return tb; }

  async function refresh() {
    const [status, backends, workers, cleanup, dlq, buckets, jobs] = await Promise.all([
      call('GET', '/admin/api/status'), call('GET', '/admin/api/backends'), call('GET', '/admin/api/workers'),
      call('GET', '/admin/api/cleanup'), call('GET', '/admin/api/dlq'), call('GET', '/admin/api/buckets'), call('GET', '/admin/api/jobs')]);
    $('status').textContent = 's3o-gateway ' + status.version + ' · up ' + status.uptime_secs + ' s · ledger ' +
      status.ledger.engine + ' ' + (status.ledger.reachable ? 'reachable' : 'UNREACHABLE') + ', breaker ' + status.ledger.breaker +
      ' · instance ' + status.instance_id;
    let tb = rows('backends');
    for (const b of backends.backends) {
      const tr = document.createElement('tr'); tr.dataset.backend = b.name;
      cell(tr, b.name);
      const bar = document.createElement('div'); bar.className = 'bar'; bar.setAttribute('role', 'img');
      const total = b.bytes_limit > 0 ? b.bytes_limit : Math.max(1, b.bytes_used + b.orphan_bytes);
      for (const [cls, v] of [['u', b.bytes_used], ['o', b.orphan_bytes]]) {
        const d = document.createElement('div'); d.className = cls; d.style.width = (v > 0 ? Math.max(1, Math.min(100, (100 * v) / total)) : 0) + '%'; bar.appendChild(d);
      }
      bar.setAttribute('aria-label', size(b.bytes_used) + ' used, ' + size(b.orphan_bytes) + ' orphan, ' + size(b.free_bytes) + ' free');
      cell(tr, '').appendChild(bar);
      cell(tr, size(b.bytes_used)).className = 'used'; cell(tr, size(b.orphan_bytes)); cell(tr, size(b.inflight_bytes));
      cell(tr, b.bytes_limit > 0 ? size(b.bytes_limit) : 'unlimited'); cell(tr, String(b.copies));
      cell(tr, b.reachable === null ? 'not configured' : b.reachable ? 'yes' : 'NO', b.reachable === false ? 'down' : '');
      const td = cell(tr, '');
      if (b.configured) button(td, 'Drain', async () => { await call('POST', '/admin/api/backends/' + encodeURIComponent(b.name) + '/drain'); say('drain of ' + b.name + ' started'); await refresh(); }, 'Drain ' + b.name);
      tb.appendChild(tr);
    }
    tb = rows('workers');
    for (const w of workers.workers) {
      const tr = document.createElement('tr'); const p = w.last_pass;
      cell(tr, w.name); cell(tr, p ? new Date(p.ended_at * 1000).toLocaleTimeString() : 'not yet');
      cell(tr, p ? p.outcome + (p.error ? ': ' + p.error : '') : '', p && p.outcome === 'failed' ? 'down' : '');
      cell(tr, p ? Object.entries(p.items).map(([k, v]) => k + ' ' + v).join(', ') : '');
      button(cell(tr, ''), 'Run now', async () => { await call('POST', '/admin/api/workers/' + w.name + '/run'); say(w.name + ' pass started'); setTimeout(refresh, 500); }, 'Run ' + w.name + ' now');
      tb.appendChild(tr);
    }
    $('queue').textContent = 'Queue: ' + cleanup.queue.due + ' due, ' + cleanup.queue.claimed + ' claimed, ' +
      cleanup.queue.waiting + ' waiting · dead letters: ' + cleanup.dlq;
    tb = rows('dlq');
    for (const d of dlq.dlq) {
      const tr = document.createElement('tr'); tr.dataset.dlq = d.id;
      cell(tr, String(d.id)); cell(tr, d.backend); cell(tr, d.object_key); cell(tr, size(d.size_bytes)); cell(tr, String(d.attempts)); cell(tr, d.last_error);
      button(cell(tr, ''), 'Requeue ' + d.backend, async () => {
        const r = await call('POST', '/admin/api/dlq/requeue', { backend: d.backend }); say(r.requeued + ' dead letters of ' + d.backend + ' requeued'); await refresh();
      }, 'Requeue the dead letters of ' + d.backend);
      tb.appendChild(tr);
    }
    tb = rows('buckets');
    for (const b of buckets.buckets) { const tr = document.createElement('tr'); cell(tr, b.name); cell(tr, String(b.replication_factor)); cell(tr, new Date(b.created_at * 1000).toLocaleString()); tb.appendChild(tr); }
    tb = rows('jobs');
    for (const j of jobs.jobs.slice(0, 10)) {
      const tr = document.createElement('tr'); cell(tr, j.kind); cell(tr, j.target); cell(tr, j.state + (j.error ? ': ' + j.error : ''));
      const p = j.progress || {}; cell(tr, p.remaining !== undefined ? (p.moved + ' moved, ' + p.remaining + ' left') : ''); tb.appendChild(tr);
    }
  }

  async function login(ev) {
    ev.preventDefault();
    $('login-error').textContent = '';
    const ak = $('ak').value.trim();
    const key = await crypto.subtle.importKey('raw', enc.encode('AWS4' + $('sk').value), { name: 'HMAC', hash: 'SHA-256' }, false, ['sign']);
    $('sk').value = '';
    session = { ak, key };
    try {
      await refresh();
    } catch (e) {
      session = null;
      $('login-error').textContent = e.status === 403 ? 'Sign-in refused: ' + e.message : 'Sign-in failed: ' + e.message;
      return;
    }
    $('login-view').hidden = true; $('dash').hidden = false; $('logout').hidden = false;
    $('who').textContent = ak;
    timer = setInterval(() => refresh().catch((e) => say(e.message, true)), 5000);
  }

  function logout() {
    session = null; clearInterval(timer);
    $('dash').hidden = true; $('login-view').hidden = false; $('logout').hidden = true; $('who').textContent = '';
  }

  document.addEventListener('DOMContentLoaded', () => {
    if (!window.crypto || !crypto.subtle) {
      $('login-error').textContent = 'This page needs WebCrypto: open it over HTTPS or from localhost.';
    }
    $('login').addEventListener('submit', login);
    $('logout').addEventListener('click', logout);
    $('requeue-all').addEventListener('click', async () => {
      try { const r = await call('POST', '/admin/api/dlq/requeue', {}); say(r.requeued + ' dead letters requeued'); await refresh(); } catch (e) { say(e.message, true); }
    });
    $('create-bucket').addEventListener('submit', async (ev) => {
      ev.preventDefault();
      try { await call('POST', '/admin/api/buckets', { name: $('new-bucket').value.trim() }); say('bucket created'); $('new-bucket').value = ''; await refresh(); } catch (e) { say(e.message, true); }
    });
  });
})();

// s3o console: every call goes to the admin API with the session cookie the sign-in set
// (HttpOnly: this script never sees it) and, on POST/PUT/DELETE, the session's CSRF token,
// kept in memory only. The secret is sent once, to sign in, and never kept.
'use strict';
(function () {
  let csrf = null; // the session's CSRF token
  let timer = null;
  let maxUpload = 0; // [console] max_upload_bytes, from the session

  const $ = (id) => document.getElementById(id);

  // `raw`: answer the Response itself (an object's bytes) instead of its JSON.
  async function call(method, path, body, query, raw) {
    const qs = Object.entries(query || {}).filter(([, v]) => v !== undefined && v !== '')
      .map(([k, v]) => encodeURIComponent(k) + '=' + encodeURIComponent(String(v))).join('&');
    const headers = {};
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    if (method !== 'GET' && method !== 'HEAD') headers['X-CSRF-Token'] = csrf || '';
    const resp = await fetch(path + (qs ? '?' + qs : ''), {
      method, headers, body: body === undefined ? undefined : JSON.stringify(body), credentials: 'same-origin', cache: 'no-store',
    });
    if (raw && resp.ok) return resp;
    let data = null;
    try { data = await resp.json(); } catch (_) { data = null; }
    if (!resp.ok) {
      const e = new Error((data && data.error && data.error.message) || ('HTTP ' + resp.status));
      e.status = resp.status; e.code = data && data.error && data.error.code;
      if (resp.status === 401 && csrf) signedOut('Signed out: ' + e.message);
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
    const [status, backends, workers, cleanup, dlq, buckets, jobs, encryption] = await Promise.all([
      call('GET', '/admin/api/status'), call('GET', '/admin/api/backends'), call('GET', '/admin/api/workers'),
      call('GET', '/admin/api/cleanup'), call('GET', '/admin/api/dlq'), call('GET', '/admin/api/buckets'), call('GET', '/admin/api/jobs'),
      call('GET', '/admin/api/encryption')]);
    if (encryption.configured) {
      const on = encryption.buckets.filter((b) => b.encrypts).map((b) => b.name);
      const off = encryption.buckets.filter((b) => !b.encrypts).map((b) => b.name);
      $('enc-status').textContent = 'Current key ' + encryption.key_id + ' · encrypting: ' + (on.join(', ') || 'none') +
        ' · plaintext: ' + (off.join(', ') || 'none');
    } else {
      $('enc-status').textContent = 'Not configured (no [encryption] section).';
    }
    $('enc-actions').hidden = !encryption.configured;
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
      cell(tr, b.bytes_limit > 0 ? size(b.bytes_limit) : 'unlimited'); cell(tr, String(b.copies), 'copies');
      cell(tr, b.reachable === null ? 'not configured' : b.reachable ? 'yes' : 'NO', b.reachable === false ? 'down' : '');
      const td = cell(tr, '');
      if (b.configured) button(td, 'Drain', async () => askDrain(b), 'Drain ' + b.name);
      else if (b.in_ledger) button(td, 'Remove', async () => askRemove(b), 'Remove ' + b.name + ' from the ledger');
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
      button(cell(tr, ''), 'Requeue', async () => {
        const r = await call('POST', '/admin/api/dlq/requeue', { ids: [d.id] }); say(r.requeued + ' dead letter requeued (row ' + d.id + ')'); await refresh();
      }, 'Requeue dead letter ' + d.id + ' (' + d.object_key + ')');
      tb.appendChild(tr);
    }
    tb = rows('buckets');
    for (const b of buckets.buckets) {
      const tr = document.createElement('tr'); tr.dataset.bucket = b.name;
      cell(tr, b.name); cell(tr, String(b.replication_factor)); cell(tr, new Date(b.created_at * 1000).toLocaleString());
      button(cell(tr, ''), 'Browse', () => browse(b.name, '', null), 'Browse the objects of ' + b.name);
      tb.appendChild(tr);
    }
    tb = rows('jobs');
    for (const j of jobs.jobs.slice(0, 10)) {
      const tr = document.createElement('tr'); cell(tr, j.kind); cell(tr, j.target); cell(tr, j.state + (j.error ? ': ' + j.error : ''));
      const p = j.progress || {}; cell(tr, p.remaining !== undefined ? (p.moved + ' moved, ' + p.remaining + ' left') : ''); tb.appendChild(tr);
    }
  }

  // Draining asks first (in its own panel, which the dashboard's timer leaves alone), then
  // follows the job until it ends with a progress bar.
  function askDrain(b) {
    $('drain-panel').hidden = false; $('drain-ask').hidden = false;
    $('drain-question').textContent = 'Drain ' + b.name + '? Its ' + b.copies + ' copies (' + size(b.bytes_used) +
      ') move to the other backends.';
    $('drain-status').textContent = ''; $('drain-progress').value = 0;
    $('drain-yes').onclick = async () => {
      $('drain-ask').hidden = true;
      try {
        const j = await call('POST', '/admin/api/backends/' + encodeURIComponent(b.name) + '/drain');
        say('drain of ' + b.name + ' started');
        await watchDrain(b.name, j.id);
      } catch (e) { say(e.message, true); }
    };
    $('drain-no').onclick = () => { $('drain-panel').hidden = true; say('drain of ' + b.name + ' not started'); };
    $('drain-yes').focus();
  }

  // Removal is the API's two steps: the first call describes it and returns a token that
  // expires; "Yes, remove" sends the token back.
  async function askRemove(b) {
    const url = '/admin/api/backends/' + encodeURIComponent(b.name) + '/remove';
    const plan = await call('POST', url, {});
    $('remove-panel').hidden = false;
    $('remove-question').textContent = 'Remove ' + b.name + ' from the ledger? It records ' + plan.copies + ' copies (' +
      size(plan.bytes) + '), ' + size(plan.queued_bytes) + ' queued and ' + size(plan.dlq_bytes) + ' dead-letter bytes; this ' +
      plan.effect + '. The confirmation expires in ' + plan.expires_in_secs + ' s.';
    $('remove-yes').onclick = async () => {
      try {
        const r = await call('POST', url, { token: plan.token });
        $('remove-panel').hidden = true; say('backend ' + r.backend + ' removed'); await refresh();
      } catch (e) { say(e.message, true); }
    };
    $('remove-no').onclick = () => { $('remove-panel').hidden = true; say(b.name + ' kept'); };
    $('remove-yes').focus();
  }

  async function watchDrain(name, id) {
    for (;;) {
      const j = await call('GET', '/admin/api/jobs/' + encodeURIComponent(id));
      const p = (j.state === 'done' ? j.result : j.progress) || {};
      const moved = p.moved || 0; const left = p.remaining || 0;
      $('drain-progress').value = j.state === 'done' ? 1 : (moved + left > 0 ? moved / (moved + left) : 0);
      if (j.state === 'running') {
        $('drain-status').textContent = name + ': ' + moved + ' moved, ' + left + ' left';
      } else {
        $('drain-status').textContent = j.state === 'done'
          ? 'drain of ' + name + ' done: ' + moved + ' moved, ' + (p.dropped || 0) + ' dropped, ' + (p.failed || 0) + ' failed'
          : 'drain of ' + name + ' ' + j.state + (j.error ? ': ' + j.error : '');
        await refresh();
        return;
      }
      await new Promise((r) => setTimeout(r, 300));
    }
  }

  // Encryption jobs: rotate and encrypt-existing start at once; decrypt-existing shows the
  // API's plan (the buckets it opens) and sends its token back on "Yes, decrypt".
  const encLabels = { rotate: ['rewrapped', 're-wrapped', 'current', 'already current'], 'encrypt-existing': ['converted', 'converted', 'skipped', 'skipped'], 'decrypt-existing': ['converted', 'converted', 'skipped', 'skipped'] };
  function encText(kind, p) {
    const l = encLabels[kind];
    return 'examined ' + (p.examined || 0) + ', ' + l[1] + ' ' + (p[l[0]] || 0) + ', ' + l[3] + ' ' + (p[l[2]] || 0) +
      ', raced ' + (p.raced || 0) + ', failed ' + (p.failed || 0);
  }
  async function startEnc(kind, body) {
    const j = await call('POST', '/admin/api/encryption/' + kind, body);
    say(kind + ' started');
    for (;;) {
      const s = await call('GET', '/admin/api/jobs/' + encodeURIComponent(j.id));
      const p = (s.state === 'done' ? s.result : s.progress) || {};
      $('enc-job').textContent = kind + ' ' + (s.state === 'running' ? 'running' : s.state) + ': ' + encText(kind, p) + (s.error ? ' — ' + s.error : '');
      if (s.state !== 'running') { await refresh(); return; }
      await new Promise((r) => setTimeout(r, 300));
    }
  }
  async function askDecrypt() {
    const plan = await call('POST', '/admin/api/encryption/decrypt-existing', {});
    $('enc-panel').hidden = false; $('enc-ask').hidden = false; $('enc-job').textContent = '';
    $('enc-question').textContent = 'Decrypt the encrypted objects of ' + (plan.buckets.join(', ') || 'no bucket') + '? This ' +
      plan.effect + '. The confirmation expires in ' + plan.expires_in_secs + ' s.';
    $('enc-yes').onclick = async () => {
      $('enc-ask').hidden = true;
      try { await startEnc('decrypt-existing', { token: plan.token }); } catch (e) { say(e.message, true); }
    };
    $('enc-no').onclick = () => { $('enc-panel').hidden = true; say('decrypt-existing not started'); };
    $('enc-yes').focus();
  }

  // The object browser: one page of one bucket at a time, rebuilt only when the operator
  // navigates (not by the dashboard's timer, so a pending confirmation stays put).
  const view = { bucket: null, prefix: '', token: null, pages: [] };

  async function browse(bucket, prefix, token) {
    if (bucket !== view.bucket || prefix !== view.prefix) view.pages = [];
    const page = await call('GET', '/admin/api/buckets/' + encodeURIComponent(bucket) + '/objects', undefined,
      { prefix, delimiter: '/', max_keys: 50, continuation_token: token || undefined });
    view.bucket = bucket; view.prefix = prefix; view.token = token;
    const opening = $('browser').hidden;
    $('browser').hidden = false; $('copies-view').hidden = true;
    $('browser-title').textContent = 'Objects in ' + bucket + (prefix ? ' / ' + prefix : '');
    $('up').hidden = !prefix;
    const tb = rows('objects');
    for (const f of page.folders) {
      const tr = document.createElement('tr'); tr.dataset.folder = f;
      const td = cell(tr, '');
      button(td, f.slice(prefix.length), () => browse(bucket, f, null), 'Open folder ' + f).className = 'link';
      cell(tr, 'folder'); cell(tr, ''); cell(tr, '');
      const act = cell(tr, '');
      button(act, 'Delete folder', () => askDeletePrefix(bucket, f, act), 'Delete everything under ' + f);
      tb.appendChild(tr);
    }
    for (const o of page.objects) tb.appendChild(objectRow(bucket, o, prefix));
    if (!page.folders.length && !page.objects.length) { const tr = document.createElement('tr'); cell(tr, 'No objects here.').colSpan = 5; tb.appendChild(tr); }
    $('next-page').hidden = !page.next_continuation_token;
    $('next-page').onclick = () => { view.pages.push(token); browse(bucket, prefix, page.next_continuation_token).catch((e) => say(e.message, true)); };
    $('prev-page').hidden = view.pages.length === 0;
    $('prev-page').onclick = () => { const t = view.pages.pop(); browse(bucket, prefix, t).catch((e) => say(e.message, true)); };
    if (opening) $('browser').scrollIntoView();
  }

  // Deleting a folder is the API's two steps: the plan (how many objects, how many bytes)
  // shows in the row with "Yes, delete all" and "Cancel"; yes sends the token back and
  // follows the job to its end.
  async function askDeletePrefix(bucket, folder, td) {
    const url = '/admin/api/buckets/' + encodeURIComponent(bucket) + '/delete-prefix';
    const plan = await call('POST', url, { prefix: folder });
    const ask = document.createElement('span'); ask.className = 'confirm'; ask.setAttribute('role', 'group');
    ask.textContent = 'Delete ' + (plan.at_least ? 'at least ' : '') + plan.objects + ' objects (' + size(plan.bytes) + ') under ' + folder + '? ';
    td.replaceChildren(ask);
    const yes = button(ask, 'Yes, delete all', async () => {
      const j = await call('POST', url, { prefix: folder, token: plan.token });
      for (;;) {
        const s = await call('GET', '/admin/api/jobs/' + encodeURIComponent(j.id));
        const p = (s.state === 'done' ? s.result : s.progress) || {};
        if (s.state !== 'running') {
          if (s.state === 'done') say('deleted ' + p.deleted + ' objects under ' + folder);
          else say('deleting under ' + folder + ' ' + s.state + (s.error ? ': ' + s.error : ''), true);
          await browse(bucket, view.prefix, view.token);
          return;
        }
        ask.textContent = 'deleting under ' + folder + ': ' + (p.deleted || 0) + ' deleted';
        await new Promise((r) => setTimeout(r, 300));
      }
    }, 'Yes, delete everything under ' + folder);
    yes.className = 'danger'; yes.dataset.confirm = 'yes';
    button(ask, 'Cancel', async () => { say(folder + ' kept'); await browse(bucket, view.prefix, view.token); }, 'Keep ' + folder).dataset.confirm = 'no';
    yes.focus();
  }

  // Uploads go through XMLHttpRequest, the one browser API that reports upload progress.
  function upload(bucket, prefix, file) {
    if (maxUpload && file.size > maxUpload) {
      return Promise.reject(new Error(file.name + ' is ' + size(file.size) + ' (' + file.size + ' bytes); the console uploads at most ' +
        size(maxUpload) + ': use an S3 client for larger files'));
    }
    const key = prefix + file.name;
    const bar = $('upload-progress'); bar.hidden = false; bar.value = 0;
    $('upload-status').textContent = 'uploading ' + key + '…';
    return new Promise((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      xhr.open('PUT', '/admin/api/buckets/' + encodeURIComponent(bucket) + '/object/content?key=' + encodeURIComponent(key));
      xhr.setRequestHeader('X-CSRF-Token', csrf || '');
      xhr.setRequestHeader('Content-Type', file.type || 'application/octet-stream');
      xhr.upload.onprogress = (e) => {
        if (!e.lengthComputable) return;
        bar.value = e.total ? e.loaded / e.total : 1;
        $('upload-status').textContent = 'uploading ' + key + ': ' + size(e.loaded) + ' of ' + size(e.total);
      };
      xhr.onload = () => {
        let d = null; try { d = JSON.parse(xhr.responseText); } catch (_) { d = null; }
        if (xhr.status >= 200 && xhr.status < 300) { bar.value = 1; resolve(d); } else {
          reject(new Error((d && d.error && d.error.message) || ('HTTP ' + xhr.status)));
        }
      };
      xhr.onerror = () => reject(new Error('the upload of ' + key + ' failed (network)'));
      xhr.send(file);
    });
  }

  function objectRow(bucket, o, prefix) {
    const tr = document.createElement('tr'); tr.dataset.key = o.key;
    cell(tr, o.key.slice(prefix.length)); cell(tr, size(o.size_bytes)).className = 'size';
    cell(tr, new Date(o.last_modified * 1000).toLocaleString()); cell(tr, o.encrypted ? 'encrypted' : '');
    const td = cell(tr, '');
    const q = { key: o.key };
    const base = '/admin/api/buckets/' + encodeURIComponent(bucket) + '/object';
    button(td, 'Copies', async () => {
      const d = await call('GET', base, undefined, q);
      $('copies-view').hidden = false; $('copies-title').textContent = 'Copies of ' + bucket + '/' + d.key;
      const cb = rows('copies');
      for (const c of d.copies) {
        const r = document.createElement('tr'); r.dataset.backend = c.backend;
        cell(r, c.backend); cell(r, c.path); cell(r, size(c.size_bytes)); cell(r, c.encrypted ? 'yes (' + c.key_id + ')' : 'no');
        cell(r, c.last_scrubbed_at ? new Date(c.last_scrubbed_at * 1000).toLocaleString() : 'never'); cb.appendChild(r);
      }
    }, 'Show the copies of ' + o.key);
    button(td, 'Download', async () => {
      const resp = await call('GET', base + '/content', undefined, q, true);
      const blob = await resp.blob();
      const a = document.createElement('a'); a.href = URL.createObjectURL(blob); a.download = o.key.split('/').pop();
      document.body.appendChild(a); a.click(); a.remove(); setTimeout(() => URL.revokeObjectURL(a.href), 60000);
      say('downloaded ' + o.key + ' (' + blob.size + ' bytes)');
    }, 'Download ' + o.key);
    // Deleting asks first: the row shows the question and the two answers.
    button(td, 'Delete', async () => {
      const ask = document.createElement('span'); ask.className = 'confirm'; ask.setAttribute('role', 'group');
      ask.textContent = 'Delete ' + o.key + '? ';
      td.replaceChildren(ask);
      const yes = button(ask, 'Yes, delete', async () => {
        await call('DELETE', base, undefined, q);
        say(o.key + ' deleted');
        await browse(bucket, view.prefix, view.token);
      }, 'Yes, delete ' + o.key);
      yes.className = 'danger'; yes.dataset.confirm = 'yes';
      button(ask, 'Cancel', async () => { tr.replaceWith(objectRow(bucket, o, prefix)); }, 'Keep ' + o.key).dataset.confirm = 'no';
      yes.focus();
    }, 'Delete ' + o.key);
    return tr;
  }

  function signedIn(who) {
    csrf = who.csrf_token; maxUpload = who.max_upload_bytes || 0;
    $('login-view').hidden = true; $('dash').hidden = false; $('logout').hidden = false;
    $('who').textContent = who.access_key;
    clearInterval(timer);
    timer = setInterval(() => refresh().catch((e) => say(e.message, true)), 5000);
  }

  function signedOut(why) {
    csrf = null; clearInterval(timer);
    $('dash').hidden = true; $('login-view').hidden = false; $('logout').hidden = true; $('who').textContent = '';
    $('login-error').textContent = why || '';
  }

  async function login(ev) {
    ev.preventDefault();
    $('login-error').textContent = '';
    const ak = $('ak').value.trim();
    const sk = $('sk').value;
    $('sk').value = '';
    const resp = await fetch('/admin/api/session', {
      method: 'POST', headers: { 'Content-Type': 'application/json' }, credentials: 'same-origin', cache: 'no-store',
      body: JSON.stringify({ access_key: ak, secret_key: sk }),
    });
    let data = null;
    try { data = await resp.json(); } catch (_) { data = null; }
    const why = (data && data.error && data.error.message) || ('HTTP ' + resp.status);
    if (!resp.ok) {
      $('login-error').textContent = resp.status === 403 ? 'Sign-in refused: ' + why
        : resp.status === 429 ? 'Sign-in throttled: ' + why : 'Sign-in failed: ' + why;
      return;
    }
    signedIn(data);
    try { await refresh(); } catch (e) { say(e.message, true); }
  }

  async function logout() {
    try { await call('DELETE', '/admin/api/session'); } catch (_) { /* signed out either way */ }
    signedOut('');
  }

  document.addEventListener('DOMContentLoaded', () => {
    $('login').addEventListener('submit', (ev) => login(ev).catch((e) => { $('login-error').textContent = 'Sign-in failed: ' + e.message; }));
    // A reloaded page picks its session up again (the cookie outlives the page).
    fetch('/admin/api/session', { credentials: 'same-origin', cache: 'no-store' })
      .then((r) => (r.ok ? r.json() : null))
      .then((who) => { if (who && who.auth === 'session') { signedIn(who); return refresh(); } return null; })
      .catch(() => {});
    $('logout').addEventListener('click', logout);
    $('requeue-all').addEventListener('click', async () => {
      try { const r = await call('POST', '/admin/api/dlq/requeue', {}); say(r.requeued + ' dead letters requeued'); await refresh(); } catch (e) { say(e.message, true); }
    });
    $('up').addEventListener('click', () => {
      const p = view.prefix.slice(0, -1); const i = p.lastIndexOf('/');
      browse(view.bucket, i < 0 ? '' : p.slice(0, i + 1), null).catch((e) => say(e.message, true));
    });
    for (const [id, kind] of [['enc-rotate', 'rotate'], ['enc-encrypt', 'encrypt-existing']]) {
      $(id).addEventListener('click', async () => {
        $('enc-panel').hidden = false; $('enc-ask').hidden = true; $('enc-job').textContent = '';
        try { await startEnc(kind, {}); } catch (e) { say(e.message, true); }
      });
    }
    $('enc-decrypt').addEventListener('click', () => askDecrypt().catch((e) => say(e.message, true)));
    $('drain-close').addEventListener('click', () => { $('drain-panel').hidden = true; });
    $('close-browser').addEventListener('click', () => { $('browser').hidden = true; view.bucket = null; });
    $('upload-form').addEventListener('submit', async (ev) => {
      ev.preventDefault();
      const file = $('upload-file').files[0];
      if (!file || !view.bucket) return;
      $('upload-btn').disabled = true;
      try {
        const r = await upload(view.bucket, view.prefix, file);
        $('upload-status').textContent = '';
        say('uploaded ' + r.key + ' (' + r.size_bytes + ' bytes)');
        $('upload-file').value = '';
        await browse(view.bucket, view.prefix, view.token);
      } catch (e) {
        $('upload-status').textContent = '';
        $('upload-progress').hidden = true;
        say(e.message, true);
      }
      $('upload-btn').disabled = false;
    });
    $('create-bucket').addEventListener('submit', async (ev) => {
      ev.preventDefault();
      try { await call('POST', '/admin/api/buckets', { name: $('new-bucket').value.trim() }); say('bucket created'); $('new-bucket').value = ''; await refresh(); } catch (e) { say(e.message, true); }
    });
  });
})();

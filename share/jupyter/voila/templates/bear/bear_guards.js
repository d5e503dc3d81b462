/* bear_app's page guards, run before Voila's own scripts.
   1. Lost kernel: the page watches its kernel's websocket; when it closes for good (the session was ended, the server
      restarted) or the kernel reports it died, a banner says so and offers a reload, instead of a page that silently
      stops answering.
   2. Uploads: ipywidgets 8's FileUpload reads the files of a detached <input type=file> and sends them all in one
      websocket message. A capturing "change" listener on that input (it runs before the widget's own) keeps the
      first photos up to the app's cap per Classify (the page's `data-bear-max-photos`), shrinks large photos the
      browser can decode (JPEG at most LONG_SIDE px, upright), leaves out files that would take the selection over
      `limit` bytes with a message per file, then lets the widget read what is left. The kernel checks both again. */
function bearGuards(limit) {
  'use strict';
  var SHRINK_ABOVE = 1500000, LONG_SIDE = 1024;   // the model looks at ~450 px; 1024 keeps a sharp thumbnail
  function mb(n) { return (n / 1e6).toFixed(n < 1e7 ? 1 : 0) + ' MB'; }

  // 1. a page whose kernel is gone says so
  var NativeWebSocket = window.WebSocket, openSockets = 0, lostTimer = null, leaving = false;
  window.addEventListener('beforeunload', function () { leaving = true; });
  function showLost() {
    if (leaving || document.getElementById('bear-lost') || !document.body) return;
    var d = document.createElement('div');
    d.id = 'bear-lost'; d.setAttribute('role', 'alert');
    d.textContent = 'This page has lost its connection to the server (the session ended or the server restarted), ' +
                    'so it cannot classify photos any more. ';
    var b = document.createElement('button'); b.type = 'button'; b.textContent = 'Reload the page';
    b.onclick = function () { window.location.reload(); };
    d.appendChild(b); document.body.appendChild(d);
  }
  function saysDead(data) {
    var text = typeof data === 'string' ? data :
               (data instanceof ArrayBuffer && data.byteLength < 4096) ? new TextDecoder().decode(data) : '';
    return /"msg_type":\s*"status"/.test(text) && /"execution_state":\s*"(dead|restarting|autorestarting)"/.test(text);
  }
  function WatchedWebSocket(url, protocols) {
    var ws = protocols === undefined ? new NativeWebSocket(url) : new NativeWebSocket(url, protocols), opened = false;
    if (/\/api\/kernels\/[^/]+\/channels/.test(String(url))) {
      ws.addEventListener('open', function () { opened = true; openSockets += 1; clearTimeout(lostTimer); });
      ws.addEventListener('close', function () {
        if (opened) openSockets -= 1;
        clearTimeout(lostTimer);   // Jupyter reconnects after a network blip: only a lasting loss counts
        lostTimer = setTimeout(function () { if (openSockets === 0) showLost(); }, 3000);
      });
      ws.addEventListener('message', function (e) { if (saysDead(e.data)) showLost(); });
    }
    return ws;
  }
  WatchedWebSocket.prototype = NativeWebSocket.prototype;
  ['CONNECTING', 'OPEN', 'CLOSING', 'CLOSED'].forEach(function (k) { WatchedWebSocket[k] = NativeWebSocket[k]; });
  window.WebSocket = WatchedWebSocket;

  // 2. uploads checked, and large photos shrunk, before they are sent
  async function shrink(file) {
    try {
      var bmp = await createImageBitmap(file, {imageOrientation: 'from-image'});
      var s = Math.min(1, LONG_SIDE / Math.max(bmp.width, bmp.height));
      var c = document.createElement('canvas');
      c.width = Math.max(1, Math.round(bmp.width * s)); c.height = Math.max(1, Math.round(bmp.height * s));
      var ctx = c.getContext('2d');
      ctx.fillStyle = '#fff'; ctx.fillRect(0, 0, c.width, c.height); ctx.imageSmoothingQuality = 'high';
      ctx.drawImage(bmp, 0, 0, c.width, c.height); bmp.close();
      var blob = await new Promise(function (r) { c.toBlob(r, 'image/jpeg', 0.92); });
      return blob && blob.size < file.size ? new File([blob], file.name, {type: 'image/jpeg', lastModified: file.lastModified}) : null;
    } catch (e) { return null; }   // HEIC, TIFF...: this browser cannot decode it, the server can: sent as it is
  }
  async function prepare(files) {
    var kept = [], problems = [], total = 0;
    for (var i = 0; i < files.length; i++) {
      var f = files[i], g = f.size > SHRINK_ABOVE ? (await shrink(f)) || f : f;
      if (g.size > limit) problems.push(f.name + ': ' + mb(f.size) + ' is too large to send (the limit is ' + mb(limit) +
        '). Choose a smaller file, or a JPEG, PNG or WebP photo, which this page can shrink before sending.');
      else if (total + g.size > limit) problems.push(f.name + ': not sent, the files chosen together are over ' + mb(limit) +
        '. Choose it again, on its own or with fewer files.');
      else { total += g.size; kept.push(g); }
    }
    return {kept: kept, problems: problems};
  }
  function notice(button, lines) {
    if (!button) return;
    var box = button.nextElementSibling;
    if (!box || !box.classList.contains('bear-upload-notice')) {
      box = document.createElement('div'); box.className = 'bear-upload-notice'; box.setAttribute('role', 'status');
      button.insertAdjacentElement('afterend', box);
    }
    box.textContent = '';
    lines.forEach(function (t) { var p = document.createElement('div'); p.textContent = t; box.appendChild(p); });
    box.style.display = lines.length ? '' : 'none';
  }
  function guard(input, button) {
    var passing = false;
    input.addEventListener('change', function (e) {
      if (passing) return;
      e.stopImmediatePropagation();   // the widget reads the files once they are checked
      var files = Array.prototype.slice.call(input.files || []), first = [];
      var capEl = document.querySelector('[data-bear-max-photos]');   // the app says its cap (bear_app.app, max_photos)
      var cap = capEl ? parseInt(capEl.getAttribute('data-bear-max-photos'), 10) : 0;
      if (cap > 0 && files.length > cap) {
        first.push('Too many photos at once: you chose ' + files.length + '; one Classify answers at most ' + cap +
                   ', so only the first ' + cap + ' are sent. Choose the others again.');
        files = files.slice(0, cap);
      }
      if (files.some(function (f) { return f.size > SHRINK_ABOVE; })) notice(button, ['Preparing ' + files.length + ' file(s)…']);
      prepare(files).then(function (r) {
        var dt = new DataTransfer();
        r.kept.forEach(function (f) { dt.items.add(f); });
        input.files = dt.files;
        notice(button, first.concat(r.problems));
        passing = true;
        try { input.dispatchEvent(new Event('change')); } finally { passing = false; }
      });
    }, true);
  }
  var lastUploadButton = null;
  document.addEventListener('click', function (e) {
    var b = e.target && e.target.closest && e.target.closest('.widget-upload');
    if (b) lastUploadButton = b;
  }, true);
  var nativeClick = HTMLInputElement.prototype.click;
  HTMLInputElement.prototype.click = function () {
    if (this.type === 'file' && !this.isConnected && !this.bearGuarded) { this.bearGuarded = true; guard(this, lastUploadButton); }
    return nativeClick.apply(this, arguments);
  };
}

// Vigil portal: the WebAuthn ceremonies, which need the browser's JavaScript API. Every
// other page works without script. The ceremonies call the JSON API (/api/v1/...); the
// signed-in ones send the session's CSRF token (the page's csrf-token meta) in X-CSRF-Token.
"use strict";
(function () {
  function b64uToBuf(s) {
    s = s.replace(/-/g, "+").replace(/_/g, "/");
    while (s.length % 4) s += "=";
    var bin = atob(s), out = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out.buffer;
  }
  function bufToB64u(buf) {
    var bytes = new Uint8Array(buf), bin = "";
    for (var i = 0; i < bytes.length; i++) bin += String.fromCharCode(bytes[i]);
    return btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }
  function creationOptions(pk) {
    var o = Object.assign({}, pk);
    o.challenge = b64uToBuf(pk.challenge);
    o.user = Object.assign({}, pk.user, { id: b64uToBuf(pk.user.id) });
    o.excludeCredentials = (pk.excludeCredentials || []).map(function (c) { return Object.assign({}, c, { id: b64uToBuf(c.id) }); });
    return o;
  }
  function requestOptions(pk) {
    var o = Object.assign({}, pk);
    o.challenge = b64uToBuf(pk.challenge);
    o.allowCredentials = (pk.allowCredentials || []).map(function (c) { return Object.assign({}, c, { id: b64uToBuf(c.id) }); });
    return o;
  }
  function credentialJSON(cred) {
    var r = cred.response, resp = { clientDataJSON: bufToB64u(r.clientDataJSON) };
    if (r.attestationObject) {
      resp.attestationObject = bufToB64u(r.attestationObject);
      if (r.getTransports) resp.transports = r.getTransports();
    } else {
      resp.authenticatorData = bufToB64u(r.authenticatorData);
      resp.signature = bufToB64u(r.signature);
      if (r.userHandle) resp.userHandle = bufToB64u(r.userHandle);
    }
    return {
      id: cred.id, rawId: bufToB64u(cred.rawId), type: cred.type, response: resp,
      authenticatorAttachment: cred.authenticatorAttachment || undefined,
      clientExtensionResults: cred.getClientExtensionResults ? cred.getClientExtensionResults() : {}
    };
  }
  function csrf() {
    var m = document.querySelector('meta[name="csrf-token"]');
    return m ? m.content : "";
  }
  // api posts body as JSON and resolves to the parsed answer; a problem document rejects
  // with an Error carrying its code.
  function api(path, body, signedIn) {
    var headers = { "Content-Type": "application/json", "Accept": "application/json" };
    if (signedIn) headers["X-CSRF-Token"] = csrf();
    return fetch(path, { method: "POST", headers: headers, credentials: "same-origin", body: JSON.stringify(body || {}) })
      .then(function (res) {
        return res.text().then(function (text) {
          var data = text ? JSON.parse(text) : {};
          if (!res.ok) {
            var e = new Error(data.detail || data.title || "The request failed.");
            e.code = data.code;
            throw e;
          }
          return data;
        });
      });
  }
  function showError(err) {
    var el = document.getElementById("passkey-error");
    if (!el) return;
    var msg = err && err.message ? err.message : String(err);
    if (err && err.name === "NotAllowedError") msg = "The passkey request was cancelled or timed out.";
    if (err && err.code === "invalid_credentials") msg = "That passkey was not accepted.";
    el.textContent = msg;
    el.hidden = false;
  }
  // safeNext is the server's rule (handlers/portal.go): a path of this site of printable
  // ASCII without "\", and, as sent and once decoded, no "//", "." or ".." segment, space or
  // control character; anything else (a tab, "//x", "/\x", a URL) gives def.
  function safeNext(next, def) {
    if (!/^\/[!-\[\]-~]{0,511}$/.test(next || "")) return def;
    var p = next.split(/[?#]/)[0], d;
    try { d = decodeURIComponent(p); } catch (e) { return def; }
    var bad = /\/\/|\/\.\.?(\/|$)|[\\\s\p{C}\p{Z}]/u;
    return bad.test(p) || bad.test(d) ? def : next;
  }
  function signInWithPasskey(ticket, next) {
    var body = ticket ? { login_ticket: ticket } : {};
    return api("/api/v1/login/passkey/options", body, false)
      .then(function (c) {
        return navigator.credentials.get({ publicKey: requestOptions(c.public_key) }).then(function (cred) {
          return api("/api/v1/login/passkey", { ceremony_id: c.ceremony_id, credential: credentialJSON(cred), client_id: "portal" }, false);
        });
      })
      .then(function (res) {
        if (res.session && res.session.restricted) { location.assign("/enroll"); return; }
        location.assign(safeNext(next, "/account"));
      });
  }
  function on(id, ev, fn) {
    var el = document.getElementById(id);
    if (el) el.addEventListener(ev, function (e) { fn(e, el); });
  }
  on("passkey-signin", "click", function (e, el) {
    signInWithPasskey("", el.dataset.next).catch(showError);
  });
  on("passkey-second-factor", "click", function (e, el) {
    signInWithPasskey(el.dataset.ticket, el.dataset.next).catch(showError);
  });
  on("passkey-reauth", "click", function (e, el) {
    api("/api/v1/reauth/passkey/options", {}, true)
      .then(function (c) {
        return navigator.credentials.get({ publicKey: requestOptions(c.public_key) }).then(function (cred) {
          return api("/api/v1/reauth", { ceremony_id: c.ceremony_id, credential: credentialJSON(cred) }, true);
        });
      })
      .then(function () { location.assign(safeNext(el.dataset.next, "/security")); })
      .catch(showError);
  });
  on("passkey-register", "submit", function (e, form) {
    e.preventDefault();
    var name = form.querySelector('input[name="name"]').value;
    api("/api/v1/me/passkeys/options", { name: name }, true)
      .then(function (c) {
        return navigator.credentials.create({ publicKey: creationOptions(c.public_key) }).then(function (cred) {
          return api("/api/v1/me/passkeys", { ceremony_id: c.ceremony_id, credential: credentialJSON(cred) }, true);
        });
      })
      .then(function (res) {
        if (!res.backup_codes) { location.assign(form.dataset.after); return; }
        // This passkey turned 2FA on: show the backup codes, once, with a download link.
        var box = document.getElementById("passkey-codes"), list = document.getElementById("passkey-codes-list");
        res.backup_codes.forEach(function (code) {
          var li = document.createElement("li"), c = document.createElement("code");
          c.textContent = code; li.appendChild(c); list.appendChild(li);
        });
        var text = "Vigil backup codes\r\nEach code works once. Keep them somewhere safe.\r\n\r\n" + res.backup_codes.join("\r\n") + "\r\n";
        document.getElementById("passkey-codes-download").href = URL.createObjectURL(new Blob([text], { type: "text/plain" }));
        document.getElementById("passkey-codes-continue").href = form.dataset.after;
        form.hidden = true;
        box.hidden = false;
        box.scrollIntoView();
      })
      .catch(function (err) {
        if (err.code === "reauthentication_required") {
          location.assign("/reauth?next=" + encodeURIComponent(location.pathname));
          return;
        }
        showError(err);
      });
  });
})();

(function () {
  'use strict';
  var page = document.getElementById('audius-bridge');
  var hash = window.location.hash.replace(/^#/, '');
  try {
    history.replaceState(null, '', window.location.pathname + window.location.search);
  } catch (ignored) {
    /* history may be unavailable */
  }
  var params = new URLSearchParams(hash);
  // The implicit flow answers with a token, the code flow with a code (or an error).
  function answer() {
    var body = { state: params.get('state') || '' };
    ['token', 'code', 'error', 'error_description'].forEach(function (name) {
      if (params.has(name)) {
        body[name] = params.get(name);
      }
    });
    return body;
  }
  function fail(message) {
    page.querySelector('[data-status]').textContent = message;
    page.querySelector('[data-retry]').hidden = false;
  }
  fetch(page.getAttribute('data-callback'), {
    method: 'POST',
    credentials: 'same-origin',
    headers: { 'Content-Type': 'application/json', 'Accept': 'application/json' },
    body: JSON.stringify(answer())
  }).then(function (response) {
    return response.json().then(function (body) {
      if (response.ok) {
        window.location.replace(body.redirect);
      } else {
        fail(body.message || 'The login failed.');
      }
    });
  }).catch(function () {
    fail('The login failed: the server could not be reached.');
  });
})();
